#!/usr/bin/env bash
# The agent's main job on a sample drop folder: start `mrsort watch` with the shipped default
# configuration (etc/mrsort/mrsort.yaml, its /var/lib/mrsort folders moved under a temporary
# folder and a 3-second quiet period), drop real series from ../shared/realdata into it — some
# renamed into place, one junk file — wait until the drop folder is empty, and show the sorted
# layout, the quarantine and `mrsort status`.
#
# usage: scripts/demo.sh MRSORT_BINARY REALDATA_DIR [DEMO_DIR]
#
# Without DEMO_DIR the demo works in a temporary folder and removes it when it ends, however it
# ends. With DEMO_DIR (`make demo DEMO_DIR=…`: a new or empty folder) everything is kept there to
# look at afterwards.
set -euo pipefail

mrsort=$1
realdata=$2
here=$(cd "$(dirname "$0")/.." && pwd)
if [ -n "${3:-}" ]; then
    root=$3
    mkdir -p "$root"
    [ -z "$(ls -A "$root")" ] || { echo "demo: $root is not empty; give a new or empty folder" >&2; exit 1; }
    root=$(cd "$root" && pwd)
    temporary=""
else
    root=$(mktemp -d "${TMPDIR:-/tmp}/mrsort-demo.XXXXXX")
    temporary=$root
fi
agent=""
cleanup() {
    if [ -n "$agent" ]; then kill "$agent" 2>/dev/null || true; wait "$agent" 2>/dev/null || true; fi
    if [ -n "$temporary" ]; then rm -rf "$temporary"; fi
}
trap cleanup EXIT

mkdir -p "$root"/{incoming,sorted,review,quarantine,state}
sed -e "s#/var/lib/mrsort#$root#g" -e 's/quiet_seconds: 30/quiet_seconds: 3/' \
    "$here/etc/mrsort/mrsort.yaml" > "$root/mrsort.yaml"
"$mrsort" check-config "$root/mrsort.yaml"

MRSORT_MODELS="$here/models" "$mrsort" watch --config "$root/mrsort.yaml" 2> "$root/agent.log" &
agent=$!
sleep 1

# Siemens 2D T1, Philips DTI, Siemens 3D T1 post-contrast (RIDER), Siemens XA enhanced ADC.
series=(dcm_qa_decubitus__S3_t1_fl2d_sag dcm_qa_philips__S601_dti_ax dbdicom_rider__S14_sag_3d_gre_+c
        dcm_qa_xa30__S11_DWI_dir80_PA_ADC_mf)
for name in "${series[@]}"; do
    [ -d "$realdata/$name" ] || { echo "demo: $realdata/$name is missing" >&2; exit 1; }
    mkdir -p "$root/incoming/$name"
    for file in "$realdata/$name"/*; do
        # Half the files arrive as a sender that writes a partial name and renames it.
        if (( RANDOM % 2 )); then
            cp "$file" "$root/incoming/$name/$(basename "$file").part"
            mv "$root/incoming/$name/$(basename "$file").part" "$root/incoming/$name/$(basename "$file")"
        else
            cp "$file" "$root/incoming/$name/"
        fi
    done
done
echo "not an image" > "$root/incoming/notes.txt"
echo "demo: dropped ${#series[@]} series and one junk file into $root/incoming"

for _ in $(seq 1 120); do
    [ -z "$(find "$root/incoming" -type f)" ] && break
    sleep 1
done
sleep 2

echo; echo "== sorted ($root/sorted)"
(cd "$root/sorted" && find . -type f | sed 's#/[^/]*$##' | sort | uniq -c)
echo; echo "== quarantine"
find "$root/quarantine" -name '*.reason' -exec sed -n 's/^reason: //p' {} \;
echo; echo "== mrsort status"
"$mrsort" status --config "$root/mrsort.yaml"
echo "(confidence: the class's share of the votes, two per image read: the forest's and the CNN's."
echo " 0.50 = half of them, typically all the forest's and none of the CNN's (its own vote: the cnn column"
echo " of mrsort classify); the models disagree and the forest's class stands. A series below"
echo " minimum_confidence, 0.5 here, would go to the review folder instead.)"
echo; echo "== agent log ($root/agent.log)"
cat "$root/agent.log"
left=$(find "$root/incoming" -type f | wc -l)
kill -TERM "$agent"; wait "$agent"
agent=""
if [ -n "$temporary" ]; then
    echo; echo "demo: removing $root (keep the folders with: make demo DEMO_DIR=/some/new/folder)"
else
    echo; echo "demo: everything is kept in $root"
fi
[ "$left" -eq 0 ] || { echo "demo: $left file(s) still in the drop folder" >&2; exit 1; }
