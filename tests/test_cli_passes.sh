#!/usr/bin/env bash
# tests/test_cli_passes.sh KILN SOURCE_DIR: `kiln dump --after PASS`,
# `--time-passes` and `--threads` as a user meets them: usage errors, the
# annotations in the dumps, dumps after the passes that read back unchanged,
# and the pipeline run again on its own output changing nothing.
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
lacks() { if grep -qF -- "$2" "$1"; then fail "$3: '$2' in output"; else ok; fi; }

mlp=$src/examples/mlp/mlp.yaml
expect 0 "dump --help" -- "$kiln" dump --help
contains "$work/out" "--after PASS" "dump --help lists --after"
contains "$work/out" "--time-passes" "dump --help lists --time-passes"

# usage errors
expect 2 "unknown pass" -- "$kiln" dump "$mlp" --after fusion
contains "$work/err" "unknown pass 'fusion'" "unknown pass message"
contains "$work/err" "verify, infer_shapes, fold_batchnorm, fold_constants, dce, fuse, memory_plan, schedule" "the passes listed"
expect 2 "--after without a pass" -- "$kiln" dump "$mlp" --after
expect 2 "--threads 0" -- "$kiln" dump "$mlp" --after schedule --threads 0

# what each pass adds to the dump
expect 0 "dump --after fold_batchnorm" -- "$kiln" dump "$src/examples/digits/digits.yaml" --after fold_batchnorm
lacks "$work/out" "batchnorm(" "no batchnorm after fold_batchnorm"
contains "$work/out" 'layer "conv1+bn1"' "the folded node keeps both layer names"
expect 0 "dump --after fuse" -- "$kiln" dump "$mlp" --after fuse
contains "$work/out" " group 1" "groups after fuse"
lacks "$work/out" " mem " "no plan after fuse"
expect 0 "dump --after memory_plan" -- "$kiln" dump "$mlp" --after memory_plan
contains "$work/out" "  memory fixed 0 batch " "the plan's sizes"
contains "$work/out" " mem batch 0" "offsets"
lacks "$work/out" " tasks " "no tasks before schedule"
expect 0 "dump --after schedule --threads 2" -- "$kiln" dump "$mlp" --after schedule --threads 2
contains "$work/out" " tasks 1" "tasks after schedule"

# --time-passes: a line per pass run, on standard error
expect 0 "--time-passes" -- "$kiln" dump "$mlp" --after dce --time-passes
for p in verify infer_shapes fold_batchnorm fold_constants dce total; do
  contains "$work/err" "  $p " "--time-passes reports $p"
done
lacks "$work/err" "fuse" "--time-passes stops with the pipeline"
lacks "$work/out" "pass times" "times stay off standard output"

# dumps after any pass read back unchanged; the pipeline on its own output changes nothing
for name in mlp digits resnet20 transformer; do
  model=$src/examples/$name/$name.yaml
  expect 0 "$name: dump --after schedule" -- "$kiln" dump "$model" --after schedule -o "$work/$name.kir"
  for p in fold_batchnorm fuse memory_plan schedule; do
    expect 0 "$name: dump --after $p" -- "$kiln" dump "$model" --after $p -o "$work/$name.$p.kir"
    expect 0 "$name: read the dump after $p" -- "$kiln" dump "$work/$name.$p.kir" -o "$work/$name.$p.2.kir"
    cmp -s "$work/$name.$p.kir" "$work/$name.$p.2.kir" && ok || fail "$name: the dump after $p does not round-trip"
    expect 0 "$name: the pipeline again after $p" -- "$kiln" dump "$work/$name.$p.kir" --after schedule -o "$work/$name.$p.3.kir"
    cmp -s "$work/$name.kir" "$work/$name.$p.3.kir" && ok || fail "$name: the pipeline on the dump after $p differs"
  done
done

echo "cli_passes: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
