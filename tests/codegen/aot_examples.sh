#!/usr/bin/env bash
# tests/codegen/aot_examples.sh: every example model end to end through a real
# object file, as a user builds it:
#   kiln compile examples/X/X.yaml -o X.o --header X.h
#   cc aot_app.c X.o -lkiln_rt     (aot_app.c uses only the generated header)
#   ./app DIR                       -> DIR/inputs/*.npy, DIR/compiled/*.npy
#   kiln run --interp --input ...   -> DIR/interp/*.npy
#   npy_compare DIR/interp/o.npy DIR/compiled/o.npy   (relative error <= 1e-4)
# Examples that are missing are skipped. Also checks --weights external.
#
# usage: aot_examples.sh KILN NPY_COMPARE SOURCE_DIR RT_LIBDIR [EXAMPLE...]
set -euo pipefail
kiln=$1 npycmp=$2 src=$3 rtlib=$4
shift 4
cc=${CC:-cc}
cflags=${KILN_APP_CFLAGS:-}
work=$(mktemp -d "${TMPDIR:-/tmp}/kiln-aot-XXXXXX")
trap 'rm -rf "$work"' EXIT

if [ $# -gt 0 ]; then
  examples=("$@")
else
  examples=()
  for y in "$src"/examples/*/*.yaml; do
    [ -e "$y" ] && examples+=("$(basename "$(dirname "$y")")")
  done
fi
[ ${#examples[@]} -gt 0 ] || { echo "no examples: skipped"; exit 0; }

failed=0
for ex in "${examples[@]}"; do
  yaml=$src/examples/$ex/$ex.yaml
  if [ ! -f "$yaml" ]; then echo "== $ex: missing, skipped"; continue; fi
  d=$work/$ex
  mkdir -p "$d"
  name=$(sed -n 's/^name:[[:space:]]*\([A-Za-z_][A-Za-z0-9_]*\).*/\1/p' "$yaml" | head -1)
  for mode in embed external; do
    echo "== $ex ($name), weights $mode"
    rm -rf "$d/inputs" "$d/compiled" "$d/interp"
    if ! "$kiln" compile "$yaml" -o "$d/$name.o" --header "$d/$name.h" --weights "$mode" >/dev/null; then
      echo "FAIL: kiln compile $ex"; failed=1; continue
    fi
    # libkiln_rt_blas only when the header says the code calls sgemm: a wrong
    # NEEDS_BLAS 0 fails to link, a wrong 1 shows in nm.
    blas=""
    if grep -q "^#define ${name}_NEEDS_BLAS 1" "$d/$name.h"; then
      blas=-lkiln_rt_blas
    elif nm -u "$d/$name.o" 2>/dev/null | grep -q kiln_rt_sgemm; then
      echo "FAIL: $ex: ${name}_NEEDS_BLAS is 0 but the object calls kiln_rt_sgemm"; failed=1
    fi
    # shellcheck disable=SC2086
    if ! "$cc" $cflags -std=c99 -O1 -Wall -Werror -DKILN_MODEL="$name" -include "$d/$name.h" \
        -I"$src/runtime/include" -o "$d/app" "$src/tests/codegen/aot_app.c" "$d/$name.o" \
        -L"$rtlib" -Wl,-rpath,"$rtlib" $blas -lkiln_rt -lm; then
      echo "FAIL: building the app for $ex"; failed=1; continue
    fi
    if ! (cd "$work" && "$d/app" "$d"); then
      echo "FAIL: running the app for $ex"; failed=1; continue
    fi
    args=()
    for f in "$d"/inputs/*.npy; do
      b=$(basename "$f" .npy)
      args+=(--input "$b=$f")
    done
    if ! "$kiln" run "$yaml" --interp "${args[@]}" --output "$d/interp" >/dev/null; then
      echo "FAIL: kiln run --interp $ex"; failed=1; continue
    fi
    for f in "$d"/interp/*.npy; do
      b=$(basename "$f")
      "$npycmp" "$f" "$d/compiled/$b" || failed=1
    done
  done
done
exit $failed
