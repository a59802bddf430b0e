#!/usr/bin/env bash
# Test the mrsort Debian package as a hospital would meet it (`make test-package`).
#
#  1. build the .deb (packaging/build-deb.sh) unless DEB=path names one;
#  2. inspect it: files, modes, conffiles, Depends (computed by dpkg-shlibdeps), version,
#     stripped binary without a Swift runtime dependency, models; lintian without errors;
#  3. install it with apt into a clean Debian 12 root (debootstrap --variant=minbase,
#     cached as a tarball under build/), so the Depends line alone must bring every library;
#     check the user, the folders, the enablement, the generator's drop-in,
#     `systemd-analyze verify`, `mrsort --version` and `mrsort check-config` there;
#  4. run the installed agent as user mrsort with the packaged config (no systemd runs in
#     CI: the test plays its part, a notify socket with $WATCHDOG_USEC), drop a real series
#     into /var/lib/mrsort/incoming, reload with SIGHUP while it is pending, and check that
#     it is sorted with every file intact; SIGTERM must exit 0;
#  4b. where systemd-nspawn can boot the root: mrsort.service under a real systemd (started
#     at boot after READY=1, generator drop-in, sandbox seen from inside, reload, journald
#     priorities, stopped by apt-get remove, started by dpkg -i, exit 0 on stop);
#  5. reinstall over a locally edited conffile, remove, purge, and check what stays.
#
# Environment:
#   DEB                  test this .deb instead of building one
#   MRSORT_REALDATA      real series (default ../shared/realdata beside the checkout)
#   TEST_SERIES          series folder of MRSORT_REALDATA to sort (default below)
#   TEST_BOOT_SERIES     the series the systemd probe drops (default below)
#   DEB_OUT              build folder (default build/), also holds the cached root
#   DEBIAN_MIRROR        for debootstrap (default http://deb.debian.org/debian)
#   KEEP_TEST_ROOT=1     leave the installed root for a look afterwards
# Needs root (chroot, mount), debootstrap, dpkg-dev, lintian, python3, network to the mirror.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
out=${DEB_OUT:-$repo/build}
realdata=${MRSORT_REALDATA:-$repo/../shared/realdata}
series=${TEST_SERIES:-dcm_qa_asl__S5_T1_mprage_ns_sag_p2_iso_1.0mm_192}
boot_series=${TEST_BOOT_SERIES:-nichart_dicoms__S19_t1_MPRAGEcr_noGRAPPA}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

failures=()
log() { echo "test-package: $*" >&2; }
die() { echo "test-package: FATAL: $*" >&2; exit 1; }
pass() { echo "  ok   $*" >&2; }
fail() { echo "  FAIL $*" >&2; failures+=("$*"); }
# check DESCRIPTION COMMAND...: one assertion; a failure is recorded and the test goes on.
check() {
    local what=$1; shift
    if "$@"; then pass "$what"; else fail "$what"; fi
}

[ "$(id -u)" -eq 0 ] || die "needs root (chroot, mount, package installation)"
for tool in dpkg-deb lintian debootstrap python3 chroot; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool not found (apt-get install dpkg-dev lintian debootstrap python3)"
done
[ -d "$realdata/$series" ] || die "no real series at $realdata/$series (set MRSORT_REALDATA or TEST_SERIES)"
[ -d "$realdata/$boot_series" ] || die "no real series at $realdata/$boot_series (set TEST_BOOT_SERIES)"

work=$(mktemp -d "${TMPDIR:-/tmp}/mrsort-test-package.XXXXXX")
root="$work/root"
agent_pid=""
listener_pid=""
cleanup() {
    [ -n "$agent_pid" ] && kill -KILL "$agent_pid" 2>/dev/null || true
    [ -n "$listener_pid" ] && kill "$listener_pid" 2>/dev/null || true
    if mountpoint -q "$root/proc" 2>/dev/null; then umount "$root/proc" || umount -l "$root/proc" || true; fi
    if [ "${KEEP_TEST_ROOT:-0}" = 1 ]; then
        log "kept $work"
    elif mountpoint -q "$root/proc" 2>/dev/null; then
        # Never rm -rf through a mounted /proc.
        log "left $work: $root/proc is still mounted"
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT

# ---------------------------------------------------------------------------------------
log "1. build"
if [ -n "${DEB:-}" ]; then
    deb=$DEB
else
    deb=$(DEB_OUT="$out" "$here/build-deb.sh")
fi
[ -f "$deb" ] || die "no package at '$deb'"
log "package: $deb ($(du -h "$deb" | cut -f1))"

# ---------------------------------------------------------------------------------------
log "2. inspect"
field() { dpkg-deb -f "$deb" "$1"; }
version=$(field Version)
depends=$(field Depends)
log "Version: $version"
log "Depends: $depends"
log "Installed-Size: $(field Installed-Size) KiB"

# The version's one source is MRSort.swift's CommandConfiguration (the binary prints it).
source_version=$(sed -n 's/^ *version: "\([^"]*\)",.*/\1/p' "$repo/Sources/mrsort/MRSort.swift" | head -n 1)
check "package version $version is the command's version $source_version plus a Debian revision" \
    test "${version%-*}" = "$source_version"

# Depends: each library the binary needs, by package name (any alternative suffix is fine
# for OpenBLAS: libopenblas0-pthread, -openmp or -serial provide libopenblas0).
for package in libc6 libdcmtk17 libyaml-0-2 libopenblas0; do
    check "Depends names $package" grep -Eq "(^|[ ,|])$package([-a-z]*)?( |,|$)" <<<"$depends"
done

contents=$(dpkg-deb -c "$deb")
has_file() { awk '{print $1, $6}' <<<"$contents" | grep -Fxq -e "$1 ./$2"; }
check "binary /usr/bin/mrsort (0755)"                has_file -rwxr-xr-x usr/bin/mrsort
check "config /etc/mrsort/mrsort.yaml"               has_file -rw-r--r-- etc/mrsort/mrsort.yaml
check "unit mrsort.service"                          has_file -rw-r--r-- lib/systemd/system/mrsort.service
check "folder generator"                             has_file -rwxr-xr-x lib/systemd/system-generators/mrsort-folders-generator
check "sysusers.d entry"                             has_file -rw-r--r-- usr/lib/sysusers.d/mrsort.conf
check "tmpfiles.d entry"                             has_file -rw-r--r-- usr/lib/tmpfiles.d/mrsort.conf
check "man page mrsort(1)"                           has_file -rw-r--r-- usr/share/man/man1/mrsort.1.gz
check "copyright"                                    has_file -rw-r--r-- usr/share/doc/mrsort/copyright
check "changelog.Debian.gz"                          has_file -rw-r--r-- usr/share/doc/mrsort/changelog.Debian.gz
check "every file owned by root:root" \
    test -z "$(awk '$2 != "root/root"' <<<"$contents")"
for model in "$repo"/models/*.safetensors; do
    check "model $(basename "$model")" has_file -rw-r--r-- "usr/share/mrsort/models/$(basename "$model")"
done

extract="$work/extract"
dpkg-deb -R "$deb" "$extract"
check "conffiles lists exactly /etc/mrsort/mrsort.yaml" \
    test "$(cat "$extract/DEBIAN/conffiles")" = /etc/mrsort/mrsort.yaml
check "packaged config is the checkout's etc/mrsort/mrsort.yaml" \
    cmp -s "$extract/etc/mrsort/mrsort.yaml" "$repo/etc/mrsort/mrsort.yaml"
for model in "$repo"/models/*.safetensors; do
    check "packaged $(basename "$model") equals the checkout's" \
        cmp -s "$extract/usr/share/mrsort/models/$(basename "$model")" "$model"
done
binary="$extract/usr/bin/mrsort"
check "binary is stripped (no .symtab)" bash -c "! readelf -S '$binary' | grep -q '\.symtab'"
check "binary needs no Swift runtime library (linked statically)" \
    bash -c "! readelf -d '$binary' | grep NEEDED | grep -q 'libswift\|libFoundation\|libdispatch'"
check "binary is PIE with BIND_NOW" \
    bash -c "readelf -h '$binary' | grep -q 'DYN' && readelf -d '$binary' | grep -Eq 'BIND_NOW|FLAGS.*NOW'"
log "binary: $(du -h "$binary" | cut -f1), NEEDED: $(readelf -d "$binary" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p' | tr '\n' ' ')"

# lintian: errors fail; warnings and infos are listed (packaging/README.md explains the rest;
# lintian-overrides carries the accepted ones with their reasons).
lintian_log="$work/lintian.txt"
lintian_as=()
# lintian warns against running as root; run it as nobody where the package is readable.
if runuser -u nobody -- test -r "$deb" 2>/dev/null; then lintian_as=(runuser -u nobody --); fi
"${lintian_as[@]}" env HOME="$work" lintian --pedantic --display-info "$deb" > "$lintian_log" 2>&1 || true
sed 's/^/    lintian: /' "$lintian_log" >&2
check "lintian reports no errors" bash -c "! grep -q '^E:' '$lintian_log'"
check "lintian ran (no internal failure)" bash -c "! grep -qi 'internal error\|^lintian: .*failed' '$lintian_log'"

# ---------------------------------------------------------------------------------------
log "3. install into a clean Debian 12 root"
cache="$out/cache"
base_tar="$cache/bookworm-minbase.tar"
mkdir -p "$cache"
if [ ! -f "$base_tar" ]; then
    log "debootstrap --variant=minbase bookworm (once; cached as $base_tar)"
    debootstrap --variant=minbase bookworm "$work/base" "$mirror" > "$work/debootstrap.log" 2>&1 \
        || { tail -20 "$work/debootstrap.log" >&2; die "debootstrap failed (network to $mirror?)"; }
    tar -C "$work/base" -cf "$base_tar.tmp" . && mv "$base_tar.tmp" "$base_tar"
    rm -rf "$work/base"
fi
mkdir -p "$root"
tar -C "$root" -xf "$base_tar"
cp /etc/resolv.conf "$root/etc/resolv.conf"
# /proc for systemd's and dpkg's maintainer scripts; a chroot without it mostly works too.
mount -t proc proc "$root/proc" 2>/dev/null || log "could not mount /proc in the root; going on without"
# Downloaded .debs are kept between runs (only the download is saved; apt still resolves
# every dependency from the package's own Depends).
mkdir -p "$cache/archives" "$root/var/cache/apt/archives"
cp "$cache/archives/"*.deb "$root/var/cache/apt/archives/" 2>/dev/null || true

in_root() { chroot "$root" "$@"; }
as_mrsort() { chroot --userspec=mrsort:mrsort "$root" /usr/bin/env -i PATH=/usr/bin:/bin LANG=C.UTF-8 "$@"; }

cp "$deb" "$root/tmp/mrsort.deb"
in_root apt-get update -qq > "$work/apt.log" 2>&1 || { cat "$work/apt.log" >&2; die "apt-get update in the root failed"; }
if in_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends /tmp/mrsort.deb \
        > "$work/install.log" 2>&1; then
    pass "apt-get install ./mrsort.deb in a minimal bookworm root"
else
    cat "$work/install.log" >&2
    die "installing the package failed"
fi
cp "$root/var/cache/apt/archives/"*.deb "$cache/archives/" 2>/dev/null || true
# (apt's "Can not write log (Is /dev/pts mounted?)" is about its terminal log only.)
grep -E '^(Setting up mrsort|mrsort|W:|E:)' "$work/install.log" | grep -v 'Can not write log' \
    | sed 's/^/    install: /' >&2 || true
log "installed with it: $(grep -c '^Setting up' "$work/install.log") packages"

check "installed mrsort --version prints $source_version" \
    test "$(in_root mrsort --version 2>&1)" = "$source_version"
check "installed mrsort check-config /etc/mrsort/mrsort.yaml exits 0" \
    in_root mrsort check-config /etc/mrsort/mrsort.yaml
passwd_entry=$(in_root getent passwd mrsort || true)
log "user: $passwd_entry"
check "system user mrsort (uid < 1000, home /var/lib/mrsort, no login shell)" \
    python3 -c 'import sys; f=sys.argv[1].split(":"); sys.exit(not (len(f)==7 and int(f[2])<1000 and f[5]=="/var/lib/mrsort" and f[6].endswith("nologin")))' "$passwd_entry"
check "group mrsort" in_root getent group mrsort

# Every folder of the packaged tmpfiles.d entry exists with its mode and owner.
while read -r type path mode user group _; do
    [ "$type" = d ] || continue
    want="$(printf '%o' "$((8#$mode))") $user:$group"
    check "$path exists as $want" test "$(in_root stat -c '%a %U:%G' "$path" 2>&1)" = "$want"
done < <(grep -v '^[[:space:]]*#' "$extract/usr/lib/tmpfiles.d/mrsort.conf")

check "mrsort.service enabled (multi-user.target.wants link)" \
    test -L "$root/etc/systemd/system/multi-user.target.wants/mrsort.service"

# The generator, run as systemd would: its drop-in must make every configured folder writable.
in_root /lib/systemd/system-generators/mrsort-folders-generator \
    /run/systemd/generator /run/systemd/generator.early /run/systemd/generator.late 2> "$work/generator.log" || true
dropin="$root/run/systemd/generator/mrsort.service.d/50-folders.conf"
folders=$(in_root mrsort check-config /etc/mrsort/mrsort.yaml --folders 2>/dev/null || true)
if [ -f "$dropin" ]; then
    sed 's/^/    drop-in: /' "$dropin" >&2
    for folder in $folders; do
        check "generated drop-in makes $folder writable" grep -Fxq "ReadWritePaths=\"-$folder\"" "$dropin"
    done
else
    cat "$work/generator.log" >&2
    fail "the generator wrote no drop-in"
fi
check "check-config --folders names the watched folder /var/lib/mrsort/incoming" \
    grep -Fxq /var/lib/mrsort/incoming <<<"$folders"

# systemd-analyze verify: the unit with its drop-in, as the root's systemd would load it.
# man-db lets verify check that Documentation=man:mrsort(1) resolves to the installed page.
in_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends man-db \
    > "$work/man-db.log" 2>&1 || log "could not install man-db in the root; verify will flag the man page"
if in_root sh -c 'command -v systemd-analyze' >/dev/null 2>&1; then
    if in_root env SYSTEMD_LOG_LEVEL=notice systemd-analyze verify /lib/systemd/system/mrsort.service \
            > "$work/verify.log" 2>&1; then
        pass "systemd-analyze verify mrsort.service"
    else
        fail "systemd-analyze verify mrsort.service"
    fi
    sed 's/^/    verify: /' "$work/verify.log" >&2
    in_root systemd-analyze security --offline=yes /lib/systemd/system/mrsort.service 2>/dev/null \
        | tail -n 1 | sed 's/^/    security: /' >&2 || true

    # The generator's quoting, as systemd parses it: folder names with a space, a '%' and a
    # '"' must reach ReadWritePaths= unchanged; a relative path is refused.
    mkdir -p "$root/tmp/gen-test/units" "$root/tmp/gen-test/out"
    cat > "$root/tmp/gen-test/fake-mrsort" <<'FAKE'
#!/bin/sh
printf '%s\n' "/srv/dicom in/a" "/srv/100%/b" '/srv/q"uote' "relative/x"
FAKE
    chmod +x "$root/tmp/gen-test/fake-mrsort"
    touch "$root/tmp/gen-test/mrsort.yaml"
    in_root env MRSORT_GENERATOR_BINARY=/tmp/gen-test/fake-mrsort MRSORT_GENERATOR_CONFIG=/tmp/gen-test/mrsort.yaml \
        /lib/systemd/system-generators/mrsort-folders-generator /tmp/gen-test/out 2>/dev/null || true
    # The unit with stand-ins for binaries, so that only the paths are under test.
    sed 's|^ExecStart=.*|ExecStart=/bin/true|; s|^ExecReload=.*||; s|^Documentation=.*||' \
        "$root/lib/systemd/system/mrsort.service" > "$root/tmp/gen-test/units/mrsort.service"
    cp -r "$root/tmp/gen-test/out/mrsort.service.d" "$root/tmp/gen-test/units/" 2>/dev/null || true
    parsed=$(in_root env SYSTEMD_LOG_LEVEL=debug systemd-analyze verify /tmp/gen-test/units/mrsort.service 2>&1 \
        | sed -n 's/^[[:space:]]*ReadWritePaths: //p' | head -n 1)
    check "generator output parses to ReadWritePaths: -/srv/dicom in/a -/srv/100%/b -/srv/q\"uote (got: $parsed)" \
        test "$parsed" = '-/srv/dicom in/a -/srv/100%/b -/srv/q"uote'
else
    log "SKIP systemd-analyze verify: systemd-analyze is not installed in the root"
fi

# ---------------------------------------------------------------------------------------
log "4. run the installed agent as user mrsort"
# `mrsort help X` and `mrsort X --help` exit 0 even for an unknown X: ask the help dump.
has_subcommand() {
    in_root mrsort --experimental-dump-help 2>/dev/null | python3 -c '
import json, sys
names = [c["commandName"] for c in json.load(sys.stdin)["command"].get("subcommands", [])]
sys.exit(sys.argv[1] not in names)' "$1"
}
if ! has_subcommand watch; then
    fail "WAITING: this build has no 'mrsort watch'; the end-to-end run cannot happen yet"
else
    # What the packaged models make of the series, to know where it must land.
    in_root mkdir -p /tmp/expect
    cp -r "$realdata/$series/." "$root/tmp/expect/"
    chmod -R a+rX "$root/tmp/expect"
    expected=$(as_mrsort mrsort classify /tmp/expect --json 2>/dev/null | python3 -c '
import json, sys
rows = json.load(sys.stdin)
rows = rows.get("series", rows) if isinstance(rows, dict) else rows
assert len(rows) == 1, f"expected one series, got {len(rows)}"
r = rows[0]
print(r["sequence"], r["orientation"], r["confidence"])') || die "mrsort classify --json on $series failed"
    read -r want_sequence want_orientation want_confidence <<<"$expected"
    minimum=$(sed -n 's/^ *minimum_confidence: *\([0-9.]*\).*/\1/p' "$root/etc/mrsort/mrsort.yaml" | head -n 1)
    destination=sorted
    python3 -c "import sys; sys.exit(not float('$want_confidence') < float('$minimum'))" && destination=review
    log "series $series: $want_sequence $want_orientation, confidence $want_confidence → expected in /var/lib/mrsort/$destination"

    # systemd's side of Type=notify: a datagram socket the agent reports READY=1 and
    # WATCHDOG=1 to. WATCHDOG_USEC=2 s, so the agent must ping about every second.
    notify_log="$work/notify.log"
    python3 - "$root/run/mrsort-test-notify" "$notify_log" <<'PY' &
import os, socket, sys, time
path, log = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
os.chmod(path, 0o666)
with open(log, "a", buffering=1) as f:
    while True:
        data = s.recv(4096).decode(errors="replace")
        for line in data.splitlines():
            f.write(f"{time.monotonic():.3f} {line}\n")
PY
    listener_pid=$!
    for _ in $(seq 50); do [ -S "$root/run/mrsort-test-notify" ] && break; sleep 0.1; done
    : > "$notify_log"

    agent_log="$work/agent.log"
    (
        # Same pid through exec, so WATCHDOG_PID names the agent itself, as systemd sets it;
        # the unit's UMask=0027 too.
        umask 0027
        exec chroot --userspec=mrsort:mrsort "$root" /usr/bin/env -i PATH=/usr/bin:/bin LANG=C.UTF-8 \
            NOTIFY_SOCKET=/run/mrsort-test-notify WATCHDOG_USEC=2000000 WATCHDOG_PID=$BASHPID \
            /usr/bin/mrsort watch --config /etc/mrsort/mrsort.yaml
    ) > "$agent_log" 2>&1 &
    agent_pid=$!

    wait_for() {  # wait_for SECONDS COMMAND...: poll once a second
        local deadline=$((SECONDS + $1)); shift
        until "$@"; do [ "$SECONDS" -lt "$deadline" ] || return 1; sleep 1; done
    }
    if wait_for 60 grep -q 'READY=1' "$notify_log"; then
        pass "agent reported READY=1 over \$NOTIFY_SOCKET"
    else
        fail "agent reported no READY=1 within 60 s"
    fi

    # A DICOM receiver in group mrsort drops the series, file by file.
    n_files=$(find "$realdata/$series" -type f | wc -l)
    in_root install -d -m 0755 /tmp/drop
    cp -r "$realdata/$series" "$root/tmp/drop/series"
    # The real-data copy may be read-only; a receiver writes files it (and the agent) may delete.
    chmod -R u+w,a+rX "$root/tmp/drop"
    as_mrsort cp -r /tmp/drop/series "/var/lib/mrsort/incoming/$series"
    # Reload while the series is pending (quiet_seconds has not passed): it must survive.
    sleep 2
    kill -HUP "$agent_pid" 2>/dev/null || true
    sleep 2
    check "agent still runs after SIGHUP" kill -0 "$agent_pid"

    quiet=$(sed -n 's/^ *quiet_seconds: *\([0-9]*\).*/\1/p' "$root/etc/mrsort/mrsort.yaml" | head -n 1)
    count_landed() { [ "$(find "$root/var/lib/mrsort/$destination" -type f -name '*.dcm' | wc -l)" -ge "$n_files" ]; }
    if wait_for $((quiet + 90)) count_landed; then
        pass "$n_files files of $series arrived in /var/lib/mrsort/$destination"
    else
        fail "the series did not arrive in /var/lib/mrsort/$destination within $((quiet + 90)) s"
    fi
    find "$root/var/lib/mrsort" -path "$root/var/lib/mrsort/state" -prune -o -type f -print \
        | sed "s|^$root|    after: |" | head -n 30 >&2

    # Every file exactly once, byte for byte (action move: content unchanged).
    sums() { find "$1" -type f -name "${2:-*}" -exec md5sum {} + | cut -d' ' -f1 | sort; }
    check "sorted files are the dropped files, each once, unchanged" \
        test "$(sums "$realdata/$series")" = "$(sums "$root/var/lib/mrsort/$destination" '*.dcm')"
    check "no DICOM file left in incoming" \
        test -z "$(find "$root/var/lib/mrsort/incoming" -type f)"
    check "nothing quarantined" test -z "$(find "$root/var/lib/mrsort/quarantine" -type f)"
    series_dirs=$(find "$root/var/lib/mrsort/$destination" -type f -name '*.dcm' -printf '%h\n' | sort -u)
    check "one series folder, named …_${want_sequence}_${want_orientation}" \
        bash -c '[ "$(wc -l <<<"$1")" -eq 1 ] && [[ "$1" == *_"$2"_"$3" ]]' _ "$series_dirs" "$want_sequence" "$want_orientation"
    # A move keeps the file's own mode (it is a rename or a hard link), so what keeps other
    # users out is /var/lib/mrsort's mode: try as nobody.
    first_file=$(find "$root/var/lib/mrsort/$destination" -type f -name '*.dcm' | head -n 1)
    check "sorted files cannot be read by other users (tried as nobody)" \
        bash -c "! chroot --userspec=nobody:nogroup '$root' test -r '${first_file#"$root"}'"

    pings=$(grep -c 'WATCHDOG=1' "$notify_log" || true)
    check "watchdog pings at about WATCHDOG_USEC/2 (saw $pings)" test "$pings" -ge 3

    if as_mrsort mrsort status --config /etc/mrsort/mrsort.yaml > "$work/status.txt" 2>&1; then
        pass "mrsort status as user mrsort"
    else
        fail "mrsort status as user mrsort"
    fi
    sed 's/^/    status: /' "$work/status.txt" >&2
    # What an admin reads there must include the series just handled: counters and decision.
    status_shows_series() {
        as_mrsort mrsort status --json --config /etc/mrsort/mrsort.yaml 2>/dev/null | python3 -c '
import json, sys
s = json.load(sys.stdin)
c = s["counters"]
n, sequence, destination = int(sys.argv[1]), sys.argv[2], sys.argv[3]
handled = c["review"] >= 1 if destination == "review" else c["filesDelivered"] >= n
recent = [d for d in s["recent"] if d["classification"]["sequence"] == sequence]
sys.exit(not (c["seriesClassified"] >= 1 and handled and recent))' "$n_files" "$want_sequence" "$destination"
    }
    check "mrsort status counts the series and lists its decision ($want_sequence)" \
        wait_for 15 status_shows_series

    kill -TERM "$agent_pid" 2>/dev/null || true
    status=0
    wait_for 30 bash -c "! kill -0 $agent_pid 2>/dev/null" || true
    if kill -0 "$agent_pid" 2>/dev/null; then
        fail "agent still running 30 s after SIGTERM"
        kill -KILL "$agent_pid" 2>/dev/null || true
    else
        wait "$agent_pid" || status=$?
        check "SIGTERM: agent exits 0 (exit $status)" test "$status" -eq 0
    fi
    agent_pid=""
    sed 's/^/    agent: /' "$agent_log" | tail -n 40 >&2
    kill "$listener_pid" 2>/dev/null || true
    listener_pid=""
fi

# ---------------------------------------------------------------------------------------
log "4b. boot the root with systemd (systemd-nspawn) and probe the service there"
# Where systemd-nspawn can boot a container, the same root runs mrsort.service under a real
# systemd: Type=notify, the generator's drop-in, the sandbox, reload, and the maintainer
# scripts starting and stopping it (test-boot-probe.sh, run inside as a oneshot unit).
if ! command -v systemd-nspawn >/dev/null 2>&1; then
    log "SKIP the systemd boot: systemd-nspawn is not installed (apt-get install systemd-container)"
elif ! has_subcommand watch; then
    fail "WAITING: this build has no 'mrsort watch'; the service cannot run yet"
else
    if mountpoint -q "$root/proc"; then umount "$root/proc"; fi
    rm -rf "$root/srv/mrsort-probe" "$root/root/probe-"*
    mkdir -p "$root/srv/mrsort-probe"
    cp -r "$realdata/$boot_series" "$root/srv/mrsort-probe/series"
    cp "$deb" "$root/srv/mrsort-probe/mrsort.deb"
    chmod -R u+w,a+rX "$root/srv/mrsort-probe"
    install -m 0755 "$here/test-boot-probe.sh" "$root/usr/local/sbin/mrsort-boot-probe"
    cat > "$root/etc/systemd/system/mrsort-boot-probe.service" <<'UNIT'
[Unit]
Description=test-package: probe mrsort.service under systemd
After=mrsort.service
[Service]
Type=oneshot
TimeoutStartSec=10min
ExecStart=/usr/local/sbin/mrsort-boot-probe
[Install]
WantedBy=multi-user.target
UNIT
    ln -sf /etc/systemd/system/mrsort-boot-probe.service \
        "$root/etc/systemd/system/multi-user.target.wants/mrsort-boot-probe.service"
    # --register=no --keep-unit: no host systemd or machined needed to run the container.
    timeout 600 systemd-nspawn -q -D "$root" --register=no --keep-unit -b > "$work/nspawn.log" 2>&1 || true
    if [ ! -f "$root/root/probe-results" ]; then
        tail -n 15 "$work/nspawn.log" | sed 's/^/    nspawn: /' >&2
        log "SKIP the systemd boot: systemd-nspawn could not boot the root on this machine (log above)"
    else
        while read -r verdict what; do
            case "$verdict" in
                ok) pass "systemd: $what" ;;
                FAIL) fail "systemd: $what" ;;
            esac
        done < "$root/root/probe-results"
        grep -qx done "$root/root/probe-results" || fail "systemd: the probe did not finish (timeout?)"
        sed 's/^/    service journal: /' "$root/root/probe-journal.log" 2>/dev/null | tail -n 25 >&2 || true
        if grep -q '^FAIL' "$root/root/probe-results"; then
            for f in "$root/root/probe-"{status,remove,install}.log; do
                [ -f "$f" ] && sed "s|^|    $(basename "$f"): |" "$f" | tail -n 15 >&2
            done
        fi
    fi
    rm -f "$root/etc/systemd/system/multi-user.target.wants/mrsort-boot-probe.service" \
        "$root/etc/systemd/system/mrsort-boot-probe.service" "$root/usr/local/sbin/mrsort-boot-probe"
    rm -rf "$root/srv/mrsort-probe"
    mount -t proc proc "$root/proc" 2>/dev/null || true
fi

# ---------------------------------------------------------------------------------------
log "5. reinstall, remove, purge"
echo "# local edit by test-package" >> "$root/etc/mrsort/mrsort.yaml"
in_root env DEBIAN_FRONTEND=noninteractive dpkg -i --force-confold /tmp/mrsort.deb > "$work/reinstall.log" 2>&1 \
    || { cat "$work/reinstall.log" >&2; fail "reinstalling the package"; }
check "reinstall keeps the local edit of the conffile" \
    grep -q 'local edit by test-package' "$root/etc/mrsort/mrsort.yaml"

# Stand-ins for data and state the agent may have left (also where step 4 could not run).
in_root install -d -o mrsort -g mrsort /var/lib/mrsort/sorted/P1 /var/lib/mrsort/state
echo data > "$root/var/lib/mrsort/sorted/P1/image.dcm"
echo journal > "$root/var/lib/mrsort/state/journal"

in_root env DEBIAN_FRONTEND=noninteractive apt-get remove -y -q mrsort > "$work/remove.log" 2>&1 \
    || { cat "$work/remove.log" >&2; fail "apt-get remove mrsort"; }
check "remove: binary gone" test ! -e "$root/usr/bin/mrsort"
check "remove: unit gone" test ! -e "$root/lib/systemd/system/mrsort.service"
check "remove: config kept" test -f "$root/etc/mrsort/mrsort.yaml"
check "remove: state kept" test -f "$root/var/lib/mrsort/state/journal"
check "remove: sorted data kept" test -f "$root/var/lib/mrsort/sorted/P1/image.dcm"
check "remove: user kept" in_root getent passwd mrsort

# Whether the agent steps above left DICOM files in review or quarantine (that depends on the
# models' confidence for the series they sorted): such folders must survive the purge.
holds_files() { [ -n "$(find "$1" -type f 2>/dev/null | head -n 1)" ]; }
review_held=no; holds_files "$root/var/lib/mrsort/review" && review_held=yes
quarantine_held=no; holds_files "$root/var/lib/mrsort/quarantine" && quarantine_held=yes

in_root env DEBIAN_FRONTEND=noninteractive dpkg --purge mrsort > "$work/purge.log" 2>&1 \
    || { cat "$work/purge.log" >&2; fail "dpkg --purge mrsort"; }
sed 's/^/    purge: /' "$work/purge.log" >&2
check "purge: /etc/mrsort gone" test ! -e "$root/etc/mrsort"
check "purge: state gone" test ! -e "$root/var/lib/mrsort/state"
check "purge: sorted DICOM data kept" test -f "$root/var/lib/mrsort/sorted/P1/image.dcm"
check "purge: incoming, holding only an emptied drop folder, removed" test ! -e "$root/var/lib/mrsort/incoming"
for folder in review quarantine; do
    held=$review_held; [ "$folder" = quarantine ] && held=$quarantine_held
    if [ "$held" = yes ]; then
        check "purge: $folder, holding DICOM files, kept" holds_files "$root/var/lib/mrsort/$folder"
    else
        check "purge: empty $folder removed" test ! -e "$root/var/lib/mrsort/$folder"
    fi
done
check "purge: no enablement or mask links left" \
    test -z "$(find "$root/etc/systemd" -name 'mrsort.service' 2>/dev/null)"
check "purge: dpkg knows nothing of mrsort" bash -c "! chroot '$root' dpkg -s mrsort >/dev/null 2>&1"
log "what stays after purge: $(cd "$root" && find var/lib/mrsort -maxdepth 2 2>/dev/null | tr '\n' ' ')user: $(in_root getent passwd mrsort || echo none)"

# ---------------------------------------------------------------------------------------
if [ "${#failures[@]}" -gt 0 ]; then
    log "${#failures[@]} check(s) failed:"
    printf '  - %s\n' "${failures[@]}" >&2
    exit 1
fi
log "all checks passed"
