#!/usr/bin/env bash
# Build the mrsort Debian package from this checkout (`make deb`).
#
#   packaging/build-deb.sh            → build/mrsort_<version>-<revision>_<arch>.deb
#
# Environment:
#   SWIFT          swift driver (default: swift on PATH, else /opt/swift/usr/bin/swift)
#   DEB_OUT        output folder (default: build/ in the checkout; git-ignored)
#   DEB_SCRATCH    SwiftPM scratch folder for the release build (default: .build-deb)
#   DEB_REVISION   Debian revision appended to the version (default: 1)
#   MRSORT_BINARY  use this already built binary instead of building (it must be a
#                  release build with --static-swift-stdlib; for quick packaging checks)
#
# The version has one source: the `version:` of mrsort's CommandConfiguration, read back
# from the built binary (`mrsort --version`). Depends: is computed by dpkg-shlibdeps from the
# binary's dynamic libraries. The maintainer scripts, units, sysusers/tmpfiles entries and
# generator are the files beside this script; packaging/README.md explains each choice.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
out=${DEB_OUT:-$repo/build}
scratch=${DEB_SCRATCH:-$repo/.build-deb}
revision=${DEB_REVISION:-1}

die() { echo "build-deb: $*" >&2; exit 1; }

swift=${SWIFT:-swift}
if ! command -v "$swift" >/dev/null 2>&1 && [ -x /opt/swift/usr/bin/swift ]; then
    swift=/opt/swift/usr/bin/swift
fi
for tool in dpkg-deb dpkg-shlibdeps dpkg-gencontrol dpkg-architecture strip gzip python3; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool not found (apt-get install dpkg-dev binutils gzip python3)"
done

# 1. Release binary, Swift runtime linked statically so that the package needs no
#    toolchain on the target. Its own scratch folder: other builds may be running in .build.
if [ -n "${MRSORT_BINARY:-}" ]; then
    binary=$MRSORT_BINARY
else
    # Debian's hardening defaults where Swift does not apply them itself: immediate binding
    # (with the default RELRO, a read-only GOT) and fortified libc calls in the C++ shim.
    build=("$swift" build -c release --static-swift-stdlib --product mrsort
           --package-path "$repo" --scratch-path "$scratch"
           -Xlinker -z -Xlinker now -Xcxx -D_FORTIFY_SOURCE=2)
    echo "build-deb: ${build[*]}" >&2
    # Build output to stderr: stdout carries only the package's path, for callers.
    "${build[@]}" >&2
    binary="$("${build[@]}" --show-bin-path)/mrsort"
fi
[ -x "$binary" ] || die "no mrsort binary at $binary"

version=$("$binary" --version) || die "$binary --version failed"
[[ "$version" =~ ^[0-9][A-Za-z0-9.+~]*$ ]] \
    || die "'$binary --version' printed '$version', not a Debian upstream version"
arch=$(dpkg-architecture -qDEB_HOST_ARCH)
deb_version="$version-$revision"

# Timestamps (changelog date, file mtimes in the archive) from the last commit, so that the
# same commit gives the same package.
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
    SOURCE_DATE_EPOCH=$(git -C "$repo" log -1 --format=%ct 2>/dev/null || date +%s)
fi
export SOURCE_DATE_EPOCH

models=("$repo"/models/*.safetensors)
[ -e "${models[0]}" ] || die "no models/*.safetensors in $repo (make forest-model)"
config="$repo/etc/mrsort/mrsort.yaml"
[ -f "$config" ] || die "no default config at $config"

work="$out/deb-work"
root="$work/root"
rm -rf "$work"
mkdir -p "$root" "$work/debian"
rm -f "$out"/mrsort_*.deb

# 2. The file tree, with the modes dpkg should record (owners come from --root-owner-group).
install -D -m 0755 "$binary" "$root/usr/bin/mrsort"
# What dh_strip does for executables: no symbols, no .comment/.note.
strip --remove-section=.comment --remove-section=.note "$root/usr/bin/mrsort"

install -d -m 0755 "$root/usr/share/mrsort/models"
install -m 0644 "${models[@]}" "$root/usr/share/mrsort/models/"

install -D -m 0644 "$config" "$root/etc/mrsort/mrsort.yaml"

# Bookworm's systemd and debhelper keep units under /lib (the /usr-merge moratorium);
# sysusers.d and tmpfiles.d entries go to /usr/lib as dh_installsysusers/dh_installtmpfiles put them.
install -D -m 0644 "$here/mrsort.service" "$root/lib/systemd/system/mrsort.service"
# The DICOM receivers' template unit: instances (mrsort-receiver@NAME) are the admin's to enable.
install -D -m 0644 "$here/mrsort-receiver@.service" "$root/lib/systemd/system/mrsort-receiver@.service"
install -D -m 0755 "$here/mrsort-folders-generator" \
    "$root/lib/systemd/system-generators/mrsort-folders-generator"
install -D -m 0644 "$here/mrsort.sysusers" "$root/usr/lib/sysusers.d/mrsort.conf"
install -D -m 0644 "$here/mrsort.tmpfiles" "$root/usr/lib/tmpfiles.d/mrsort.conf"

# Man page from the binary's own help (see manpage.py).
manual_date=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%d)
install -d -m 0755 "$root/usr/share/man/man1"
"$binary" --experimental-dump-help \
    | python3 "$here/manpage.py" "$here/mrsort.1.in" "$version" "$manual_date" \
    > "$work/mrsort.1"
gzip -9n -c "$work/mrsort.1" > "$root/usr/share/man/man1/mrsort.1.gz"
chmod 0644 "$root/usr/share/man/man1/mrsort.1.gz"

# Maintainer from the one place it is written, packaging/control.
maintainer=$(sed -n 's/^Maintainer: //p' "$here/control" | head -n 1)
[ -n "$maintainer" ] || die "no Maintainer: in $here/control"
cat > "$work/debian/changelog" <<CHANGELOG
mrsort ($deb_version) unstable; urgency=medium

  * Package of mrsort $version. The upstream changes are in
    /usr/share/doc/mrsort/changelog.gz.

 -- $maintainer  $(LC_ALL=C date -u -R -d "@$SOURCE_DATE_EPOCH")
CHANGELOG

doc="$root/usr/share/doc/mrsort"
install -d -m 0755 "$doc"
install -m 0644 "$here/copyright" "$doc/copyright"
gzip -9n -c "$work/debian/changelog" > "$doc/changelog.Debian.gz"
gzip -9n -c "$repo/CHANGELOG.md" > "$doc/changelog.gz"
chmod 0644 "$doc"/*.gz

install -D -m 0644 "$here/lintian-overrides" "$root/usr/share/lintian/overrides/mrsort"

install -d -m 0755 "$root/DEBIAN"
for script in postinst prerm postrm; do
    install -m 0755 "$here/$script" "$root/DEBIAN/$script"
done
# Every file under /etc is a conffile: dpkg keeps local edits on upgrade and remove.
(cd "$root" && find etc -type f | sort | sed 's|^|/|') > "$root/DEBIAN/conffiles"
chmod 0644 "$root/DEBIAN/conffiles"

# Checksums for debsums and `dpkg --verify`, as dh_md5sums writes them (conffiles excluded:
# dpkg records their checksums itself).
(cd "$root" && find . -type f ! -path './DEBIAN/*' ! -path './etc/*' -printf '%P\0' \
    | LC_ALL=C sort -z | xargs -0 md5sum) > "$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/md5sums"

# 3. control: Depends from dpkg-shlibdeps (the libraries the binary links), plus the tools
#    the maintainer scripts call (systemd-sysusers, systemd-tmpfiles), as debhelper would
#    add through ${misc:Depends}, and procps for the unit's `ExecReload=/bin/kill`.
#    Installed-Size from dpkg-gencontrol.
cp "$here/control" "$work/debian/control"
(
    cd "$work"
    dpkg-shlibdeps -Tdebian/substvars -e"$root/usr/bin/mrsort"
    echo "misc:Depends=systemd | systemd-standalone-sysusers, systemd | systemd-standalone-tmpfiles, procps" \
        >> debian/substvars
    dpkg-gencontrol -pmrsort -ldebian/changelog -cdebian/control -Tdebian/substvars \
        -P"$root" -f"$work/files"
)
grep -q '^Depends: .*libc6' "$root/DEBIAN/control" \
    || die "dpkg-shlibdeps produced no library Depends; see $root/DEBIAN/control"

# 4. The archive. --root-owner-group: every file root:root without needing fakeroot.
deb="$out/mrsort_${deb_version}_${arch}.deb"
find "$root" -exec touch --no-dereference --date="@$SOURCE_DATE_EPOCH" {} +
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >&2
echo "$deb"
