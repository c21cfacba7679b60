#!/usr/bin/env bash
# Installs the Debian 12 packages kiln needs to build and test, when missing.
# Needs root (or sudo) only when something is missing.
set -euo pipefail
# libonnx-dev brings onnx.proto, which protoc-c (protobuf-c-compiler) compiles
# for `kiln import`; libonnx-testdata is ONNX's conformance suite (ctest
# onnx_conformance, skipped without it).
packages=(cmake make gcc g++ pkg-config llvm-19-dev clang-19 libclang-rt-19-dev
          libyaml-dev libopenblas-dev libcunit1-dev python3
          libonnx-dev protobuf-c-compiler libprotobuf-c-dev libonnx-testdata)
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
