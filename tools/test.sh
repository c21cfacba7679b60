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

total_passed=0; total_failed=0
# run_ctest BUILD_DIR [ctest args...]: runs ctest, adds its counts to the totals.
run_ctest() {
  local dir=$1; shift
  local log; log=$(mktemp)
  local rc=0
  ctest --test-dir "$dir" --output-on-failure -j"$jobs" "$@" 2>&1 | tee "$log" || rc=1
  local line; line=$(grep -E 'tests passed, [0-9]+ tests failed out of [0-9]+' "$log" | tail -1)
  rm -f "$log"
  if [ -z "$line" ]; then echo "ctest in $dir printed no summary"; exit 1; fi
  local failed total
  failed=$(sed -E 's/.* ([0-9]+) tests failed out of ([0-9]+).*/\1/' <<<"$line")
  total=$(sed -E 's/.* ([0-9]+) tests failed out of ([0-9]+).*/\2/' <<<"$line")
  total_passed=$((total_passed + total - failed)); total_failed=$((total_failed + failed))
  [ "$rc" -eq 0 ] && [ "$failed" -eq 0 ] || { echo "kiln tests: $total_passed passed, $total_failed failed"; exit 1; }
}

build() { # dir, extra cmake args...
  local dir=$1; shift
  cmake -S . -B "$dir" -DKILN_WERROR=ON "$@" >/dev/null
  cmake --build "$dir" -j"$jobs" >/dev/null
}

echo "== gcc build, full test suite"
build build/gcc -DCMAKE_C_COMPILER=gcc -DCMAKE_CXX_COMPILER=g++
run_ctest build/gcc
if [ $quick -eq 1 ]; then echo "kiln tests: $total_passed passed, $total_failed failed"; exit 0; fi

echo "== clang build, full test suite"
build build/clang -DCMAKE_C_COMPILER=clang-19 -DCMAKE_CXX_COMPILER=clang++-19
run_ctest build/clang

echo "== AddressSanitizer + UBSan"
build build/asan -DCMAKE_C_COMPILER=clang-19 -DCMAKE_CXX_COMPILER=clang++-19 -DKILN_SANITIZE_ADDRESS=ON
ASAN_OPTIONS=detect_leaks=1 run_ctest build/asan

echo "== ThreadSanitizer (runtime)"
build build/tsan -DCMAKE_C_COMPILER=clang-19 -DCMAKE_CXX_COMPILER=clang++-19 -DKILN_SANITIZE_THREAD=ON
run_ctest build/tsan -R '^runtime' 

echo "== fuzzing (short)"
build build/fuzz -DCMAKE_C_COMPILER=clang-19 -DCMAKE_CXX_COMPILER=clang++-19 -DKILN_FUZZ=ON
tools/fuzz.sh build/fuzz 20

echo "kiln tests: $total_passed passed, $total_failed failed"
