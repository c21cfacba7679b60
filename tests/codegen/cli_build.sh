#!/usr/bin/env bash
# tests/codegen/cli_build.sh: kiln as a step of a build and as a tool to look
# inside one:
#   - kiln compile --depfile (Makefile syntax, escaped paths), --name,
#     --precision, --cpu presets, --emit so (SONAME, run path, nothing of the
#     runtime re-exported), the report's portability lines, the header's new
#     functions;
#   - the same command gives the same object whatever the machine's core
#     count: the default plans for 8 threads (= --threads 8, not --threads 1);
#   - -v on every command; kiln dump's --layout note only when --layout is
#     given; DOT clusters for fusion groups; folded weights in a sidecar
#     safetensors file that reads back (dump -o, compile and run the .kir).
#
# usage: cli_build.sh KILN NPY_COMPARE SOURCE_DIR
set -uo pipefail
kiln=$1 npycmp=$2 src=$3
work=$(mktemp -d "${TMPDIR:-/tmp}/kiln-cli-build-XXXXXX")
trap 'rm -rf "$work"' EXIT
lenet=$src/examples/lenet/lenet.yaml
digits=$src/examples/digits/digits.yaml
sample=$src/examples/digits/samples/digit_3.npy
passed=0; failed=0
ok()   { passed=$((passed + 1)); }
fail() { failed=$((failed + 1)); echo "FAIL: $*"; }
expect_rc() { # rc, command...
  local want=$1; shift
  "$@" >"$work/out" 2>"$work/err"
  local rc=$?
  if [ "$rc" -eq "$want" ]; then ok; else fail "'$*' exited $rc, expected $want: $(head -3 "$work/err")"; fi
}
has() { if grep -q -- "$2" "$1"; then ok; else fail "$3: '$2' not in $(basename "$1")"; sed 's/^/  | /' "$1" | head -6; fi; }
hasre() { if grep -Eq -- "$2" "$1"; then ok; else fail "$3: /$2/ not in $(basename "$1")"; sed 's/^/  | /' "$1" | head -6; fi; }
hasnt() { if grep -q -- "$2" "$1"; then fail "$3: '$2' in $(basename "$1")"; grep -- "$2" "$1" | head -3 | sed 's/^/  | /'; else ok; fi; }

# ---- --depfile -------------------------------------------------------------------
mkdir -p "$work/my model"
cp "$digits" "$src/examples/digits/digits.safetensors" "$work/my model/"
expect_rc 0 "$kiln" compile "$work/my model/digits.yaml" -o "$work/d.o" --depfile "$work/d.d"
has "$work/d.d" "^$work/d.o: \\\\\$" "depfile target"
has "$work/d.d" "my\\\\ model/digits.yaml" "depfile: the model, space escaped"
has "$work/d.d" "my\\\\ model/digits.safetensors" "depfile: the weights file"
# make reads it: the object is up to date, then out of date once the weights
# are newer (the escaped space must survive make's parser)
printf -- '%s:\n\t@echo rebuild\n-include %s\n' "$work/d.o" "$work/d.d" >"$work/Makefile"
if (cd "$work" && make -q -f Makefile "$work/d.o" >/dev/null 2>&1); then ok; else fail "make: d.o out of date right after compiling"; fi
sleep 1; touch "$work/my model/digits.safetensors"
if (cd "$work" && make -q -f Makefile "$work/d.o" >/dev/null 2>&1); then fail "make thinks d.o is up to date after the weights changed"; else ok; fi
expect_rc 2 "$kiln" compile "$lenet" -o "$work/a.o" --depfile ""
expect_rc 1 "$kiln" compile "$lenet" -o "$work/a.o" --depfile "$work/no/such/dir/a.d"
has "$work/err" "cannot write '$work/no/such/dir/a.d': No such file or directory" "depfile error message"

# ---- --name, --precision, the header ----------------------------------------------------
expect_rc 0 "$kiln" compile "$lenet" -o "$work/net2.o" --header "$work/net2.h" --name net2
has "$work/net2.h" "kiln_status net2_run(net2 \\*m" "--name: the header's prefix"
has "$work/net2.h" "kiln_status net2_run_checked(net2 \\*m, int64_t batch," "header: run_checked"
has "$work/net2.h" "const float \\*image, size_t image_bytes" "header: run_checked's sizes"
has "$work/net2.h" "const char \\*net2_last_error(const net2 \\*m);" "header: last_error"
has "$work/net2.h" "#define net2_NEEDS_BLAS 0" "header: NEEDS_BLAS"
if nm --version >/dev/null 2>&1; then
  nm -g --defined-only "$work/net2.o" | awk '{print $3}' | sort >"$work/syms"
  printf '%s\n' net2_create net2_destroy net2_info net2_last_error net2_run net2_run_checked net2_workspace_size \
    | sort >"$work/want"
  if cmp -s "$work/syms" "$work/want"; then ok; else fail "--name: exported symbols"; diff "$work/want" "$work/syms"; fi
fi
# size parameters that would collide with a buffer's name get neutral names
cat >"$work/clash.yaml" <<'YAML'
kiln: 1
name: clash
inputs:
  - {name: x, shape: [batch, 4]}
  - {name: x_bytes, shape: [batch, 4]}
layers:
  - {name: y, op: add, inputs: [x, x_bytes]}
YAML
expect_rc 0 "$kiln" compile "$work/clash.yaml" -o "$work/clash.o" --header "$work/clash.h"
has "$work/clash.h" "const float \*x, size_t kiln_bytes0" "run_checked: renamed size parameters"
if ${CC:-cc} --version >/dev/null 2>&1; then
  echo '#include "clash.h"' | ${CC:-cc} -std=c99 -pedantic -Wall -Werror -fsyntax-only -I"$work" -I"$src/runtime/include" -x c - \
    >"$work/cc.log" 2>&1 && ok || { fail "clash.h does not compile"; head -5 "$work/cc.log"; }
fi
expect_rc 2 "$kiln" compile "$lenet" -o "$work/a.o" --name 2fast
has "$work/err" "--name must be a C identifier" "--name: bad identifier"
expect_rc 1 "$kiln" compile "$lenet" -o "$work/a.o" --name int
expect_rc 2 "$kiln" compile "$lenet" -o "$work/a.o" --precision f8
has "$work/err" "--precision must be one of f32, bf16, f16, int8, auto, got 'f8'" "--precision: unknown"

# ---- precision (docs/precision.md) ---------------------------------------------------
cat >"$work/prec.yaml" <<'YAML'
kiln: 1
name: prec
init: {random: 3}
precision: bf16
inputs:
  - {name: x, shape: [batch, 3, 8, 8]}
layers:
  - {name: conv, op: conv2d, filters: 8, kernel: 3, padding: 1, activation: relu}
  - {name: dw, op: conv2d, filters: 8, kernel: 3, padding: 1, groups: 8}
  - {name: flat, op: flatten}
  - {name: fc1, op: dense, units: 33, precision: f16}
  - {name: fc2, op: dense, units: 10}
YAML
# the model's default; a layer's own key; what has no kernel says so
expect_rc 0 "$kiln" dump "$work/prec.yaml" --after precision
has "$work/out" 'conv2d(%x, %conv.weight, %conv.bias) .* layer "conv" precision bf16' "precision: the model's default"
has "$work/out" '%conv = relu(.* layer "conv" precision f32' "precision: activations stay f32"
has "$work/out" 'layer "fc1" precision f16' "precision: the layer's key"
has "$work/out" 'layer "fc2" precision bf16' "precision: default on the last dense"
has "$work/out" 'layer "dw" precision f32' "precision: depthwise computes f32"
has "$work/err" "layer 'dw' (conv2d): precision bf16 is not implemented yet for convolutions with one input channel" "precision: depthwise warning"
hasnt "$work/err" "'flat'" "precision: no warning for ops that are f32 by design"
# --precision replaces the model's default, the layer's key wins over both
expect_rc 0 "$kiln" dump "$work/prec.yaml" --after precision --precision f16
has "$work/out" 'layer "fc2" precision f16' "--precision f16: the default replaced"
has "$work/out" 'layer "conv" precision f16' "--precision f16: conv"
has "$work/out" 'layer "fc1" precision f16' "--precision f16: fc1 keeps its key"
expect_rc 0 "$kiln" dump "$work/prec.yaml" --after precision --precision f32
hasnt "$work/out" 'layer "fc2" precision' "--precision f32: fc2 is default f32"
has "$work/out" 'layer "fc1" precision f16' "--precision f32: the layer's key wins"
hasnt "$work/err" "warning" "--precision f32: no warning"
expect_rc 0 "$kiln" dump "$work/prec.yaml" --after precision --precision int8 --calibration random
has "$work/err" "layer 'dw' (conv2d): precision int8 is not implemented yet for convolutions with one input channel" "--precision int8: depthwise warning"
has "$work/out" 'layer "conv" precision int8' "--precision int8: the convolution computes int8"
has "$work/out" 'layer "dw" precision f32' "--precision int8: depthwise computes f32"
has "$work/out" 'dense(%fc1, %fc2.weight, %fc2.bias) {units=10, in_scale=[0-9.e-]*, in_zero=[0-9]*} .* layer "fc2" precision int8' "--precision int8: fc2 int8, with its input's quantization"
# select keeps them on the GEMM (never Winograd, never OpenBLAS)
expect_rc 0 "$kiln" dump "$work/prec.yaml" --after select --cpu x86-64-v3
has "$work/out" 'layer "conv" precision bf16 group 1 impl igemm' "select: igemm for bf16"
# the compiled code: vdpbf16ps where AVX512-BF16 is, the widening fallback elsewhere
for cpu in sapphirerapids znver4; do
  expect_rc 0 "$kiln" compile "$work/prec.yaml" -o "$work/prec_$cpu.s" --emit asm --cpu $cpu
  has "$work/prec_$cpu.s" "vdpbf16ps" "bf16 on $cpu: vdpbf16ps"
  has "$work/prec_$cpu.s" "vcvtph2ps" "f16 on $cpu: vcvtph2ps"
done
has "$work/out" "precision bf16 (weights and products): 2 layers; f16 (weights): 1 layer; every other node f32" "report: precision"
for cpu in znver3 x86-64-v4; do
  expect_rc 0 "$kiln" compile "$work/prec.yaml" -o "$work/prec_$cpu.s" --emit asm --cpu $cpu
  hasnt "$work/prec_$cpu.s" "vdpbf16ps" "bf16 on $cpu: no vdpbf16ps"
  has "$work/prec_$cpu.s" "kiln.ukernel.bf16_" "bf16 on $cpu: the widening micro-kernel"
  has "$work/prec_$cpu.s" "vcvtph2ps" "f16 on $cpu: vcvtph2ps"
done
expect_rc 0 "$kiln" compile "$work/prec.yaml" -o "$work/prec_v2.s" --emit asm --cpu x86-64-v2
hasnt "$work/prec_v2.s" "__extendhfsf2" "f16 without F16C: no library call"
# the weights blob holds what is stored
expect_rc 0 "$kiln" compile "$work/prec.yaml" -o "$work/p32.o" --header "$work/p32.h" --precision f32 --cpu x86-64-v3
expect_rc 0 "$kiln" compile "$work/prec.yaml" -o "$work/p16.o" --header "$work/p16.h" --cpu x86-64-v3
hasre "$work/out" "by precision: f16 [0-9.]+ KiB, bf16 [0-9.]+ (B|KiB), f32 [0-9]+ B$" "report: weight bytes per precision"
w32=$(sed -n 's/.*prec_WEIGHT_BYTES ((size_t)\([0-9]*\)u).*/\1/p' "$work/p32.h")
w16=$(sed -n 's/.*prec_WEIGHT_BYTES ((size_t)\([0-9]*\)u).*/\1/p' "$work/p16.h")
if [ -n "$w32" ] && [ -n "$w16" ] && [ "$w16" -lt "$w32" ]; then ok; else fail "WEIGHT_BYTES: bf16 $w16 not under f32 $w32"; fi
# kiln check compares the bf16 build with the interpreter emulating it
expect_rc 0 "$kiln" check "$work/prec.yaml" --batch 3
# and shows what bf16 costs against the model computed in f32: the last
# column, of bf16's size (its unit roundoff is 2^-9 = 2e-3)
has "$work/out" "vs f32" "check --precision: a column against f32"
vs=$(awk '/^fc2 / {print $NF}' "$work/out" | tail -1)
if awk -v v="$vs" 'BEGIN { exit !(v + 0 > 1e-4 && v + 0 < 5e-2) }'; then ok; else fail "check: fc2 vs f32 '$vs' not of bf16's size"; fi
expect_rc 0 "$kiln" check "$work/prec.yaml" --batch 3 --precision f16 --cpu x86-64-v3
expect_rc 0 "$kiln" check "$lenet" --threads 1
hasnt "$work/out" "vs f32" "check of an f32 model: no column against f32"

# ---- the same object whatever the machine ---------------------------------------------
expect_rc 0 "$kiln" compile "$lenet" -o "$work/default.o" --cpu x86-64-v3 --target x86_64-linux-gnu
has "$work/out" "tasks planned for 8 threads (the default" "report: planned threads"
hasnt "$work/out" "this machine's (the default)" "report: no host-CPU line with --cpu"
expect_rc 0 "$kiln" compile "$lenet" -o "$work/t8.o" --cpu x86-64-v3 --target x86_64-linux-gnu --threads 8
expect_rc 0 "$kiln" compile "$lenet" -o "$work/t1.o" --cpu x86-64-v3 --target x86_64-linux-gnu --threads 1
if cmp -s "$work/default.o" "$work/t8.o"; then ok; else fail "the default object differs from --threads 8"; fi
if cmp -s "$work/default.o" "$work/t1.o"; then fail "--threads 1 gives the default object: the check is blind"; else ok; fi
expect_rc 0 "$kiln" compile "$lenet" -o "$work/host.o"
has "$work/out" "cpu       this machine's (the default)" "report: the host CPU default is named"
has "$work/out" "links     libkiln_rt only" "report: the libraries to link"
for preset in "x86-64-v2 sse (4 x f32)" "x86-64-v3 avx2 (8 x f32)" "x86-64-v4 avx512 (16 x f32)"; do
  set -- $preset
  expect_rc 0 "$kiln" compile "$lenet" -o "$work/p.o" --target x86_64-linux-gnu --cpu "$1"
  has "$work/out" "cpu $1, $2 $3 $4 $5" "--cpu $1"
done

# ---- --emit so --------------------------------------------------------------------------
if readelf --version >/dev/null 2>&1; then
  expect_rc 0 "$kiln" compile "$lenet" -o "$work/liblenet.so"
  readelf -d "$work/liblenet.so" >"$work/so.dyn"
  has "$work/so.dyn" "SONAME.*\\[liblenet.so\\]" "--emit so: SONAME"
  has "$work/so.dyn" "NEEDED.*\\[libkiln_rt.so" "--emit so: links the shared runtime"
  hasnt "$work/so.dyn" "RUNPATH\\|RPATH" "--emit so: no run path by default"
  nm -D --defined-only "$work/liblenet.so" >"$work/so.syms" 2>&1
  hasnt "$work/so.syms" " kiln_rt_" "--emit so: the runtime is not re-exported"
  expect_rc 0 "$kiln" compile "$lenet" -o "$work/liblenet2.so" --rpath /opt/kiln/lib
  readelf -d "$work/liblenet2.so" >"$work/so.dyn"
  has "$work/so.dyn" "PATH.*\\[/opt/kiln/lib\\]" "--rpath"
fi
expect_rc 2 "$kiln" compile "$lenet" -o "$work/a.o" --rpath /opt

# ---- -v on every command ------------------------------------------------------------------
expect_rc 0 "$kiln" compile "$lenet" -o "$work/v.o" --header "$work/v.h" -v
has "$work/err" "^kiln compile: load .*lenet.yaml" "compile -v: load"
has "$work/err" "^kiln compile: passes .* ms$" "compile -v: passes"
has "$work/err" "^kiln compile: emit .*v.o .* ms$" "compile -v: emit"
has "$work/err" "^kiln compile: header .*v.h" "compile -v: header"
expect_rc 0 "$kiln" -v dump "$lenet" --after fuse
has "$work/err" "^kiln dump: load" "kiln -v dump: load"
has "$work/err" "^kiln dump: print text" "kiln -v dump: print"
expect_rc 0 "$kiln" run "$digits" --input "image=$sample" --output "$work/run" --threads 1 -v
has "$work/err" "^kiln run: code generation" "run -v: code generation"
has "$work/err" "^kiln run: run the compiled model" "run -v: run"
has "$work/err" "^kiln run: write 2 outputs" "run -v: outputs"
expect_rc 0 "$kiln" run "$digits" --interp --input "image=$sample" --output "$work/run" -v
has "$work/err" "^kiln run: reference interpreter" "run --interp -v"
expect_rc 0 "$kiln" check "$lenet" --threads 1 -v
has "$work/err" "^kiln check: reference interpreter" "check -v"
expect_rc 0 "$kiln" bench "$lenet" --threads 1 --iterations 2 --warmup 1 --verbose
has "$work/err" "^kiln bench: 2 timed runs" "bench -v"

# ---- kiln dump: the --layout note, DOT clusters, the sidecar ---------------------------------
expect_rc 0 "$kiln" dump "$lenet"
hasnt "$work/err" "--layout" "dump without --layout: no note about it"
expect_rc 0 "$kiln" dump "$lenet" --layout plain
has "$work/err" "--layout has no effect" "dump --layout without passes: the note"
expect_rc 0 "$kiln" dump "$digits" --after fuse --format dot
has "$work/out" "subgraph cluster_g1 {" "dot: a cluster per fusion group"
has "$work/out" 'label="group 1: conv1+bn1+relu1"' "dot: the cluster names its layers"
expect_rc 0 "$kiln" dump "$digits" --after verify --format dot
hasnt "$work/out" "subgraph cluster" "dot before fuse: no cluster"
expect_rc 0 "$kiln" dump "$digits" --after schedule -o "$work/dg.kir"
if [ -s "$work/dg.kir.safetensors" ]; then ok; else fail "dump -o: no sidecar dg.kir.safetensors"; fi
hasnt "$work/dg.kir" "data f32" "dump -o: folded weights not printed as hex"
has "$work/dg.kir" 'weights "dg.kir.safetensors"' "dump -o: the text names the sidecar"
head -c 8 "$work/dg.kir.safetensors" | od -An -tu8 >"$work/hlen"
[ "$(tr -d ' ' <"$work/hlen")" -gt 0 ] && ok || fail "sidecar: no header length"
# edit the dump (a comment and the description) and compile it; run it against the YAML
sed -i 's/^  description .*/  description "edited by hand"/' "$work/dg.kir"
expect_rc 0 "$kiln" compile "$work/dg.kir" -o "$work/dg.o" --header "$work/dg.h"
has "$work/dg.h" "edited by hand" "the edited dump compiles"
expect_rc 0 "$kiln" run "$work/dg.kir" --input "image=$sample" --output "$work/kir_out" --threads 1
expect_rc 0 "$kiln" run "$digits" --input "image=$sample" --output "$work/yaml_out" --threads 1
"$npycmp" "$work/yaml_out/probs.npy" "$work/kir_out/probs.npy" >/dev/null && ok || fail "the .kir and its sidecar run like the YAML"
# a dump of the dump refers to the same sidecar and reads back identically
expect_rc 0 "$kiln" dump "$work/dg.kir" -o "$work/dg2.kir"
if [ -e "$work/dg2.kir.safetensors" ]; then fail "a dump without inline data wrote a sidecar"; else ok; fi
expect_rc 0 "$kiln" dump "$work/dg2.kir" -o "$work/dg3.kir"
if cmp -s "$work/dg2.kir" "$work/dg3.kir"; then ok; else fail "dump of a dump is not stable"; fi
# the sidecar never overwrites a weights file of the model
cp "$work/my model/digits.safetensors" "$work/keep.safetensors"
expect_rc 1 "$kiln" dump "$work/my model/digits.yaml" --after fold_batchnorm -o "$work/my model/digits"
has "$work/err" "is a weights file of the model" "sidecar collision message"
cmp -s "$work/my model/digits.safetensors" "$work/keep.safetensors" && ok || fail "the model's weights file was overwritten"

echo "cli_build: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
