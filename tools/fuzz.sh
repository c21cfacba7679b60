#!/usr/bin/env bash
# tools/fuzz.sh [BUILD_DIR] [SECONDS] [--minutes N] [--only TARGET] [--jobs J]:
# runs every libFuzzer target in BUILD_DIR (default build/fuzz, configured
# with -DKILN_FUZZ=ON and clang-19) for SECONDS each (default 20), or N
# minutes each with --minutes (a campaign), from the seed corpora in
# tests/fuzz/corpus (tools/gen_fuzz_corpus.sh writes them; they are copied,
# so the seeds stay unchanged). --only runs one target, --jobs runs J
# workers of it. Each run prints libFuzzer's last lines (executions,
# coverage); a crash leaves its input as crash-* in the current directory
# and makes this script exit 1 after the other targets ran.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=build/fuzz; seconds=20; only=""; jobs=1; positional=0
while [ $# -gt 0 ]; do
  case $1 in
    --minutes) seconds=$(( $2 * 60 )); shift 2 ;;
    --only) only=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) if [ $positional -eq 0 ]; then dir=$1; else seconds=$1; fi; positional=$((positional + 1)); shift ;;
  esac
done
shopt -s nullglob
targets=("$dir"/tests/fuzz_*)
[ ${#targets[@]} -gt 0 ] || { echo "no fuzz targets in $dir/tests"; exit 1; }
failed=0
for t in "${targets[@]}"; do
  name=$(basename "$t")
  [ -n "$only" ] && [ "$name" != "$only" ] && [ "$name" != "fuzz_$only" ] && continue
  work=$(mktemp -d)
  case ${name#fuzz_} in
    frontend|passes|codegen) seeds=tests/fuzz/corpus/model ;;
    *) seeds=tests/fuzz/corpus/${name#fuzz_} ;;
  esac
  [ -d "$seeds" ] && cp -r "$seeds"/. "$work"/
  # the ONNX importer also starts from ONNX's conformance models, when installed
  if [ "$name" = fuzz_onnx ] && [ -d /usr/share/libonnx-testdata/data ]; then
    for m in /usr/share/libonnx-testdata/data/*/*/model.onnx; do
      [ "$(stat -c %s "$m")" -le 65536 ] && cp "$m" "$work/$(basename "$(dirname "$m")").onnx"
    done
  fi
  echo "-- $name for ${seconds}s from $(ls "$work" | wc -l) seeds"
  # undefined behaviour stops the run like a crash (the build lets UBSan recover);
  # LLVM's own caches are not leaks of kiln's (the code generation target)
  leaks=1; [ "$name" = fuzz_codegen ] && leaks=0
  extra=(); [ "$jobs" -gt 1 ] && extra=(-jobs="$jobs" -workers="$jobs")
  if ! UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 ASAN_OPTIONS=detect_leaks=$leaks \
      "$t" -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=2048 -timeout=20 "${extra[@]}" "$work" \
      >"$work.log" 2>&1; then
    failed=1
    echo "   FAILED: $name (log below; the input is the crash-* file named there)"
    tail -40 "$work.log"
  else
    grep -E '^#[0-9]+.*(DONE|cov:)' "$work.log" | tail -1
  fi
  rm -rf "$work" "$work.log"
done
exit $failed
