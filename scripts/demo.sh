#!/usr/bin/env bash
# The agent's main job on a sample drop folder: start `mrsort watch` with the shipped default
# configuration (etc/mrsort/mrsort.yaml, its /var/lib/mrsort folders moved under a temporary
# folder and a 3-second quiet period), drop real series from ../shared/realdata into it — some
# renamed into place, one junk file — wait until the drop folder is empty, and show the sorted
# layout, the quarantine and `mrsort status`.
#
# usage: scripts/demo.sh MRSORT_BINARY REALDATA_DIR [DEMO_DIR]
set -euo pipefail

mrsort=$1
realdata=$2
root=${3:-$(mktemp -d /tmp/mrsort-demo.XXXXXX)}
here=$(cd "$(dirname "$0")/.." && pwd)

mkdir -p "$root"/{incoming,sorted,review,quarantine,state}
sed -e "s#/var/lib/mrsort#$root#g" -e 's/quiet_seconds: 30/quiet_seconds: 3/' \
    "$here/etc/mrsort/mrsort.yaml" > "$root/mrsort.yaml"
"$mrsort" check-config "$root/mrsort.yaml"

MRSORT_MODELS="$here/models" "$mrsort" watch --config "$root/mrsort.yaml" 2> "$root/agent.log" &
agent=$!
trap 'kill "$agent" 2>/dev/null || true' EXIT
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
echo; echo "== agent log ($root/agent.log)"
cat "$root/agent.log"
left=$(find "$root/incoming" -type f | wc -l)
kill -TERM "$agent"; wait "$agent"
trap - EXIT
[ "$left" -eq 0 ] || { echo "demo: $left file(s) still in the drop folder" >&2; exit 1; }
