#!/usr/bin/env bash
# Installs what mrsort's build and tests need on Debian 12, where it is missing: DCMTK (library and
# tools), OpenBLAS, libyaml, pkg-config, and Python's venv module. As root, or through sudo.
set -euo pipefail
packages=(libdcmtk-dev dcmtk libopenblas-dev libyaml-dev pkg-config python3-venv ca-certificates)
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "setup: the build dependencies are installed"
    exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "setup: run as root, or install sudo, to install: ${missing[*]}" >&2; exit 1; }
    sudo="sudo"
fi
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
