#!/usr/bin/env bash
# tests/test_demo_app.sh KILN RT_LIB RT_BLAS_LIB SOURCE_DIR: the README's main
# job as a test: compile the trained digit model, link
# examples/app/digits_app.c with the object and libkiln_rt (and the BLAS glue
# only when the header says the model needs it), and check every prediction
# against PyTorch's.
set -eu
kiln=$1; rt=$2; rt_blas=$3; src=$4
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
"$kiln" compile "$src/examples/digits/digits.yaml" -o "$work/digits.o" --header "$work/digits.h" >/dev/null
blas=""
if grep -q '^#define digits_NEEDS_BLAS 1' "$work/digits.h"; then blas="$rt_blas -lopenblas"; fi
# shellcheck disable=SC2086
${CC:-cc} -std=c99 -Wall -Werror ${KILN_APP_CFLAGS:-} -I"$work" -I"$src/runtime/include" "$src/examples/app/digits_app.c" "$work/digits.o" \
   $blas "$rt" -lpthread -lm -o "$work/app"
passed=0; failed=0
while read -r file label; do
  case "$file" in \#*|"") continue ;; esac
  got=$("$work/app" "$src/examples/digits/samples/$file" | sed -n 's/^    -> \([0-9]\).*/\1/p')
  if [ "$got" = "$label" ]; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAIL: $file: app says '$got', PyTorch said $label"; fi
done < "$src/examples/digits/expected.txt"
echo "demo_app: $passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -eq 10 ]
