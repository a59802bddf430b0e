#!/usr/bin/env bash
# Header reads per second on the real-data folder: mrsort on 1 thread and on every core,
# and pydicom's dcmread(stop_before_pixels=True), in one run on the same files.
# Usage: benchmarks/header-read.sh [DIR]   (default ../shared/realdata)
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-../shared/realdata}
swift build -c release --product mrsort-benchmark >/dev/null
bin=$(swift build -c release --show-bin-path)/mrsort-benchmark
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
"$bin" headers "$dir" --threads 1
"$bin" headers "$dir" --threads "$(nproc)"
python3 benchmarks/pydicom_headers.py "$dir"
