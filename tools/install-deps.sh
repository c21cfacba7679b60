#!/usr/bin/env bash
# Installs the Debian 12 packages kiln needs to build and test, when missing.
# Needs root (or sudo) only when something is missing.
set -euo pipefail
packages=(cmake make gcc g++ pkg-config llvm-19-dev clang-19 libclang-rt-19-dev
          libyaml-dev libopenblas-dev libcunit1-dev python3)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing: ${missing[*]}"
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
