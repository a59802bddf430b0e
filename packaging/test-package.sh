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
#  4a. run the installed receiver (`mrsort receive`) the same way with the packaged config plus
#     a receivers: entry, send it a real series from this host with storescu, and check the
#     files, the refused AE titles, the status file, the watchdog and the exit on SIGTERM;
#  4b. where systemd-nspawn can boot the root: mrsort.service under a real systemd (started
#     at boot after READY=1, generator drop-in, sandbox seen from inside, reload, journald
#     priorities, stopped by apt-get remove, started by dpkg -i, exit 0 on stop), and the
#     receiver unit mrsort-receiver@scanner enabled there by `systemctl enable --now`: this host
#     sends it a series over the shared network namespace, the agent sorts it and forwards it to
#     a storescp on this host acting as the PACS, each instance once;
#  5. reinstall over a locally edited conffile, remove, purge, and check what stays.
#
# Environment:
#   DEB                  test this .deb instead of building one
#   MRSORT_REALDATA      real series (default ../shared/realdata beside the checkout)
#   TEST_SERIES          series folder of MRSORT_REALDATA to sort (default below)
#   TEST_BOOT_SERIES     the series the systemd probe drops (default below)
#   TEST_RECEIVE_SERIES  the series sent by C-STORE to the receiver (default below)
#   TEST_RECEIVER_PORT   the receiver's port (default 11112), on this host's loopback
#   TEST_PACS_PORT       the stand-in PACS's port (default 11113), on this host's loopback
#   DEB_OUT              build folder (default build/), also holds the cached root
#   DEBIAN_MIRROR        for debootstrap (default http://deb.debian.org/debian)
#   KEEP_TEST_ROOT=1     leave the installed root for a look afterwards
# Needs root (chroot, mount), debootstrap, dpkg-dev, lintian, python3, DCMTK's command-line
# tools (storescu, storescp, dcmdump), network to the mirror.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
out=${DEB_OUT:-$repo/build}
realdata=${MRSORT_REALDATA:-$repo/../shared/realdata}
series=${TEST_SERIES:-dcm_qa_asl__S5_T1_mprage_ns_sag_p2_iso_1.0mm_192}
boot_series=${TEST_BOOT_SERIES:-nichart_dicoms__S19_t1_MPRAGEcr_noGRAPPA}
receive_series=${TEST_RECEIVE_SERIES:-example-dicom-structural__S401_anat-T1w}
receiver_port=${TEST_RECEIVER_PORT:-11112}
pacs_port=${TEST_PACS_PORT:-11113}
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
wait_for() {  # wait_for SECONDS COMMAND...: poll once a second
    local deadline=$((SECONDS + $1)); shift
    until "$@"; do [ "$SECONDS" -lt "$deadline" ] || return 1; sleep 1; done
}

[ "$(id -u)" -eq 0 ] || die "needs root (chroot, mount, package installation)"
for tool in dpkg-deb lintian debootstrap python3 chroot; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool not found (apt-get install dpkg-dev lintian debootstrap python3)"
done
# The DICOM side: a sender, a stand-in PACS and an independent reader of what arrived.
for tool in storescu storescp dcmdump; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool not found (apt-get install dcmtk)"
done
[ -d "$realdata/$series" ] || die "no real series at $realdata/$series (set MRSORT_REALDATA or TEST_SERIES)"
[ -d "$realdata/$boot_series" ] || die "no real series at $realdata/$boot_series (set TEST_BOOT_SERIES)"
[ -d "$realdata/$receive_series" ] || die "no real series at $realdata/$receive_series (set TEST_RECEIVE_SERIES)"
# The receiver and the stand-in PACS listen on this host's loopback (the booted root shares it).
port_free() { python3 -c 'import socket, sys; s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("127.0.0.1", int(sys.argv[1])))' "$1" 2>/dev/null; }
for port in "$receiver_port" "$pacs_port"; do
    port_free "$port" || die "port $port is in use on this host (set TEST_RECEIVER_PORT / TEST_PACS_PORT)"
done

work=$(mktemp -d "${TMPDIR:-/tmp}/mrsort-test-package.XXXXXX")
root="$work/root"
agent_pid=""
listener_pid=""
receiver_pid=""
pacs_pid=""
nspawn_pid=""
cleanup() {
    [ -n "$agent_pid" ] && kill -KILL "$agent_pid" 2>/dev/null || true
    [ -n "$receiver_pid" ] && kill -KILL "$receiver_pid" 2>/dev/null || true
    [ -n "$listener_pid" ] && kill "$listener_pid" 2>/dev/null || true
    [ -n "$pacs_pid" ] && kill "$pacs_pid" 2>/dev/null || true
    if [ -n "$nspawn_pid" ] && kill -0 "$nspawn_pid" 2>/dev/null; then
        # timeout passes SIGTERM on; systemd-nspawn -b turns it into an orderly shutdown.
        kill -TERM "$nspawn_pid" 2>/dev/null || true
        wait_for 30 bash -c "! kill -0 $nspawn_pid 2>/dev/null" || kill -KILL "$nspawn_pid" 2>/dev/null || true
    fi
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
check "template unit mrsort-receiver@.service"       has_file -rw-r--r-- lib/systemd/system/mrsort-receiver@.service
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
check "no mrsort-receiver@ instance enabled by the package (the admin names and enables them)" \
    test -z "$(find "$root/etc/systemd/system" -name 'mrsort-receiver@*' 2>/dev/null)"

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
# A template's drop-ins apply to each of its instances: every receiver gets the same paths.
check "the generator wrote the same drop-in for mrsort-receiver@.service" \
    cmp -s "$dropin" "$root/run/systemd/generator/mrsort-receiver@.service.d/50-folders.conf"

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
    # The template as an instance (the path names one: verify loads mrsort-receiver@.service
    # for it), with the generator's drop-in for the template.
    if in_root env SYSTEMD_LOG_LEVEL=notice systemd-analyze verify /lib/systemd/system/mrsort-receiver@scanner.service \
            > "$work/verify-receiver.log" 2>&1; then
        pass "systemd-analyze verify mrsort-receiver@scanner.service"
    else
        fail "systemd-analyze verify mrsort-receiver@scanner.service"
    fi
    sed 's/^/    verify: /' "$work/verify-receiver.log" >&2
    in_root systemd-analyze security --offline=yes /lib/systemd/system/mrsort-receiver@scanner.service 2>/dev/null \
        | tail -n 1 | sed 's/^/    security: /' >&2 || true
    # The receiver's sandbox is the agent's: the same options, line for line.
    sandbox() { sed -n '/^# Sandbox/,/^\[Install\]/p' "$1" | grep -E '^[A-Za-z]+='; }
    check "mrsort-receiver@.service has mrsort.service's sandbox options" \
        test "$(sandbox "$root/lib/systemd/system/mrsort-receiver@.service")" = "$(sandbox "$root/lib/systemd/system/mrsort.service")"

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
# systemd's side of Type=notify: a datagram socket at SOCKET (a path in the root) whose
# messages (READY=1, WATCHDOG=1, ...) go to LOG with a timestamp. Sets listener_pid.
start_notify_listener() {  # start_notify_listener SOCKET LOG
    rm -f "$root$1"
    python3 - "$root$1" "$2" <<'PY' &
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
    for _ in $(seq 50); do [ -S "$root$1" ] && break; sleep 0.1; done
    : > "$2"
}
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
    start_notify_listener /run/mrsort-test-notify "$notify_log"

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
log "4a. run the installed receiver as user mrsort (mrsort receive)"
# The packaged config as an admin extends it for a DICOM node: a receiver writing into the
# watched folder (only the test's sender, TESTSCU, may store), and forwarding of every sorted
# series to a PACS, stood in for by a storescp on this host.
with_receiver() {  # with_receiver CONFIG → the extended config on stdout
    python3 - "$1" "$receiver_port" "$pacs_port" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
receivers = f"""receivers:
  - name: scanner
    ae_title: MRSORT
    port: {sys.argv[2]}
    folder: /var/lib/mrsort/incoming
    allowed_calling_ae_titles: [TESTSCU]
    maximum_associations: 4
    minimum_free_megabytes: 64
    timeout_seconds: 30
"""
destinations = f"""destinations:
  - name: pacs
    host: 127.0.0.1
    port: {sys.argv[3]}
    called_ae_title: PACS
    calling_ae_title: MRSORT
    retries: 5
    retry_seconds: 10
    timeout_seconds: 30
"""
# The rule's `forward: []` (or, in a config without one, a new line after its triggers).
if re.search(r"^    forward: \[\]$", text, re.M):
    text = re.sub(r"^    forward: \[\]$", lambda m: "    forward: [pacs]", text, count=1, flags=re.M)
elif not re.search(r"^    forward:", text, re.M):
    text = re.sub(r"^    triggers: \[\]$", lambda m: m.group(0) + "\n    forward: [pacs]", text, count=1, flags=re.M)
# The top-level `receivers: []` and `destinations: []`, or new keys at the end.
for key, block in (("receivers", receivers), ("destinations", destinations)):
    if re.search(rf"^{key}: \[\]$", text, re.M):
        text = re.sub(rf"^{key}: \[\]\n", lambda m: block, text, count=1, flags=re.M)
    elif not re.search(rf"^{key}:", text, re.M):
        text += "\n" + block
sys.stdout.write(text)
PY
}
# What a receiver keeps of a sent file: its SOP Instance UID (the file's name) and its data set
# (the receiver writes a file meta header of its own), read by DCMTK's dcmdump.
sop_uid() { dcmdump -q +P SOPInstanceUID "$1" 2>/dev/null | sed -n 's/.*\[\(.*\)\].*/\1/p' | head -n 1; }
dataset_sum() {
    dcmdump -q +L "$1" 2>/dev/null | sed -n '/^# Dicom-Data-Set/,$p' | grep -v '^# Used TransferSyntax' \
        | md5sum | cut -d' ' -f1
}
mapfile -t receive_files < <(find "$realdata/$receive_series" -type f | sort)
n_receive=${#receive_files[@]}
receive_uids=$(for f in "${receive_files[@]}"; do sop_uid "$f"; done | sort)
receive_sums=$(for f in "${receive_files[@]}"; do dataset_sum "$f"; done | sort)
[ "$(grep -c . <<<"$receive_uids")" -eq "$n_receive" ] || die "dcmdump read no SOP Instance UID from some file of $receive_series"
incoming="$root/var/lib/mrsort/incoming"
# Where the agent will put the series: review when the packaged models' confidence is under the
# config's minimum (as step 4 decides for its series).
in_root rm -rf /tmp/expect-receive
in_root install -d -m 0755 /tmp/expect-receive
cp "${receive_files[@]}" "$root/tmp/expect-receive/"
chmod -R a+rX "$root/tmp/expect-receive"
receive_confidence=$(as_mrsort mrsort classify /tmp/expect-receive --json 2>/dev/null | python3 -c '
import json, sys
rows = json.load(sys.stdin)
rows = rows.get("series", rows) if isinstance(rows, dict) else rows
assert len(rows) == 1, f"expected one series, got {len(rows)}"
print(rows[0]["confidence"])') || die "mrsort classify --json on $receive_series failed"
receive_minimum=$(sed -n 's/^ *minimum_confidence: *\([0-9.]*\).*/\1/p' "$root/etc/mrsort/mrsort.yaml" | head -n 1)
receive_destination=sorted
python3 -c "import sys; sys.exit(not float('$receive_confidence') < float('$receive_minimum'))" && receive_destination=review
log "series $receive_series: confidence $receive_confidence → expected in /var/lib/mrsort/$receive_destination once received"
received_uids() {  # received_uids FOLDER: the SOP Instance UIDs named by the .dcm files there
    find "$1" -type f -name '*.dcm' -printf '%f\n' | sed 's/\.dcm$//' | sort
}

# The receiver's status file after one association with every file of the series.
receiver_status_is() {  # receiver_status_is LISTENING(true|false) REFUSED_ASSOCIATIONS
    python3 - "$root/var/lib/mrsort/state/receivers/scanner.json" "$n_receive" "$1" "$2" 2>/dev/null <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
c = s["counters"]
sys.exit(not (s["listening"] == (sys.argv[3] == "true") and c["instancesReceived"] == int(sys.argv[2])
              and c["instancesFailed"] == 0 and c["associationsAccepted"] == 1
              and c["associationsRefused"] == int(sys.argv[4])))
PY
}

if ! has_subcommand receive; then
    fail "WAITING: this build has no 'mrsort receive'; the receiver cannot run yet"
else
    with_receiver "$root/etc/mrsort/mrsort.yaml" > "$root/tmp/receive.yaml"
    chmod 0644 "$root/tmp/receive.yaml"
    check "test config: 'forward: [pacs]' added to the packaged rule" \
        grep -Fxq '    forward: [pacs]' "$root/tmp/receive.yaml"
    check "installed check-config accepts the packaged config plus a receiver and forwarding" \
        as_mrsort mrsort check-config /tmp/receive.yaml

    # As mrsort-receiver@scanner would run it: user mrsort, UMask=0027, $NOTIFY_SOCKET, watchdog.
    receiver_notify_log="$work/receiver-notify.log"
    start_notify_listener /run/mrsort-test-receiver-notify "$receiver_notify_log"
    receiver_log="$work/receiver.log"
    (
        umask 0027
        exec chroot --userspec=mrsort:mrsort "$root" /usr/bin/env -i PATH=/usr/bin:/bin LANG=C.UTF-8 \
            NOTIFY_SOCKET=/run/mrsort-test-receiver-notify WATCHDOG_USEC=2000000 WATCHDOG_PID=$BASHPID \
            /usr/bin/mrsort receive scanner --config /tmp/receive.yaml
    ) > "$receiver_log" 2>&1 &
    receiver_pid=$!
    if wait_for 30 grep -q 'READY=1' "$receiver_notify_log"; then
        pass "receiver reported READY=1 over \$NOTIFY_SOCKET"
    else
        fail "receiver reported no READY=1 within 30 s"
    fi

    # A modality sends the series: one association, every file (the root shares this host's network).
    if storescu -aet TESTSCU -aec MRSORT 127.0.0.1 "$receiver_port" "${receive_files[@]}" > "$work/storescu.log" 2>&1; then
        pass "storescu -aet TESTSCU -aec MRSORT: $n_receive instances of $receive_series stored"
    else
        sed 's/^/    storescu: /' "$work/storescu.log" >&2
        fail "storescu -aet TESTSCU -aec MRSORT to the receiver"
    fi
    check "incoming holds each sent instance once, as <SOPInstanceUID>.dcm" \
        test "$(received_uids "$incoming")" = "$receive_uids"
    check "the received data sets are the sent ones (file meta header aside)" \
        test "$(for f in "$incoming"/*.dcm; do dataset_sum "$f"; done | sort)" = "$receive_sums"
    modes=$(in_root sh -c 'stat -c "%U:%G %a" /var/lib/mrsort/incoming/*.dcm' 2>&1 | sort -u || true)
    check "received files are mrsort:mrsort 640 (UMask=0027; got: $modes)" test "$modes" = "mrsort:mrsort 640"
    check "staging folder incoming/.receiving-scanner exists and holds nothing" \
        bash -c "[ -d '$incoming/.receiving-scanner' ] && [ -z \"\$(find '$incoming/.receiving-scanner' -type f)\" ]"

    # Senders it must refuse: a calling AE title not in allowed_calling_ae_titles, a called AE
    # title not its own.
    if storescu -aet EVIL -aec MRSORT 127.0.0.1 "$receiver_port" "${receive_files[0]}" > "$work/storescu-evil.log" 2>&1; then
        fail "storescu -aet EVIL was accepted"
    else
        check "storescu -aet EVIL refused: Calling AE Title Not Recognized" \
            grep -q 'Calling AE Title Not Recognized' "$work/storescu-evil.log"
    fi
    if storescu -aet TESTSCU -aec OTHER 127.0.0.1 "$receiver_port" "${receive_files[0]}" > "$work/storescu-other.log" 2>&1; then
        fail "storescu -aec OTHER was accepted"
    else
        check "storescu -aec OTHER refused: Called AE Title Not Recognized" \
            grep -q 'Called AE Title Not Recognized' "$work/storescu-other.log"
    fi
    check "nothing stored from the refused associations" test "$(received_uids "$incoming")" = "$receive_uids"

    check "status file state/receivers/scanner.json: listening, $n_receive received, 1 association accepted, 2 refused" \
        wait_for 5 receiver_status_is true 2
    as_mrsort mrsort status --config /tmp/receive.yaml > "$work/receiver-status.txt" 2>&1 || true
    check "mrsort status lists the receiver scanner" grep -q scanner "$work/receiver-status.txt"
    sed 's/^/    status: /' "$work/receiver-status.txt" >&2

    pings=$(grep -c 'WATCHDOG=1' "$receiver_notify_log" || true)
    check "receiver watchdog pings at about WATCHDOG_USEC/2 (saw $pings)" test "$pings" -ge 3

    kill -TERM "$receiver_pid" 2>/dev/null || true
    status=0
    wait_for 30 bash -c "! kill -0 $receiver_pid 2>/dev/null" || true
    if kill -0 "$receiver_pid" 2>/dev/null; then
        fail "receiver still running 30 s after SIGTERM"
        kill -KILL "$receiver_pid" 2>/dev/null || true
    else
        wait "$receiver_pid" || status=$?
        check "SIGTERM: receiver exits 0 (exit $status)" test "$status" -eq 0
    fi
    receiver_pid=""
    check "status file says listening: false after the stop" receiver_status_is false 2
    check "the receiver logged the refusal of EVIL" grep -q "calling AE title 'EVIL'" "$receiver_log"
    sed 's/^/    receiver: /' "$receiver_log" | tail -n 20 >&2
    kill "$listener_pid" 2>/dev/null || true
    listener_pid=""
    # No agent runs now to sort them; step 5 expects an emptied incoming folder.
    rm -f "$incoming"/*.dcm
fi

# ---------------------------------------------------------------------------------------
log "4b. boot the root with systemd (systemd-nspawn) and probe the service there"
# Where systemd-nspawn can boot a container, the same root runs mrsort.service under a real
# systemd: Type=notify, the generator's drop-in, the sandbox, reload, and the maintainer
# scripts starting and stopping it (test-boot-probe.sh, run inside as a oneshot unit).
# With the config of 4a, the probe also enables mrsort-receiver@scanner; the container shares
# this host's network namespace (no --private-network), so this script sends the series to it
# from here, once the probe says the receiver runs, and plays the PACS the agent forwards to.
if ! command -v systemd-nspawn >/dev/null 2>&1; then
    log "SKIP the systemd boot: systemd-nspawn is not installed (apt-get install systemd-container)"
elif ! has_subcommand watch; then
    fail "WAITING: this build has no 'mrsort watch'; the service cannot run yet"
else
    # Asked while /proc is mounted in the root (the binary needs it).
    receiving=no
    has_subcommand receive && receiving=yes
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
    if [ "$receiving" = yes ]; then
        # The config the units read: the packaged one plus the receiver and forwarding (restored
        # after the boot). The probe tests the receiver where this file exists.
        cp "$root/etc/mrsort/mrsort.yaml" "$work/packaged-mrsort.yaml"
        with_receiver "$work/packaged-mrsort.yaml" > "$root/etc/mrsort/mrsort.yaml"
        echo scanner > "$root/srv/mrsort-probe/receiver"
        # The PACS: unique file names, so that an instance sent twice shows as two files.
        pacs="$work/pacs"
        mkdir -p "$pacs"
        pacs_uids() { find "$pacs" -type f | while read -r f; do sop_uid "$f"; done | sort; }
        storescp --aetitle PACS --output-directory "$pacs" --unique-filenames "$pacs_port" > "$work/pacs.log" 2>&1 &
        pacs_pid=$!
    fi
    # --register=no --keep-unit: no host systemd or machined needed to run the container.
    timeout 600 systemd-nspawn -q -D "$root" --register=no --keep-unit -b > "$work/nspawn.log" 2>&1 &
    nspawn_pid=$!
    if [ "$receiving" = yes ]; then
        probe_waits() { [ -f "$root/srv/mrsort-probe/receiver-ready" ] || ! kill -0 "$nspawn_pid" 2>/dev/null; }
        wait_for 480 probe_waits || true
        if [ -f "$root/srv/mrsort-probe/receiver-ready" ]; then
            log "the probe runs mrsort-receiver@scanner: sending $receive_series from this host"
            if storescu -aet TESTSCU -aec MRSORT 127.0.0.1 "$receiver_port" "${receive_files[@]}" > "$work/boot-storescu.log" 2>&1; then
                pass "systemd: storescu from this host to mrsort-receiver@scanner: $n_receive instances stored"
            else
                sed 's/^/    storescu: /' "$work/boot-storescu.log" >&2
                fail "systemd: storescu from this host to mrsort-receiver@scanner"
            fi
            if storescu -aet EVIL -aec MRSORT 127.0.0.1 "$receiver_port" "${receive_files[0]}" > "$work/boot-storescu-evil.log" 2>&1; then
                fail "systemd: mrsort-receiver@scanner accepted storescu -aet EVIL"
            else
                check "systemd: mrsort-receiver@scanner refused storescu -aet EVIL (Calling AE Title Not Recognized)" \
                    grep -q 'Calling AE Title Not Recognized' "$work/boot-storescu-evil.log"
            fi
            check "systemd: receiver status file: $n_receive received, 1 association accepted, 1 refused" \
                wait_for 5 receiver_status_is true 1
            # mrsort.service sorts what the receiver wrote (quiet_seconds after the last file).
            destination="$root/var/lib/mrsort/$receive_destination"
            received_count() { comm -12 <(received_uids "$destination") <(echo "$receive_uids") | wc -l; }
            landed_received() { [ "$(received_count)" -ge "$n_receive" ]; }
            quiet=$(sed -n 's/^ *quiet_seconds: *\([0-9]*\).*/\1/p' "$root/etc/mrsort/mrsort.yaml" | head -n 1)
            check "systemd: mrsort.service sorted the $n_receive received instances into /var/lib/mrsort/$receive_destination" \
                wait_for $((quiet + 120)) landed_received
            check "systemd: incoming emptied of the received files" \
                test -z "$(find "$incoming" -maxdepth 1 -type f)"
            sorted_sums=$(find "$destination" -type f -name '*.dcm' | while read -r f; do
                if grep -Fxq "$(basename "$f" .dcm)" <<<"$receive_uids"; then dataset_sum "$f"; fi; done | sort)
            check "systemd: the sorted data sets are the sent ones (file meta header aside)" \
                test "$sorted_sums" = "$receive_sums"
            # Forwarding: every sorted instance of the series reaches the PACS (series sent to review
            # are not forwarded).
            pacs_has_series() { [ "$(comm -12 <(pacs_uids | uniq) <(echo "$receive_uids") | wc -l)" -ge "$n_receive" ]; }
            if [ "$receive_destination" = sorted ]; then
                check "systemd: the agent forwarded every received instance to the PACS (storescp on this host)" \
                    wait_for 120 pacs_has_series
                echo "$receive_uids" > "$work/receive-uids.txt"
                forward_lines=$(python3 - "$root/var/lib/mrsort/state/audit.jsonl" "$work/receive-uids.txt" <<'PY' 2>/dev/null || echo 0
import json, os, sys
uids = set(open(sys.argv[2]).read().split())
n = 0
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r.get("action") == "forward" and os.path.basename(r.get("file", ""))[:-len(".dcm")] in uids:
        n += 1
print(n)
PY
)
                check "systemd: audit.jsonl has one action \"forward\" line per instance (got $forward_lines of $n_receive)" \
                    test "$forward_lines" -eq "$n_receive"
            else
                check "systemd: a series sent to review is not forwarded" bash -c "sleep 10; [ -z \"\$(find '$pacs' -type f)\" ]"
            fi
        else
            fail "systemd: the probe did not report mrsort-receiver@scanner running; nothing sent"
        fi
        touch "$root/srv/mrsort-probe/host-done"
    fi
    wait "$nspawn_pid" || true
    nspawn_pid=""
    if [ "$receiving" = yes ]; then
        # After the whole boot (reinstall and restarts included): no instance reached the PACS twice.
        duplicates=$(pacs_uids | uniq -d | wc -l)
        check "systemd: no instance reached the PACS twice ($(find "$pacs" -type f | wc -l) files, $duplicates duplicated)" \
            test "$duplicates" -eq 0
        kill "$pacs_pid" 2>/dev/null || true
        wait "$pacs_pid" 2>/dev/null || true
        pacs_pid=""
        cp "$work/packaged-mrsort.yaml" "$root/etc/mrsort/mrsort.yaml"
    fi
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
        sed 's/^/    receiver journal: /' "$root/root/probe-receiver-journal.log" 2>/dev/null | tail -n 25 >&2 || true
        if grep -q '^FAIL' "$root/root/probe-results"; then
            for f in "$root/root/probe-"{status,remove,install,reinstall,receiver-enable}.log; do
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
# The receiver 4b enabled (where the root booted): remove keeps the admin's enablement, as it
# keeps the config; purge deletes it.
receiver_links() { find "$root/etc/systemd" -name 'mrsort-receiver@*' 2>/dev/null; }
receiver_enabled=no
[ -n "$(receiver_links)" ] && receiver_enabled=yes
if [ "$receiver_enabled" = yes ]; then
    check "remove: the admin's enablement of mrsort-receiver@scanner kept" \
        test -L "$root/etc/systemd/system/multi-user.target.wants/mrsort-receiver@scanner.service"
fi

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
if [ "$receiver_enabled" = yes ]; then
    check "purge: no mrsort-receiver@ enablement left" test -z "$(receiver_links)"
fi
check "purge: dpkg knows nothing of mrsort" bash -c "! chroot '$root' dpkg -s mrsort >/dev/null 2>&1"
log "what stays after purge: $(cd "$root" && find var/lib/mrsort -maxdepth 2 2>/dev/null | tr '\n' ' ')user: $(in_root getent passwd mrsort || echo none)"

# ---------------------------------------------------------------------------------------
if [ "${#failures[@]}" -gt 0 ]; then
    log "${#failures[@]} check(s) failed:"
    printf '  - %s\n' "${failures[@]}" >&2
    exit 1
fi
log "all checks passed"
