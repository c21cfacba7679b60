#!/usr/bin/env bash
# Builds kiln with warnings as errors (gcc, then clang), runs the whole CUnit
# suite through ctest, then the sanitizer builds and a short fuzzing round.
# Usage: tools/test.sh [--quick]   (--quick: gcc build and ctest only)
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
jobs=$(nproc)
quick=0
[ "${1:-}" = "--quick" ] && quick=1

build() { # dir, extra cmake args...
  local dir=$1; shift
  cmake -S . -B "$dir" -DKILN_WERROR=ON "$@" >/dev/null
  cmake --build "$dir" -j"$jobs" >/dev/null
}

echo "== gcc build, full test suite"
build build/gcc -DCMAKE_C_COMPILER=gcc -DCMAKE_CXX_COMPILER=g++
ctest --test-dir build/gcc --output-on-failure -j"$jobs"
[ $quick -eq 1 ] && exit 0

echo "== clang build, full test suite"
build build/clang -DCMAKE_C_COMPILER=clang-19 -DCMAKE_CXX_COMPILER=clang++-19
ctest --test-dir build/clang --output-on-failure -j"$jobs"

echo "== AddressSanitizer + UBSan"
build build/asan -DCMAKE_C_COMPILER=clang-19 -DCMAKE_CXX_COMPILER=clang++-19 -DKILN_SANITIZE_ADDRESS=ON
ASAN_OPTIONS=detect_leaks=1 ctest --test-dir build/asan --output-on-failure -j"$jobs"

echo "== ThreadSanitizer (runtime)"
build build/tsan -DCMAKE_C_COMPILER=clang-19 -DCMAKE_CXX_COMPILER=clang++-19 -DKILN_SANITIZE_THREAD=ON
ctest --test-dir build/tsan --output-on-failure -R '^runtime' -j"$jobs"

echo "== fuzzing (short)"
build build/fuzz -DCMAKE_C_COMPILER=clang-19 -DCMAKE_CXX_COMPILER=clang++-19 -DKILN_FUZZ=ON
tools/fuzz.sh build/fuzz 20
