#!/usr/bin/env bash
# The main job, end to end: build kiln and libkiln_rt, compile the trained
# digit classifier (examples/digits) to a native object and a C header, link
# the example C app against them and libkiln_rt, and run it on rendered digits.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release -DKILN_BUILD_TESTS=OFF >/dev/null
cmake --build build/release -j"$(nproc)" --target kiln kiln_rt_static kiln_rt_blas_static >/dev/null
kiln=build/release/compiler/kiln
out=build/demo
mkdir -p "$out"

echo "== kiln compile examples/digits/digits.yaml"
"$kiln" compile examples/digits/digits.yaml -o "$out/digits.o" --header "$out/digits.h"

echo "== cc examples/app/digits_app.c digits.o -lkiln_rt"
# The BLAS glue (and OpenBLAS) only if the header says the model calls sgemm.
blas=""
if grep -q '^#define digits_NEEDS_BLAS 1' "$out/digits.h"; then
  blas="build/release/runtime/libkiln_rt_blas.a -lopenblas"
fi
# shellcheck disable=SC2086
cc -std=c99 -O2 -Wall -Werror -I"$out" -Iruntime/include examples/app/digits_app.c "$out/digits.o" \
   $blas build/release/runtime/libkiln_rt.a -lpthread -lm -o "$out/digits_app"

echo "== digits_app examples/digits/samples/*.npy"
"$out/digits_app" examples/digits/samples/digit_*.npy
