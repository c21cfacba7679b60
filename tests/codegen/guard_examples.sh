#!/usr/bin/env bash
# tests/codegen/guard_examples.sh: every example compiled to an object (as
# aot_examples.sh does) and linked with guard_app.c, which runs it with every
# input, output and the caller's workspace against PROT_NONE pages at batch
# 1, 3 and 17 on 1 and 2 threads and compares with a plain run bit for bit
# (guard_mem.h). A stray access ends the app with SIGSEGV: a failure.
#
# usage: guard_examples.sh KILN SOURCE_DIR RT_LIBDIR [EXAMPLE...]
set -euo pipefail
kiln=$1 src=$2 rtlib=$3
shift 3
cc=${CC:-cc}
cflags=${KILN_APP_CFLAGS:-}
work=$(mktemp -d "${TMPDIR:-/tmp}/kiln-guard-XXXXXX")
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
  echo "== $ex ($name)"
  if ! "$kiln" compile "$yaml" -o "$d/$name.o" --header "$d/$name.h" >/dev/null; then
    echo "FAIL: kiln compile $ex"; failed=1; continue
  fi
  blas=""
  grep -q "^#define ${name}_NEEDS_BLAS 1" "$d/$name.h" && blas=-lkiln_rt_blas
  # shellcheck disable=SC2086
  if ! "$cc" $cflags -std=c99 -D_DEFAULT_SOURCE -O1 -Wall -Werror -DKILN_MODEL="$name" -include "$d/$name.h" \
      -I"$src/runtime/include" -I"$src/tests/codegen" -o "$d/app" "$src/tests/codegen/guard_app.c" \
      "$src/tests/codegen/guard_mem.c" "$d/$name.o" -L"$rtlib" -Wl,-rpath,"$rtlib" $blas -lkiln_rt -lm; then
    echo "FAIL: building the guard app for $ex"; failed=1; continue
  fi
  if ! "$d/app"; then
    echo "FAIL: $ex under guard pages (status $?)"; failed=1
  fi
done
exit $failed
