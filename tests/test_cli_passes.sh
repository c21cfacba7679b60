#!/usr/bin/env bash
# tests/test_cli_passes.sh KILN SOURCE_DIR: `kiln dump --after PASS`,
# `--time-passes` and `--threads` as a user meets them: usage errors, the
# annotations in the dumps, dumps after the passes that read back unchanged,
# and the pipeline run again on its own output changing nothing. Then
# `--dump-ir=all|after:PASS` and `--time-passes` on kiln dump and kiln compile.
# Last, `--layout auto|plain` on the commands that run the passes.
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
contains "$work/err" "verify, infer_shapes, fold_batchnorm, fold_constants, dce, fuse, layout, precision, select, schedule, memory_plan" "the passes listed"
expect 2 "--after without a pass" -- "$kiln" dump "$mlp" --after
expect 2 "--threads 0" -- "$kiln" dump "$mlp" --after schedule --threads 0

# what each pass adds to the dump
expect 0 "dump --after fold_batchnorm" -- "$kiln" dump "$src/examples/digits/digits.yaml" --after fold_batchnorm
lacks "$work/out" "batchnorm(" "no batchnorm after fold_batchnorm"
contains "$work/out" 'layer "conv1+bn1"' "the folded node keeps both layer names"
expect 0 "dump --after fuse" -- "$kiln" dump "$mlp" --after fuse
contains "$work/out" " group 1" "groups after fuse"
lacks "$work/out" " mem " "no plan after fuse"
expect 0 "dump --after select" -- "$kiln" dump "$mlp" --after select
contains "$work/out" " impl gemm" "implementations after select"
lacks "$work/out" " tasks " "no tasks before schedule"
# --cpu: the passes plan for that CPU (the channel block is its f32 lanes);
# an unknown one is an error, not a silent plan for the host
cat >"$work/pw.yaml" <<'YAML'
kiln: 1
name: pw
init: {random: 1}
inputs:
  - {name: x, shape: [batch, 3, 16, 16]}
outputs: [y]
layers:
  - {name: stem, op: conv2d, filters: 32, kernel: 3, padding: 1, activation: relu}
  - {name: c1, op: conv2d, filters: 32, kernel: 3, padding: 1, activation: relu}
  - {name: pw, op: conv2d, filters: 32, kernel: 1, activation: relu}
  - {name: pool, op: global_avgpool}
  - {name: y, op: flatten}
YAML
expect 0 "dump --cpu x86-64-v3" -- "$kiln" dump "$work/pw.yaml" --after select --cpu x86-64-v3
contains "$work/out" " nchw8c" "dump --cpu x86-64-v3: blocks of 8"
expect 0 "dump --cpu x86-64-v4" -- "$kiln" dump "$work/pw.yaml" --after select --cpu x86-64-v4
contains "$work/out" " nchw16c" "dump --cpu x86-64-v4: blocks of 16"
expect 1 "dump --cpu nosuch" -- "$kiln" dump "$work/pw.yaml" --after select --cpu nosuch
contains "$work/err" "unknown cpu 'nosuch'" "dump --cpu nosuch: message"
# an implementation edited in a dump: kept when it can compute the layer,
# an error at the layer's line when it cannot
expect 0 "dump pw after select" -- "$kiln" dump "$work/pw.yaml" --after select --cpu x86-64-v3 --layout plain -o "$work/pw.kir"
line=$(grep -n '^  %"c1:pre" = conv2d' "$work/pw.kir" | cut -d: -f1)
sed -E '/^  %"c1:pre" = conv2d/s/ impl [a-z0-9]+/ impl igemm/' "$work/pw.kir" >"$work/pw-igemm.kir"
expect 0 "dump an edited impl" -- "$kiln" dump "$work/pw-igemm.kir" --after memory_plan --cpu x86-64-v3 --layout plain
contains "$work/out" 'layer "c1" group 2 impl igemm' "an edited impl survives the passes"
sed -E '/^  %"c1:pre" = conv2d/s/ impl [a-z0-9]+/ impl direct/' "$work/pw.kir" >"$work/pw-direct.kir"
expect 1 "an impossible impl" -- "$kiln" dump "$work/pw-direct.kir" --after memory_plan --cpu x86-64-v3
contains "$work/err" "pw-direct.kir:$line:3: error: layer 'c1' (conv2d): the IR asks for implementation 'direct'" "an impossible impl: file:line:col"
expect 0 "dump --after schedule --threads 2" -- "$kiln" dump "$mlp" --after schedule --threads 2
contains "$work/out" " tasks 1" "tasks after schedule"
lacks "$work/out" " mem " "no plan before memory_plan"
expect 0 "dump --after memory_plan" -- "$kiln" dump "$mlp" --after memory_plan
contains "$work/out" "  memory fixed 0 batch " "the plan's sizes"
contains "$work/out" " mem batch 0" "offsets"

# --time-passes: a line per pass run, on standard error
expect 0 "--time-passes" -- "$kiln" dump "$mlp" --after dce --time-passes
for p in verify infer_shapes fold_batchnorm fold_constants dce total; do
  contains "$work/err" "  $p " "--time-passes reports $p"
done
lacks "$work/err" "fuse" "--time-passes stops with the pipeline"
lacks "$work/out" "pass times" "times stay off standard output"

# dumps after any pass read back unchanged; the pipeline on its own output
# changes nothing. The dumps go to standard output (folded weights inline, as
# hex; `-o` would put them in a sidecar file named after each dump, which
# tests/codegen/cli_build.sh checks), from $work so that the weights paths,
# relative to the current directory, hold for files read back from there.
here=$(pwd)
cd "$work" || exit 1
dump_to() { # FILE DESCRIPTION -- kiln dump ARGS...: the dump's standard output into FILE
  local file=$1 what=$2; shift 3
  expect 0 "$what" -- "$@" && cp "$work/out" "$file"
}
for name in mlp digits resnet20 transformer; do
  model=$src/examples/$name/$name.yaml
  dump_to "$name.kir" "$name: dump --after schedule" -- "$kiln" dump "$model" --after schedule
  for p in fold_batchnorm fuse memory_plan schedule; do
    dump_to "$name.$p.kir" "$name: dump --after $p" -- "$kiln" dump "$model" --after $p
    dump_to "$name.$p.2.kir" "$name: read the dump after $p" -- "$kiln" dump "$name.$p.kir"
    cmp -s "$name.$p.kir" "$name.$p.2.kir" && ok || fail "$name: the dump after $p does not round-trip"
    dump_to "$name.$p.3.kir" "$name: the pipeline again after $p" -- "$kiln" dump "$name.$p.kir" --after schedule
    cmp -s "$name.kir" "$name.$p.3.kir" && ok || fail "$name: the pipeline on the dump after $p differs"
  done
done
cd "$here" || exit 1

# --dump-ir on kiln dump: after:PASS is --after PASS; all prints after every pass
passes="verify infer_shapes fold_batchnorm fold_constants dce fuse layout precision select schedule memory_plan"
expect 0 "dump --help" -- "$kiln" dump --help
contains "$work/out" "--dump-ir=all" "dump --help lists --dump-ir"
expect 0 "dump --after fuse" -- "$kiln" dump "$mlp" --after fuse
mv "$work/out" "$work/mlp.after-fuse.kir"
expect 0 "dump --dump-ir=after:fuse" -- "$kiln" dump "$mlp" --dump-ir=after:fuse
cmp -s "$work/out" "$work/mlp.after-fuse.kir" && ok || fail "dump --dump-ir=after:fuse differs from --after fuse"
expect 0 "dump --dump-ir all" -- "$kiln" dump "$mlp" --dump-ir all
[ "$(grep '^# after ' "$work/out" | cut -d' ' -f3 | tr '\n' ' ')" = "$passes " ] && ok ||
  fail "dump --dump-ir=all: the headers are not every pass in order: $(grep '^# after ' "$work/out" | tr '\n' ' ')"
# the part after memory_plan is the IR after the last pass, and reads back
sed -n '/^# after memory_plan$/,$p' "$work/out" | tail -n +2 >"$work/all.last.kir"
expect 0 "dump --after memory_plan" -- "$kiln" dump "$mlp" --after memory_plan
cmp -s "$work/out" "$work/all.last.kir" && ok || fail "dump --dump-ir=all: the last part is not the IR after memory_plan"
expect 0 "read the last part of --dump-ir=all" -- "$kiln" dump "$work/all.last.kir"
expect 0 "dump --dump-ir=all -o" -- "$kiln" dump "$mlp" --dump-ir=all -o "$work/all.kir"
[ "$(grep -c '^# after ' "$work/all.kir" 2>/dev/null)" = 11 ] && ok || fail "dump --dump-ir=all -o: not 11 dumps in the file"
lacks "$work/out" "graph @" "dump --dump-ir=all -o: nothing on standard output"
expect 2 "dump --dump-ir unknown pass" -- "$kiln" dump "$mlp" --dump-ir=after:fusion
contains "$work/err" "kiln dump: error: --dump-ir: unknown pass 'fusion' (the passes, in order: verify, infer_shapes, fold_batchnorm, fold_constants, dce, fuse, layout, precision, select, schedule, memory_plan)" "dump --dump-ir unknown pass message"
expect 2 "dump --dump-ir and --after" -- "$kiln" dump "$mlp" --dump-ir=all --after fuse
expect 2 "dump --dump-ir=all --format dot" -- "$kiln" dump "$mlp" --dump-ir=all --format dot
expect 0 "dump --dump-ir=all --time-passes" -- "$kiln" dump "$mlp" --dump-ir=all --time-passes
for p in $passes total; do
  contains "$work/err" "  $p " "dump --dump-ir=all --time-passes reports $p"
done

# --dump-ir and --time-passes on kiln compile (dumps and times on standard error)
if "$kiln" --help | grep -q compile; then
  expect 0 "compile --help" -- "$kiln" compile --help
  contains "$work/out" "--dump-ir=all" "compile --help lists --dump-ir"
  contains "$work/out" "--time-passes" "compile --help lists --time-passes"
  expect 0 "compile --dump-ir=after:fuse" -- "$kiln" compile "$mlp" -o "$work/mlp.o" --dump-ir=after:fuse
  contains "$work/err" " group 1" "compile --dump-ir=after:fuse shows the fusion groups"
  lacks "$work/err" " mem " "compile --dump-ir=after:fuse: no plan yet"
  cmp -s "$work/err" "$work/mlp.after-fuse.kir" && ok || fail "compile --dump-ir=after:fuse differs from dump --after fuse"
  contains "$work/out" "wrote $work/mlp.o" "compile --dump-ir still compiles"
  lacks "$work/out" "graph @" "compile --dump-ir: the IR stays off standard output"
  [ -s "$work/mlp.o" ] && ok || fail "compile --dump-ir wrote no object"
  expect 0 "compile --dump-ir=after:fold_batchnorm" -- "$kiln" compile "$src/examples/digits/digits.yaml" -o "$work/digits.o" --dump-ir=after:fold_batchnorm
  contains "$work/err" 'layer "conv1+bn1"' "compile --dump-ir=after:fold_batchnorm shows the folded layer"
  lacks "$work/err" "batchnorm(" "compile --dump-ir=after:fold_batchnorm: no batchnorm left"
  expect 0 "compile --dump-ir=all" -- "$kiln" compile "$mlp" -o "$work/mlp.o" --dump-ir=all
  [ "$(grep '^# after ' "$work/err" | cut -d' ' -f3 | tr '\n' ' ')" = "$passes " ] && ok ||
    fail "compile --dump-ir=all: the headers are not every pass in order: $(grep '^# after ' "$work/err" | tr '\n' ' ')"
  contains "$work/err" " tasks " "compile --dump-ir=all reaches schedule"
  rm -f "$work/bad.o"
  expect 2 "compile --dump-ir unknown pass" -- "$kiln" compile "$mlp" -o "$work/bad.o" --dump-ir=after:fusion
  contains "$work/err" "kiln compile: error: --dump-ir: unknown pass 'fusion' (the passes, in order: verify, infer_shapes, fold_batchnorm, fold_constants, dce, fuse, layout, precision, select, schedule, memory_plan)" "compile --dump-ir unknown pass message"
  [ -e "$work/bad.o" ] && fail "compile --dump-ir unknown pass wrote the object" || ok
  expect 2 "compile --dump-ir without after:" -- "$kiln" compile "$mlp" -o "$work/bad.o" --dump-ir=fuse
  contains "$work/err" "--dump-ir expects 'all' or 'after:PASS', got 'fuse'" "compile --dump-ir=fuse message"
  expect 2 "compile --dump-ir without a value" -- "$kiln" compile "$mlp" -o "$work/bad.o" --dump-ir
  expect 2 "compile --dump-ir --passes none" -- "$kiln" compile "$mlp" -o "$work/bad.o" --dump-ir=all --passes none
  expect 0 "compile --time-passes" -- "$kiln" compile "$mlp" -o "$work/mlp.o" --time-passes
  for p in $passes; do
    contains "$work/err" "  $p " "compile --time-passes reports $p"
  done
  for p in "kiln: pass times" "kiln: compile times" "  loading " "  passes " "  code generation " "  emission " "  total "; do
    contains "$work/err" "$p" "compile --time-passes reports '$p'"
  done
  lacks "$work/err" "  tuning " "compile --time-passes: no tuning without --tune"
  lacks "$work/out" "pass times" "compile --time-passes: times stay off standard output"
fi

# --layout: the layout pass blocks channels by the target's vector lanes
# (nchw8c on AVX2, nchw16c on AVX-512: match any block) only when asked
small=$src/tests/golden/passes/layout.kir   # a MobileNetV2-like block, depthwise convs
lacks_re() { if grep -qE -- "$2" "$1"; then fail "$3: /$2/ in output"; else ok; fi; }
contains_re() { if grep -qE -- "$2" "$1"; then ok; else fail "$3: /$2/ not in output"; sed 's/^/  | /' "$1" | head -5; fi; }
expect 0 "dump --help" -- "$kiln" dump --help
contains "$work/out" "--layout auto" "dump --help lists --layout"
expect 0 "dump --layout auto --after layout" -- "$kiln" dump "$small" --layout auto --after layout
contains_re "$work/out" ' : f32\[batch,16,16,16\] nchw[0-9]+c layer "dw1"' "--layout auto blocks the depthwise conv"
contains_re "$work/out" '%pw1.plain = reorder\(%pw1\)' "--layout auto: the reorder for the plain reader"
contains_re "$work/out" '%pool = global_avgpool\(%res\) : f32\[batch,12,1,1\] layer' "global_avgpool's output stays plain"
cp "$work/out" "$work/small.layout.kir"
expect 0 "read the dump after layout" -- "$kiln" dump "$work/small.layout.kir" -o "$work/small.layout.2.kir"
cmp -s "$work/small.layout.kir" "$work/small.layout.2.kir" && ok || fail "the blocked dump does not round-trip"
expect 0 "the layout pass on its own output" -- "$kiln" dump "$work/small.layout.kir" --layout auto --after layout -o "$work/small.layout.3.kir"
cmp -s "$work/small.layout.kir" "$work/small.layout.3.kir" && ok || fail "--layout auto on its own output changes it"
expect 0 "dump --after layout (default auto)" -- "$kiln" dump "$small" --after layout -o "$work/small.default.kir"
cmp -s "$work/small.layout.kir" "$work/small.default.kir" && ok || fail "the default is not --layout auto"
expect 0 "dump --layout plain --after schedule" -- "$kiln" dump "$small" --layout plain --after schedule
lacks_re "$work/out" 'nchw[0-9]+c' "--layout plain keeps every value plain"
expect 0 "dump --layout auto --dump-ir=all" -- "$kiln" dump "$small" --layout=auto --dump-ir=all
contains "$work/out" "# after layout" "--dump-ir=all shows the layout pass"
contains_re "$work/out" 'nchw[0-9]+c' "--dump-ir=all --layout auto shows blocked values"
expect 0 "dump --layout auto without --after" -- "$kiln" dump "$small" --layout auto
contains "$work/err" "--layout has no effect" "dump without passes says --layout does nothing"
lacks_re "$work/out" 'nchw[0-9]+c' "dump without passes prints the model as read"
expect 2 "dump --layout bogus" -- "$kiln" dump "$small" --layout bogus --after layout
contains "$work/err" "kiln dump: error: --layout must be 'auto' or 'plain', got 'bogus'" "--layout bogus message"
expect 2 "dump --layout without a value" -- "$kiln" dump "$small" --after layout --layout
if "$kiln" --help | grep -q compile; then
  for cmd in compile run check bench; do
    expect 0 "$cmd --help" -- "$kiln" $cmd --help
    contains "$work/out" "--layout auto" "$cmd --help lists --layout"
  done
  expect 2 "compile --layout bogus" -- "$kiln" compile "$small" -o "$work/bad.o" --layout bogus
  expect 2 "check --layout bogus" -- "$kiln" check "$small" --layout bogus
  expect 0 "compile --layout plain" -- "$kiln" compile "$small" -o "$work/small.o" --layout plain
  # an MLP has nothing to block: --layout auto compiles it as before
  expect 0 "compile --layout auto --dump-ir=after:layout" -- "$kiln" compile "$mlp" -o "$work/mlp.o" --layout auto --dump-ir=after:layout
  contains "$work/err" "graph @mlp" "compile --dump-ir=after:layout prints the IR"
  lacks_re "$work/err" 'nchw[0-9]+c' "compile --layout auto: nothing to block in an MLP"
  contains "$work/out" "wrote $work/mlp.o" "compile --layout auto compiles"
  # kiln check compares a blocked value after converting it to NCHW; until the
  # code generator has blocked kernels it must refuse the graph cleanly
  "$kiln" check "$small" --layout auto >"$work/out" 2>"$work/err"; rc=$?
  if [ $rc -eq 0 ] && grep -q "^ok: every layer within" "$work/out"; then ok
  elif [ $rc -eq 1 ] && grep -q "has a blocked layout: this code generator handles the plain layout only" "$work/err"; then ok
  else fail "check --layout auto: exit $rc"; sed 's/^/  | /' "$work/err" | head -5; fi
fi

echo "cli_passes: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
