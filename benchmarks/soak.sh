#!/usr/bin/env bash
# Fault-injection soak of `mrsort watch`: ROUNDS rounds (default 100), each a fresh configuration,
# an action in turn (move, copy, rewrite, rewrite+move, rewrite+copy) and an output file system in
# turn (the drop folder's own, and /dev/shm when it is another one), real series copied in, the
# agent killed with SIGKILL at random instants while it sorts (1–3 times), restarted, left to
# finish and stopped with SIGTERM; then every SOPInstanceUID is looked for in every folder:
# lost, duplicated, left over (temporaries, files left in a move's drop folder, open journal
# intents) and corrupted files are counted per action and file system (benchmarks/soak.py says
# exactly how). Exits 1 if any count is not zero; failing rounds' folders are kept under WORK.
#
# usage: benchmarks/soak.sh MRSORT [ROUNDS] [WORK]
#   e.g. benchmarks/soak.sh .build/release/mrsort 10          # smoke test, about a minute
# environment: PYTHON (a python3 with pydicom; default python3), SOAK_SEED, SOAK_SERIES,
#   SOAK_MAX_KILLS, SOAK_KILL_WINDOW, SOAK_SECOND_FS, SOAK_REALDATA, SOAK_DUPLICATES, SOAK_TIMEOUT,
#   SOAK_KEEP (see benchmarks/soak.py)
set -euo pipefail
mrsort=$(realpath "$1") rounds=${2:-100} work=${3:-$(mktemp -d /tmp/mrsort-soak.XXXXXX)}
here=$(cd "$(dirname "$0")" && pwd)
python=${PYTHON:-python3}
if ! "$python" -c 'import pydicom' 2>/dev/null; then
    echo "soak.sh: $python has no pydicom; set PYTHON to one that has (pip install pydicom)" >&2
    exit 2
fi
exec "$python" "$here/soak.py" "$mrsort" "$rounds" "$work"
