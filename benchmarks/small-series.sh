#!/usr/bin/env bash
# Throughput of `mrsort watch` (release) with realistic small series: for each K in SIZES, about
# TOTAL files made of N = TOTAL / K series of K files each (every series its own
# SeriesInstanceUID, SeriesNumber and SOPInstanceUIDs; SERIES_PER_STUDY series per study; made from
# the files of one real series, TEMPLATE_DIR, cycled, by rewriting UIDs with pydicom), renamed into
# the drop folder at once; files/s from the first rename to the last file sorted (the drop folder
# empty; action move, quiet_seconds 1, worker_threads 2), with the agent's CPU time over the same
# interval (cores busy) and the series handled per second.
#
# N is at most MAX_SERIES (500): K = 1 makes 500 series of one file.
#
# usage: benchmarks/small-series.sh MRSORT [TEMPLATE_DIR] [WORK_DIR]
#   e.g. benchmarks/small-series.sh .build/release/mrsort ../shared/realdata/dcm_qa_sag__S6_DWI_SagAP
# environment: SIZES (default "1 4 12 200"), TOTAL (3000), MAX_SERIES (500), SERIES_PER_STUDY (12), RUNS (1), WORKERS (2),
#   PYTHON (a python3 with pydicom), PERF=1 (record the agent with `perf record -e cpu-clock -g`
#   into WORK_DIR/K/perf.data), STRACE=1 (count its system calls with `strace -f -c`)
set -euo pipefail
mrsort=$(realpath "$1")
here=$(cd "$(dirname "$0")/.." && pwd)
template=${2:-$here/../shared/realdata/dcm_qa_sag__S6_DWI_SagAP}
work=${3:-$(mktemp -d /tmp/mrsort-small-series.XXXXXX)}
sizes=${SIZES:-1 4 12 200} total=${TOTAL:-3000} max_series=${MAX_SERIES:-500} per_study=${SERIES_PER_STUDY:-12} runs=${RUNS:-1}
python=${PYTHON:-python3}
export MRSORT_MODELS=${MRSORT_MODELS:-$here/models}

generate() { # K SERIES FOLDER
    "$python" - "$template" "$3" "$1" "$2" "$per_study" <<'PY'
import os, sys, pydicom
from pydicom.uid import generate_uid
template, folder, per_series, count, per_study = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
sources = sorted(os.path.join(template, name) for name in os.listdir(template))
datasets = [pydicom.dcmread(path) for path in sources]
os.makedirs(folder, exist_ok=True)
number = 0
for series in range(count):
    if series % per_study == 0:
        study = generate_uid()
    uid = generate_uid()
    for index in range(per_series):
        ds = datasets[index % len(datasets)]
        ds.StudyInstanceUID = study
        ds.SeriesInstanceUID = uid
        ds.SeriesNumber = series % per_study + 1
        ds.InstanceNumber = index + 1
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.save_as(os.path.join(folder, f"{number:06d}.dcm"))
        number += 1
PY
}

configure() { # ROOT
    rm -rf "$1"; mkdir -p "$1"/{in,out,quarantine}
    cat > "$1/mrsort.yaml" <<YAML
state_directory: $1/state
rescan_seconds: 3600
worker_threads: ${WORKERS:-2}
rules:
  - name: bench
    watch: $1/in
    quiet_seconds: 1
    action: move
    output: $1/out
    layout: "{StudyInstanceUID}/{SeriesNumber}_{sequence}/{SOPInstanceUID}.dcm"
    quarantine: $1/quarantine
YAML
}

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }  # utime + stime of the agent, in clock ticks
now() { date +%s.%N; }

printf '%-5s %-7s %-6s %-9s %-9s %-11s %-10s\n' K series files seconds files/s series/s cores_busy
for k in $sizes; do
    count=$(( (total + k - 1) / k )); [ "$count" -le "$max_series" ] || count=$max_series
    stage=$work/stage-$k-$count
    [ -d "$stage" ] || generate "$k" "$count" "$stage"
    files=$(ls "$stage" | wc -l)
    for run in $(seq "$runs"); do
        root=$work/$k; configure "$root"
        cp -al "$stage" "$root/stage"   # hard links: the renames below are what the agent sees
        if [ "${PERF:-0}" = 1 ]; then
            perf record -e cpu-clock -F 1999 -g -o "$root/perf.data" -- "$mrsort" watch --config "$root/mrsort.yaml" 2>"$root/agent.log" &
        elif [ "${STRACE:-0}" = 1 ]; then
            strace -f -c -o "$root/strace.txt" "$mrsort" watch --config "$root/mrsort.yaml" 2>"$root/agent.log" &
        else
            "$mrsort" watch --config "$root/mrsort.yaml" 2>"$root/agent.log" &
        fi
        launcher=$!
        until grep -q watching "$root/agent.log" 2>/dev/null; do sleep 0.1; done
        agent=$(pgrep -n -f "watch --config $root/mrsort.yaml" || echo "$launcher")
        before=$(ticks "$agent")
        start=$(now)
        find "$root/stage" -name '*.dcm' -exec mv -t "$root/in/" {} +
        while [ -n "$(ls -f "$root/in" | grep -v '^\.\.\?$' | head -1)" ]; do sleep 0.02; done
        end=$(now)
        after=$(ticks "$agent")
        kill -TERM "$agent"; wait "$launcher" || true
        sorted=$(find "$root/out" -type f -name '*.dcm' | wc -l)
        "$python" -c "
k, n, f, s, e, t = $k, $count, $files, $start, $end, ($after - $before) / $(getconf CLK_TCK)
print(f'{k:<5} {n:<7} {f:<6} {e - s:<9.2f} {f / (e - s):<9.0f} {n / (e - s):<11.1f} {t / (e - s):<10.2f}' + ('' if $sorted == f else f'  ({$sorted} of {f} in the output)'))"
    done
done
