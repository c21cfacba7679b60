#!/usr/bin/env bash
# Builds kiln with warnings as errors (gcc, then clang), runs the whole CUnit
# suite through ctest, then the sanitizer builds and a short fuzzing round.
# Every stage runs whatever happened to the ones before it, and each one's
# result is reported; the script fails at the end if any stage failed, so a
# broken stage never hides the others.
#
# Usage: tools/test.sh [--quick]   (--quick: the gcc stage only)
#
# The last line is what CI reads: `kiln tests: N passed, M failed`, the
# ctest counts of every stage, where a stage that fails outside ctest (a
# build, the fuzzing round) counts as one failed test.
set -uo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
quick=0
[ "${1:-}" = "--quick" ] && quick=1

total_passed=0; total_failed=0
names=(); results=()
log_dir=build/logs
mkdir -p "$log_dir"

# run_ctest BUILD_DIR [ctest args...]: runs ctest and adds its counts to the
# totals; non-zero when a test failed or ctest printed no summary.
run_ctest() {
  local dir=$1; shift
  local log; log=$(mktemp)
  ctest --test-dir "$dir" --output-on-failure -j"$jobs" "$@" 2>&1 | tee "$log"
  local rc=${PIPESTATUS[0]}
  local line; line=$(grep -E 'tests passed, [0-9]+ tests failed out of [0-9]+' "$log" | tail -1)
  rm -f "$log"
  if [ -z "$line" ]; then
    echo "ctest in $dir printed no summary"
    total_failed=$((total_failed + 1))
    return 1
  fi
  local failed total
  failed=$(sed -E 's/.* ([0-9]+) tests failed out of ([0-9]+).*/\1/' <<<"$line")
  total=$(sed -E 's/.* ([0-9]+) tests failed out of ([0-9]+).*/\2/' <<<"$line")
  total_passed=$((total_passed + total - failed)); total_failed=$((total_failed + failed))
  [ "$rc" -eq 0 ] && [ "$failed" -eq 0 ]
}

# build DIR TARGETS CMAKE_ARGS...: configures and builds TARGETS ("all", or
# a pattern: the targets whose names match it); on failure the end of the log
# is shown and the stage counts one failed test.
build() {
  local dir=$1 targets=$2; shift 2
  local log=$log_dir/$(basename "$dir")-build.log
  if cmake -S . -B "$dir" -DKILN_WERROR=ON "$@" >"$log" 2>&1; then
    local list=(all)
    if [ "$targets" != all ]; then
      mapfile -t list < <(cmake --build "$dir" --target help 2>/dev/null | grep -oE "\b($targets)\b" | sort -u)
    fi
    if [ ${#list[@]} -gt 0 ] && cmake --build "$dir" -j"$jobs" --target "${list[@]}" >>"$log" 2>&1; then
      return 0
    fi
  fi
  echo "build of $dir failed (the whole log: $log):"
  tail -30 "$log"
  total_failed=$((total_failed + 1))
  return 1
}

# stage NAME COMMAND...: runs one stage and records its result and time.
stage() {
  local name=$1; shift
  echo "== $name"
  local start=$SECONDS result
  if "$@"; then result=passed; else result=FAILED; fi
  local t=$((SECONDS - start))
  names+=("$name"); results+=("$(printf '%-6s %3dm%02ds' "$result" $((t / 60)) $((t % 60)))")
  echo "== $name: $result"
}

deps() { tools/install-deps.sh || { total_failed=$((total_failed + 1)); return 1; }; }
gcc_stage() {
  build build/gcc all -DCMAKE_C_COMPILER=gcc -DCMAKE_CXX_COMPILER=g++ && run_ctest build/gcc
}
clang_stage() {
  build build/clang all -DCMAKE_C_COMPILER=clang-19 -DCMAKE_CXX_COMPILER=clang++-19 && run_ctest build/clang
}
asan_stage() {
  build build/asan all -DCMAKE_C_COMPILER=clang-19 -DCMAKE_CXX_COMPILER=clang++-19 -DKILN_SANITIZE_ADDRESS=ON &&
    ASAN_OPTIONS=detect_leaks=1 run_ctest build/asan
}
# The last two stages build only what they run: the runtime's tests, the
# fuzz targets (not the compiler with LLVM, once more).
tsan_stage() {
  build build/tsan 'test_runtime(_shared)?' -DCMAKE_C_COMPILER=clang-19 -DCMAKE_CXX_COMPILER=clang++-19 \
    -DKILN_SANITIZE_THREAD=ON && run_ctest build/tsan -R '^runtime'
}
fuzz_stage() {
  build build/fuzz 'fuzz_[A-Za-z0-9_]+' -DCMAKE_C_COMPILER=clang-19 -DCMAKE_CXX_COMPILER=clang++-19 -DKILN_FUZZ=ON ||
    return 1
  if tools/fuzz.sh build/fuzz 20; then
    total_passed=$((total_passed + 1))
  else
    total_failed=$((total_failed + 1))
    return 1
  fi
}

stage "dependencies" deps
stage "gcc build, full test suite" gcc_stage
if [ $quick -eq 0 ]; then
  stage "clang build, full test suite" clang_stage
  stage "AddressSanitizer + UBSan, full test suite" asan_stage
  stage "ThreadSanitizer (runtime)" tsan_stage
  stage "fuzzing (short)" fuzz_stage
fi

echo "== summary"
failed_stages=0
for i in "${!names[@]}"; do
  printf '  %-44s %s\n' "${names[$i]}" "${results[$i]}"
  case "${results[$i]}" in FAILED*) failed_stages=$((failed_stages + 1)) ;; esac
done
echo "kiln tests: $total_passed passed, $total_failed failed"
[ "$failed_stages" -eq 0 ] && [ "$total_failed" -eq 0 ]
