#!/usr/bin/env bash
# tests/codegen/cli_codegen.sh: the commands that use the code generator:
# kiln compile (every --emit kind, targets, options, errors), kiln run (JIT
# against --interp), kiln check (pass, and a tolerance that fails with the
# first layer named), kiln bench.
#
# usage: cli_codegen.sh KILN NPY_COMPARE SOURCE_DIR
set -uo pipefail
kiln=$1 npycmp=$2 src=$3
work=$(mktemp -d "${TMPDIR:-/tmp}/kiln-cli-cg-XXXXXX")
trap 'rm -rf "$work"' EXIT
lenet=$src/examples/lenet/lenet.yaml
digits=$src/examples/digits/digits.yaml
failed=0
fail() { echo "FAIL: $*"; failed=1; }
expect_rc() { # rc, command...
  local want=$1; shift
  "$@" >"$work/out" 2>"$work/err"
  local rc=$?
  [ "$rc" -eq "$want" ] || fail "'$*' exited $rc, expected $want: $(head -3 "$work/err")"
}

[ -f "$lenet" ] || { echo "examples/lenet missing: skipped"; exit 0; }

# compile: every kind, by --emit and by extension
expect_rc 0 "$kiln" compile "$lenet" -o "$work/lenet.o" --header "$work/lenet.h"
head -c 4 "$work/lenet.o" | grep -q ELF || fail "lenet.o is not ELF"
grep -q "kiln_status lenet_run(lenet \*m, int64_t batch," "$work/lenet.h" || fail "header lacks lenet_run"
expect_rc 0 "$kiln" compile "$lenet" -o "$work/lenet.s"
grep -q "lenet_run:" "$work/lenet.s" || fail "lenet.s lacks lenet_run"
expect_rc 0 "$kiln" compile "$lenet" -o "$work/x.txt" --emit llvm -O0
grep -q "define i32 @lenet_run" "$work/x.txt" || fail "--emit llvm"
expect_rc 0 "$kiln" compile "$lenet" -o "$work/lenet.bc" -O3
expect_rc 0 "$kiln" compile "$lenet" -o "$work/liblenet.a"
head -c 8 "$work/liblenet.a" | grep -q '!<arch>' || fail "liblenet.a is not an archive"
expect_rc 0 "$kiln" compile "$lenet" -o "$work/liblenet.so"
expect_rc 0 "$kiln" compile "$lenet" -o "$work/lenet64.o" --target aarch64-linux-gnu --cpu cortex-a76
expect_rc 0 "$kiln" compile "$lenet" -o "$work/lenet_z4.s" --target x86_64-linux-gnu --cpu znver4
grep -q zmm "$work/lenet_z4.s" || fail "znver4 code without zmm registers"
expect_rc 0 "$kiln" compile "$lenet" -o "$work/ext.o" --weights external
[ -s "$work/ext.weights" ] || fail "--weights external wrote no ext.weights"
expect_rc 0 "$kiln" compile "$lenet" -o "$work/ext2.o" --weights external --weights-path /opt/lenet.weights
# compile: one module or several (the report names them)
expect_rc 0 "$kiln" compile "$lenet" -o "$work/j1.o" --jobs 1
grep -q "machine code .* (one module)" "$work/out" || fail "--jobs 1: $(grep 'code generation' "$work/out")"
expect_rc 0 "$kiln" compile "$lenet" -o "$work/j4.o" --jobs 4
grep -q "(4 modules on 4 threads)" "$work/out" || fail "--jobs 4: $(grep 'code generation' "$work/out")"
expect_rc 0 "$kiln" compile "$lenet" -o "$work/j2.o"
cmp -s "$work/j2.o" "$work/lenet.o" || fail "two compiles of lenet differ"
# compile: usage and run-time errors
expect_rc 2 "$kiln" compile "$lenet"
expect_rc 2 "$kiln" compile "$lenet" -o "$work/a.o" --emit exe
expect_rc 2 "$kiln" compile "$lenet" -o "$work/a.o" --weights elsewhere
expect_rc 2 "$kiln" compile "$lenet" -o "$work/a.o" --weights-path /x
expect_rc 2 "$kiln" compile "$lenet" -o "$work/a.o" -O7
expect_rc 2 "$kiln" compile "$lenet" -o "$work/a.o" --jobs 0
expect_rc 2 "$kiln" compile "$lenet" -o "$work/a.o" --jobs 5
expect_rc 1 "$kiln" compile "$lenet" -o "$work/a.o" --target no-such-target
expect_rc 1 "$kiln" compile "$lenet" -o "$work/no/such/dir/a.o"
expect_rc 1 "$kiln" compile "$work/missing.yaml" -o "$work/a.o"
expect_rc 0 "$kiln" compile --help

# run: the JIT against the interpreter
if [ -f "$digits" ]; then
  sample=$src/examples/digits/samples/digit_3.npy
  expect_rc 0 "$kiln" run "$digits" --input "image=$sample" --output "$work/jit" --threads 2
  expect_rc 0 "$kiln" run "$digits" --interp --input "image=$sample" --output "$work/interp"
  for f in "$work"/interp/*.npy; do
    "$npycmp" "$f" "$work/jit/$(basename "$f")" >/dev/null || fail "kiln run: $(basename "$f") differs"
  done
  grep -q "argmax 3" "$work/out" || true
fi

# check: passes, and fails naming the first layer
expect_rc 0 "$kiln" check "$lenet" --batch 3 --threads 2
grep -q "^ok: every layer within" "$work/out" || fail "kiln check: no summary"
expect_rc 1 "$kiln" check "$lenet" --tolerance 1e-12
grep -q "layer 'conv1' (conv2d) is the first over the tolerance" "$work/err" || fail "kiln check: first layer not named"
expect_rc 2 "$kiln" check "$lenet" --tolerance abc
expect_rc 2 "$kiln" check "$lenet" --batch 0

# bench
expect_rc 0 "$kiln" bench "$lenet" --batch 2 --threads 1 --iterations 5 --warmup 1
grep -q "median" "$work/out" && grep -q "items/s" "$work/out" || fail "kiln bench: no latency / throughput"
expect_rc 2 "$kiln" bench "$lenet" --iterations 0

# --winograd: forced on a 3x3 stride-1 model, off, bad values; the compile
# report shows the transforms' scratch apart from the planned values
cat >"$work/c3.yaml" <<'YAML'
kiln: 1
name: c3
init: {random: 3}
inputs:
  - {name: x, shape: [batch, 8, 13, 11]}
outputs: [y]
layers:
  - {name: c1, op: conv2d, filters: 8, kernel: 3, padding: 1, activation: relu}
  - {name: y, op: conv2d, filters: 5, kernel: 3, padding: 1}
YAML
expect_rc 0 "$kiln" bench "$work/c3.yaml" --winograd f4 --iterations 2 --warmup 1 --per-layer
[ "$(grep -c winograd4 "$work/out")" -eq 2 ] || fail "kiln bench --winograd f4: not both layers on F(4x4)"
expect_rc 0 "$kiln" bench "$work/c3.yaml" --winograd off --iterations 2 --warmup 1 --per-layer
grep -q winograd "$work/out" && fail "kiln bench --winograd off: a Winograd kernel"
expect_rc 0 "$kiln" check "$work/c3.yaml" --winograd f4 --batch 3
grep -q "^note: Winograd F(4x4) layers: default tolerance 5e-4" "$work/out" || fail "kiln check: no F(4x4) tolerance note"
grep -q "^ok: every layer within 0.0005" "$work/out" || fail "kiln check: F(4x4) default tolerance not 5e-4"
expect_rc 0 "$kiln" check "$work/c3.yaml" --winograd f2 --batch 3
grep -q "^note: Winograd" "$work/out" && fail "kiln check: a tolerance note for F(2x2)"
expect_rc 0 "$kiln" compile "$work/c3.yaml" -o "$work/c3.o" --winograd f4
grep -q "^  scratch .*Winograd" "$work/out" || fail "kiln compile: no scratch line for Winograd layers"
grep -Eq "values and scratch at batch 1: 10[0-9]\.[0-9]% of the lower bound" "$work/out" || fail "kiln compile: plan vs lower bound"
expect_rc 2 "$kiln" compile "$work/c3.yaml" -o "$work/c3.o" --winograd f8
grep -q "winograd must be auto, off, f2 or f4, got 'f8'" "$work/err" || fail "--winograd f8: no message"

[ $failed -eq 0 ] && echo "ok"
exit $failed
