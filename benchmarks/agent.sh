#!/usr/bin/env bash
# The agent's figures (issue: keep up with 1,000 files/s, < 1 s from quiescence to action for a
# 200-slice series, < 300 MB resident with 100,000 files pending), measured on a release build:
#
#   1. throughput: N distinct instances (one real file, SOPInstanceUID digits rewritten) renamed
#      into the drop folder at once; files/s from the first rename to the last file sorted
#      (the 1 s quiet period included);
#   2. latency: a series copied in; seconds from the end of the quiet period to the last file sorted;
#   3. memory: 100,000 files pending (quiet period of an hour); VmRSS once all are read.
#
# Many small series (1–12 files each) are measured by benchmarks/small-series.sh, crash safety under
# SIGKILL by benchmarks/soak.sh.
#
# usage: benchmarks/agent.sh MRSORT TEMPLATE_FILE SERIES_DIR [N] [WORK_DIR]
set -euo pipefail
mrsort=$1 template=$2 series=$3 count=${4:-20000} work=${5:-$(mktemp -d /tmp/mrsort-agent-bench.XXXXXX)}
here=$(cd "$(dirname "$0")/.." && pwd)
export MRSORT_MODELS="$here/models"

generate() { # COUNT FOLDER: distinct instances of the template
    python3 - "$template" "$2" "$1" <<'PY'
import os, sys, pydicom
source, folder, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
data = open(source, "rb").read()
uid = pydicom.dcmread(source, stop_before_pixels=True).SOPInstanceUID.encode()
os.makedirs(folder, exist_ok=True)
for index in range(count):
    with open(os.path.join(folder, f"{index}.dcm"), "wb") as out:
        out.write(data.replace(uid, uid[:-6] + b"%06d" % index))
PY
}

configure() { # ROOT QUIET
    mkdir -p "$1"/{in,out,quarantine,stage}
    cat > "$1/mrsort.yaml" <<YAML
state_directory: $1/state
rescan_seconds: 3600
rules:
  - name: bench
    watch: $1/in
    quiet_seconds: $2
    action: move
    output: $1/out
    layout: "{SeriesNumber}_{sequence}/{SOPInstanceUID}.dcm"
    quarantine: $1/quarantine
YAML
}

now() { date +%s.%N; }
sorted() { find "$1/out" -type f | wc -l; }

echo "== throughput: $count files ($(basename "$template"))"
root=$work/throughput; configure "$root" 1; generate "$count" "$root/stage"
"$mrsort" watch --config "$root/mrsort.yaml" 2>"$root/agent.log" & agent=$!; sleep 2
start=$(now); find "$root/stage" -name '*.dcm' -exec mv -t "$root/in/" {} +
while [ "$(sorted "$root")" -lt "$count" ]; do sleep 0.2; done
end=$(now); kill -TERM $agent; wait $agent
python3 -c "s,e,n=$start,$end,$count; print(f'files={n} seconds={e-s:.2f} files_per_second={n/(e-s):.0f}')"

echo "== latency: $(ls "$series" | wc -l) files of $series"
root=$work/latency; configure "$root" 1
"$mrsort" watch --config "$root/mrsort.yaml" 2>"$root/agent.log" & agent=$!; sleep 2
total=$(ls "$series" | wc -l)
cp "$series"/* "$root/in/"; copied=$(now)
while [ "$(sorted "$root")" -lt "$total" ]; do sleep 0.05; done
end=$(now); kill -TERM $agent; wait $agent
python3 -c "c,e=$copied,$end; print(f'from quiescence (arrival + 1 s) to last file sorted: {e-c-1:.2f} s')"

echo "== memory: 100000 files pending"
root=$work/memory; configure "$root" 3600; generate 100000 "$root/stage"
"$mrsort" watch --config "$root/mrsort.yaml" 2>"$root/agent.log" & agent=$!; sleep 2
find "$root/stage" -name '*.dcm' -exec mv -t "$root/in/" {} +
until grep -q '"filesSeen" : 100000' "$root/state/status.json" 2>/dev/null; do sleep 1; done
grep VmRSS /proc/$agent/status
kill -TERM $agent; wait $agent
rm -rf "$work"
