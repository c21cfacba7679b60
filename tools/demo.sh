#!/usr/bin/env bash
# The main job, end to end: build kiln, show the IR of the digit classifier
# (an example with real trained weights), and run it on a few rendered digits
# with the reference interpreter.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build/release -j"$(nproc)" --target kiln >/dev/null
kiln=build/release/compiler/kiln
model=examples/digits/digits.yaml

echo "== kiln dump $model"
"$kiln" dump "$model"

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for sample in examples/digits/samples/*.npy; do
  echo
  echo "== kiln run $model --interp --input image=$sample"
  "$kiln" run "$model" --interp --input image="$sample" --output "$out"
done
