#!/usr/bin/env bash
# CNN inference per slice: mrsort's Swift engine (OpenBLAS) and PyTorch on the same exported
# weights, the same preprocessed slices and the same thread count, in one run.
# Usage: benchmarks/cnn.sh IMAGES.safetensors [MODEL]   (IMAGES from `mrsort dataset ... --images`)
set -euo pipefail
cd "$(dirname "$0")/.."
images=$1
model=${2:-models/cnn.safetensors}
swift build -c release --product mrsort-benchmark ${SCRATCH:+--scratch-path "$SCRATCH"} >/dev/null
bin=$(swift build -c release ${SCRATCH:+--scratch-path "$SCRATCH"} --show-bin-path)/mrsort-benchmark
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
for threads in 1 2; do
    "$bin" cnn "$model" "$images" --threads "$threads" --slices 256 --batch 16
    python3 benchmarks/pytorch_cnn.py "$model" "$images" --threads "$threads" --slices 256 --batch 16
done
