#!/usr/bin/env bash
# tests/test_cli.sh KILN SOURCE_DIR: the kiln command as a user meets it:
# help texts, usage errors, located errors, dump round trips through files,
# and the trained digit model's predictions against PyTorch's.
set -u
kiln=$1; src=$2
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
passed=0; failed=0
ok()   { passed=$((passed + 1)); }
fail() { failed=$((failed + 1)); echo "FAIL: $*"; }
# expect STATUS DESCRIPTION -- COMMAND...: runs COMMAND, checks its exit status.
expect() {
  local want=$1 what=$2; shift 3
  "$@" >"$work/out" 2>"$work/err"; local got=$?
  if [ "$got" -eq "$want" ]; then ok; else fail "$what: exit $got, expected $want"; sed 's/^/  | /' "$work/err" | head -5; fi
}
# contains FILE TEXT DESCRIPTION
contains() { if grep -qF -- "$2" "$1"; then ok; else fail "$3: '$2' not in output"; sed 's/^/  | /' "$1" | head -5; fi; }

# help and usage
expect 0 "kiln --help" -- "$kiln" --help
for cmd in dump run; do
  expect 0 "kiln $cmd --help" -- "$kiln" $cmd --help
  contains "$work/out" "usage: kiln $cmd" "kiln $cmd --help"
  expect 2 "kiln $cmd --bogus" -- "$kiln" $cmd --bogus "$src/examples/mlp/mlp.yaml"
  contains "$work/err" "unknown option '--bogus'" "unknown option message"
done
expect 2 "unknown command" -- "$kiln" frobnicate
expect 2 "dump without a model" -- "$kiln" dump
expect 2 "bad --format" -- "$kiln" dump "$src/examples/mlp/mlp.yaml" --format svg
expect 2 "--input without '='" -- "$kiln" run "$src/examples/mlp/mlp.yaml" --interp --input x --output "$work/o"
expect 1 "missing model file" -- "$kiln" dump "$work/nope.yaml"

# the element limit of FORMAT.md can be lowered (and raised) on the command line
expect 1 "--max-elements 1000" -- "$kiln" dump "$src/examples/mlp/mlp.yaml" --max-elements 1000
contains "$work/err" "more than 1000 elements" "element limit message"
expect 0 "--max-elements=10000000" -- "$kiln" dump --max-elements=10000000 "$src/examples/mlp/mlp.yaml"
expect 2 "--max-elements x" -- "$kiln" dump "$src/examples/mlp/mlp.yaml" --max-elements x

# located errors: file:line:col, the source line and a caret
expect 1 "unknown op" -- "$kiln" dump "$src/tests/golden/errors/unknown_ops.yaml"
contains "$work/err" "unknown_ops.yaml:" "error names the file"
grep -qE '^[^:]+:[0-9]+:[0-9]+: error: ' "$work/err" && ok || fail "error is not FILE:LINE:COL: error:"
grep -qE '^ +\^$' "$work/err" && ok || fail "error has no caret line"

# every example dumps; the dump written to another directory reads back to the same IR
mkdir -p "$work/elsewhere"
for model in "$src"/examples/*/*.yaml; do
  name=$(basename "$model" .yaml)
  expect 0 "dump $name" -- "$kiln" dump "$model"
  cp "$work/out" "$work/$name.txt"
  expect 0 "dump $name -o" -- "$kiln" dump "$model" -o "$work/elsewhere/$name.kir"
  expect 0 "dump $name.kir" -- "$kiln" dump "$work/elsewhere/$name.kir" -o "$work/elsewhere/$name.2.kir"
  if cmp -s "$work/elsewhere/$name.kir" "$work/elsewhere/$name.2.kir"; then ok; else fail "$name: .kir does not round-trip"; fi
  expect 0 "dump $name --format dot" -- "$kiln" dump "$model" --format dot
  contains "$work/out" "digraph" "dot output of $name"
done

# the trained digit model predicts what PyTorch predicted, through YAML and through its .kir
digits=$src/examples/digits
while read -r file label; do
  case "$file" in \#*|"") continue ;; esac
  for model in "$digits/digits.yaml" "$work/elsewhere/digits.kir"; do
    expect 0 "run $(basename "$model") on $file" -- "$kiln" run "$model" --interp --input image="$digits/samples/$file" --output "$work/run"
    contains "$work/out" "argmax $label" "$(basename "$model") predicts $label for $file"
  done
done < "$digits/expected.txt"
[ -f "$work/run/logits.npy" ] && ok || fail "run did not write logits.npy"

# inputs that do not fit the model
expect 1 "wrong input shape" -- "$kiln" run "$digits/digits.yaml" --interp --input image="$src/tests/fixtures/npy/f4_v1_2x3.npy" --output "$work/run"
contains "$work/err" "expects shape [batch,1,28,28]" "shape mismatch message"
expect 1 "unknown input name" -- "$kiln" run "$digits/digits.yaml" --interp --input nope="$digits/samples/digit_0.npy" --output "$work/run"
expect 1 "missing input" -- "$kiln" run "$digits/digits.yaml" --interp --output "$work/run"

# target options that LLVM would abort on are refused with a message
if "$kiln" --help | grep -q compile; then
  for bad in "--cpu bogus" "--cpu i386" "--features +bogus" "--features avx2" "--target riscv64-linux-gnu" "--features -64bit-mode"; do
    expect 1 "compile $bad" -- "$kiln" compile "$src/examples/mlp/mlp.yaml" -o "$work/x.o" $bad
    grep -q "error: " "$work/err" && ok || fail "compile $bad: no error message"
  done
  expect 0 "compile --cpu znver4" -- "$kiln" compile "$src/examples/mlp/mlp.yaml" -o "$work/x.o" --cpu znver4
fi

echo "cli: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
