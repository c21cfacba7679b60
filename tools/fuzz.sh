#!/usr/bin/env bash
# Runs every libFuzzer target in BUILD_DIR for SECONDS each, from the seed
# corpus in tests/fuzz/corpus/<target> (copied: the seeds stay unchanged).
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build/fuzz}; seconds=${2:-20}
shopt -s nullglob
targets=("$dir"/tests/fuzz_*)
[ ${#targets[@]} -gt 0 ] || { echo "no fuzz targets in $dir/tests"; exit 1; }
for t in "${targets[@]}"; do
  name=$(basename "$t")
  work=$(mktemp -d)
  seeds=tests/fuzz/corpus/${name#fuzz_}
  [ -d "$seeds" ] && cp -r "$seeds"/. "$work"/
  # the ONNX importer also starts from ONNX's conformance models, when installed
  if [ "$name" = fuzz_onnx ] && [ -d /usr/share/libonnx-testdata/data ]; then
    for m in /usr/share/libonnx-testdata/data/*/*/model.onnx; do
      [ "$(stat -c %s "$m")" -le 65536 ] && cp "$m" "$work/$(basename "$(dirname "$m")").onnx"
    done
  fi
  echo "-- $name for ${seconds}s"
  # undefined behaviour stops the run like a crash (the build lets UBSan recover)
  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    "$t" -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=2048 -timeout=10 "$work" 2>&1 | tail -3
  rm -rf "$work"
done
