#!/usr/bin/env bash
# mrsort as a DICOM node over loopback (release build): a series of IMAGES instances (default
# 200; the files of one real series, TEMPLATE_DIR, cycled, each copy with a new SOPInstanceUID
# and InstanceNumber by DCMTK's dcmodify, all in the series of the template) sent by storescu in
# one association. Per run:
#
#   bound       storescp -od DIR alone receives the series: instances/s (no fsync, no checks);
#   received    `mrsort receive` alone (staging, fsync, link into the folder): instances/s;
#   latency     `mrsort receive` + `mrsort watch` (action move, quiet_seconds QUIET, forwarding to
#               a storescp acting as the PACS): seconds from the start of storescu (the first
#               instance sent) until the last file is in the output; with the receive rate
#               while the agent reads the arriving files;
#   forwarded   instances/s from the last file sorted until the PACS holds every instance
#               (the agent's forward sends; checked against its audit log's "forward" lines).
#
# usage: benchmarks/dicom-node.sh MRSORT [TEMPLATE_DIR] [WORK_DIR]
#   e.g. benchmarks/dicom-node.sh .build/release/mrsort ../shared/realdata/dcm_qa_sag__S6_DWI_SagAP
# environment: IMAGES (200), RUNS (3), QUIET (1, the rule's quiet_seconds), WORKERS (2),
#   PORT (11112; the bound's storescp and the PACS use PORT+1 and PORT+2), KEEP=1 (leave WORK_DIR).
#   mrsort disables Nagle's algorithm on its own sockets; DCMTK's storescu and storescp do so only
#   with TCP_NODELAY=1 in their environment (Debian's libdcmtk17 leaves it on): export it to the
#   script to measure peers that do, as most modalities and PACS do.
# needs: DCMTK's storescu, storescp, dcmodify, dcmdump.
set -euo pipefail
mrsort=$(realpath "$1")
here=$(cd "$(dirname "$0")/.." && pwd)
template=${2:-$here/../shared/realdata/dcm_qa_sag__S6_DWI_SagAP}
work=${3:-$(mktemp -d /tmp/mrsort-dicom-node.XXXXXX)}
images=${IMAGES:-200} runs=${RUNS:-3} quiet=${QUIET:-1} workers=${WORKERS:-2}
port=${PORT:-11112}
bound_port=$((port + 1)) pacs_port=$((port + 2))
export MRSORT_MODELS=${MRSORT_MODELS:-$here/models}
keep=${KEEP:-0}
node=("$mrsort")
[ -n "${3:-}" ] && keep=1
for tool in storescu storescp dcmodify dcmdump; do
    command -v "$tool" >/dev/null || { echo "dicom-node: $tool not found (apt-get install dcmtk)" >&2; exit 1; }
done
for p in "$port" "$bound_port" "$pacs_port"; do
    python3 -c 'import socket, sys; socket.socket().bind(("127.0.0.1", int(sys.argv[1])))' "$p" 2>/dev/null \
        || { echo "dicom-node: port $p is in use (set PORT)" >&2; exit 1; }
done

pids=()
stop_all() {
    local pid
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    pids=()
}
cleanup() {
    stop_all
    if [ "$keep" = 1 ]; then echo "dicom-node: kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

now() { date +%s.%N; }
count() { find "$1" -type f -name "${2:-*}" 2>/dev/null | wc -l; }
wait_count() {  # wait_count FOLDER N [PATTERN]: poll every 10 ms until FOLDER holds N files (300 s at most)
    local deadline=$((SECONDS + 300))
    until [ "$(count "$1" "${3:-*}")" -ge "$2" ]; do
        [ "$SECONDS" -lt "$deadline" ] || { echo "dicom-node: $1 holds $(count "$1" "${3:-*}") of $2 files after 300 s" >&2; exit 1; }
        sleep 0.01
    done
}
wait_log() {  # wait_log FILE TEXT (60 s at most)
    local deadline=$((SECONDS + 60))
    until grep -q "$2" "$1" 2>/dev/null; do
        [ "$SECONDS" -lt "$deadline" ] || { echo "dicom-node: no '$2' in $1 after 60 s:" >&2; cat "$1" >&2; exit 1; }
        sleep 0.05
    done
}

# The series: IMAGES copies of the template's files, each a new instance of the same series.
series=$work/series
if [ ! -d "$series" ]; then
    mapfile -t sources < <(find "$template" -type f | sort)
    [ "${#sources[@]}" -gt 0 ] || { echo "dicom-node: no files in $template" >&2; exit 1; }
    mkdir -p "$series.tmp"
    for i in $(seq 0 $((images - 1))); do
        cp "${sources[i % ${#sources[@]}]}" "$series.tmp/$(printf '%04d' "$i").dcm"
    done
    chmod u+w "$series.tmp"/*.dcm
    for i in $(seq 0 $((images - 1))); do
        dcmodify -nb -gin -m "(0020,0013)=$((i + 1))" "$series.tmp/$(printf '%04d' "$i").dcm"
    done
    mv "$series.tmp" "$series"
fi
mapfile -t files < <(find "$series" -name '*.dcm' | sort)
unique=$(for f in "${files[@]}"; do dcmdump -q +P SOPInstanceUID "$f"; done | sort -u | wc -l)
[ "$unique" -eq "$images" ] || { echo "dicom-node: $unique distinct SOPInstanceUIDs among $images files" >&2; exit 1; }
echo "series: $images instances, $(du -sh "$series" | cut -f1), from $template" >&2

configure() {  # configure ROOT
    rm -rf "$1"; mkdir -p "$1"/{in,out,quarantine,pacs,bound}
    cat > "$1/mrsort.yaml" <<YAML
state_directory: $1/state
rescan_seconds: 3600
worker_threads: $workers
rules:
  - name: bench
    watch: $1/in
    quiet_seconds: $quiet
    action: move
    output: $1/out
    layout: "{StudyInstanceUID}/{SeriesNumber}_{sequence}/{SOPInstanceUID}.dcm"
    quarantine: $1/quarantine
    forward: [pacs]
receivers:
  - name: bench
    ae_title: MRSORT
    port: $port
    folder: $1/in
    allowed_calling_ae_titles: [BENCH]
    maximum_associations: 4
    minimum_free_megabytes: 64
    timeout_seconds: 60
destinations:
  - name: pacs
    host: 127.0.0.1
    port: $pacs_port
    called_ae_title: PACS
    calling_ae_title: MRSORT
    retries: 0
    retry_seconds: 1
    timeout_seconds: 60
YAML
}
send() {  # send PORT CALLED_AE: the whole series in one association
    storescu -aet BENCH -aec "$2" 127.0.0.1 "$1" "${files[@]}"
}
rate() { python3 -c "import sys; print(f'{int(sys.argv[1]) / (float(sys.argv[3]) - float(sys.argv[2])):.0f}')" "$@"; }
span() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.2f}')" "$@"; }

printf '%-4s %-13s %-13s %-16s %-12s %-12s %-14s\n' run bound_inst/s recv_inst/s recv+agent_inst/s latency_s forward_s forward_inst/s
for run in $(seq "$runs"); do
    root=$work/run-$run
    configure "$root"

    # bound: storescp alone.
    storescp --aetitle BOUND -od "$root/bound" "$bound_port" 2> "$root/bound.log" &
    pids+=($!)
    sleep 0.5
    start=$(now); send "$bound_port" BOUND; end=$(now)
    [ "$(count "$root/bound")" -eq "$images" ] || echo "dicom-node: storescp stored $(count "$root/bound") of $images" >&2
    bound=$(rate "$images" "$start" "$end")
    stop_all

    # received: mrsort receive alone.
    "${node[@]}" receive bench --config "$root/mrsort.yaml" 2> "$root/receive-alone.log" &
    pids+=($!)
    wait_log "$root/receive-alone.log" listening
    start=$(now); send "$port" MRSORT; end=$(now)
    [ "$(count "$root/in" '*.dcm')" -eq "$images" ] || echo "dicom-node: the receiver stored $(count "$root/in" '*.dcm') of $images" >&2
    received=$(rate "$images" "$start" "$end")
    stop_all
    rm -rf "$root/in" "$root/state"; mkdir -p "$root/in"

    # latency and forwarding: the PACS, the agent, the receiver.
    storescp --aetitle PACS -od "$root/pacs" "$pacs_port" 2> "$root/pacs.log" &
    pids+=($!)
    "${node[@]}" watch --config "$root/mrsort.yaml" 2> "$root/agent.log" &
    pids+=($!)
    "${node[@]}" receive bench --config "$root/mrsort.yaml" 2> "$root/receive.log" &
    pids+=($!)
    wait_log "$root/agent.log" watching
    wait_log "$root/receive.log" listening
    start=$(now); send "$port" MRSORT; sent=$(now)
    wait_count "$root/out" "$images" '*.dcm'; sorted=$(now)
    wait_count "$root/pacs" "$images"; forwarded=$(now)
    sleep 1  # the audit line of the last send
    stop_all
    lines=$(grep -c '"action":"forward"' "$root/state/audit.jsonl" || true)
    [ "$lines" -eq "$images" ] || echo "dicom-node: $lines forward lines in the audit log for $images instances" >&2
    printf '%-4s %-13s %-13s %-16s %-12s %-12s %-14s\n' "$run" "$bound" "$received" "$(rate "$images" "$start" "$sent")" \
        "$(span "$start" "$sorted")" "$(span "$sorted" "$forwarded")" "$(rate "$images" "$sorted" "$forwarded")"
done
echo "latency_s includes quiet_seconds: $quiet (the packaged config has 30)" >&2
