#!/usr/bin/env bash
# tests/onnx/import_cli.sh KILN SOURCE_DIR: `kiln import` as a user meets it:
# usage errors, the model it writes (inputs, outputs, the batch, names, the
# weights path), pins, refusals (exit status 3, one line per problem, every
# problem listed) and malformed files (refused, never a crash). The fixtures
# are tests/fixtures/onnx (tools/gen_onnx_fixtures.py); the numbers the
# imported models compute are checked by onnx_check.
set -u
kiln=$(realpath "$1"); src=$(realpath "$2")
fx=$src/tests/fixtures/onnx
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
passed=0; failed=0
ok()   { passed=$((passed + 1)); }
fail() { failed=$((failed + 1)); echo "FAIL: $*"; }
# expect STATUS DESCRIPTION -- COMMAND...
expect() {
  local want=$1 what=$2; shift 3
  "$@" >"$work/out" 2>"$work/err"; local got=$?
  if [ "$got" -eq "$want" ]; then ok; else fail "$what: exit $got, expected $want"; sed 's/^/  | /' "$work/err" | head -5; fi
}
# has FILE TEXT DESCRIPTION: FILE contains the line TEXT (fixed string)
has() { if grep -qxF -- "$2" "$1"; then ok; else fail "$3: no line '$2'"; sed 's/^/  | /' "$1" | head -20; fi; }
# contains FILE TEXT DESCRIPTION: TEXT anywhere in FILE
contains() { if grep -qF -- "$2" "$1"; then ok; else fail "$3: '$2' not found"; sed 's/^/  | /' "$1" | head -10; fi; }
lacks() { if grep -qF -- "$2" "$1"; then fail "$3: '$2' found"; sed 's/^/  | /' "$1" | head -10; else ok; fi; }

# ---- usage
expect 0 "import --help" -- "$kiln" import --help
contains "$work/out" "usage: kiln import" "help text"
expect 2 "no -o" -- "$kiln" import "$fx/classifier.onnx"
expect 2 "no model" -- "$kiln" import -o "$work/m.yaml"
expect 2 "--input without '='" -- "$kiln" import "$fx/classifier.onnx" -o "$work/m.yaml" --input input
expect 2 "--input with a zero dimension" -- "$kiln" import "$fx/classifier.onnx" -o "$work/m.yaml" --input input=1x0
expect 2 "--input with a trailing x" -- "$kiln" import "$fx/classifier.onnx" -o "$work/m.yaml" --input input=1x
expect 2 "--name not an identifier" -- "$kiln" import "$fx/classifier.onnx" -o "$work/m.yaml" --name 9lives
expect 1 "missing model file" -- "$kiln" import "$work/nope.onnx" -o "$work/m.yaml"

# ---- a classifier with a dynamic batch: the model a person would write
expect 0 "import classifier" -- "$kiln" import "$fx/classifier.onnx" -o "$work/classifier.yaml"
y=$work/classifier.yaml
has "$y" "name: classifier" "model name from the output file"
has "$y" "weights: classifier.safetensors" "weights next to the model"
has "$y" "  - {name: input, shape: [batch, 3, 4, 4]}" "leading dynamic dimension is the batch"
has "$y" "outputs: [logits]" "outputs always written"
has "$y" "  - {name: conv1, op: conv2d, filters: 4, kernel: 3, padding: 1, activation: relu}" "conv with its relu"
has "$y" "  - {name: pool, op: maxpool2d, kernel: 2}" "max pool, stride = kernel left out"
has "$y" "  - {name: Flatten, op: flatten}" "Flatten at axis 1"
has "$y" "  - {name: logits, op: dense, units: 10, params: {weight: fc.weight, bias: fc.bias}}" "Gemm with transB as dense, PyTorch's keys"
[ -s "$work/classifier.safetensors" ] && ok || fail "classifier.safetensors not written"
contains "$work/out" "wrote $y" "the report names the file"
expect 0 "kiln dump reads the imported model" -- "$kiln" dump "$y"
contains "$work/out" "conv1.weight" "state_dict keys kept (conv1.weight)"
contains "$work/out" "fc.weight" "state_dict keys kept (fc.weight)"

# the weights elsewhere: the YAML names them by a relative path
mkdir -p "$work/a" "$work/b"
expect 0 "--weights in another directory" -- "$kiln" import "$fx/classifier.onnx" -o "$work/a/m.yaml" \
  --weights "$work/b/w.safetensors" --name clf
has "$work/a/m.yaml" "weights: ../b/w.safetensors" "weights path relative to the YAML"
has "$work/a/m.yaml" "name: clf" "--name"
expect 0 "the model loads from another directory" -- bash -c "cd / && '$kiln' dump '$work/a/m.yaml'"

# a weights file name that YAML must quote
expect 0 "a weights file name with ': ' and '#'" -- "$kiln" import "$fx/classifier.onnx" -o "$work/a/q.yaml" \
  --weights "$work/a/w: #1.safetensors"
has "$work/a/q.yaml" 'weights: "w: #1.safetensors"' "the path is quoted"
expect 0 "the quoted path loads" -- "$kiln" dump "$work/a/q.yaml"

# ---- pins
expect 0 "pin the batch" -- "$kiln" import "$fx/classifier.onnx" -o "$work/p.yaml" --input input=2x3x4x4
has "$work/p.yaml" "  - {name: input, shape: [2, 3, 4, 4]}" "pinned shape"
expect 1 "pin contradicting a static dimension" -- "$kiln" import "$fx/classifier.onnx" -o "$work/p.yaml" \
  --input input=1x3x5x4
contains "$work/err" "dimension 2 of the input is 4 in the model, not 5" "contradiction message"
expect 1 "pin of the wrong rank" -- "$kiln" import "$fx/classifier.onnx" -o "$work/p.yaml" --input input=1x3x4
contains "$work/err" "the input has rank 4, the pin gives 3 dimensions" "rank message"
expect 1 "pin of an unknown input" -- "$kiln" import "$fx/classifier.onnx" -o "$work/p.yaml" --input image=1x3x4x4
contains "$work/err" "no input of that name" "unknown input message"
expect 1 "pin of an initializer" -- "$kiln" import "$fx/classifier.onnx" -o "$work/p.yaml" --input fc.bias=10
contains "$work/err" "(it is an initializer)" "initializer pin message"
expect 1 "pin given twice" -- "$kiln" import "$fx/classifier.onnx" -o "$work/p.yaml" --input input=1x3x4x4 \
  --input input=1x3x4x4
expect 1 "dynamic H and W unpinned" -- "$kiln" import "$fx/dynamic_hw.onnx" -o "$work/d.yaml"
has "$work/err" "$fx/dynamic_hw.onnx: error: input 'x': dimension 2 ('H') is dynamic: pin it with --input x=D0xD1x... (only a leading dynamic dimension becomes the batch)" "unpinned dimension names the input"
[ -e "$work/d.yaml" ] && fail "a model was written after an error" || ok
expect 0 "dynamic H and W pinned" -- "$kiln" import "$fx/dynamic_hw.onnx" -o "$work/d.yaml" --input x=2x3x5x6
has "$work/d.yaml" "  - {name: x, shape: [2, 3, 5, 6]}" "all dimensions pinned"
expect 0 "rank-0 input, unpinned" -- "$kiln" import "$fx/scalar_input.onnx" -o "$work/s.yaml"
has "$work/s.yaml" "  - {name: s, shape: [1]}" "a rank-0 input is written [1]"
expect 0 "rank-0 input pinned with NAME=" -- "$kiln" import "$fx/scalar_input.onnx" -o "$work/s.yaml" --input s=
expect 1 "rank-0 input pinned with a dimension" -- "$kiln" import "$fx/scalar_input.onnx" -o "$work/s.yaml" --input s=1
expect 0 "a name with '=' splits at the last '='" -- "$kiln" import "$fx/scalar_input.onnx" -o "$work/s.yaml" --input x=4

# ---- names
expect 0 "names to sanitize" -- "$kiln" import "$fx/names.onnx" -o "$work/n.yaml"
has "$work/n.yaml" "  - {name: input_0, shape: [2, 3]}" "input:0 sanitized"
has "$work/n.yaml" "outputs: [out.a, out_a_2]" "outputs unique in their C spelling"
expect 0 "the sanitized model compiles to a header" -- "$kiln" compile "$work/n.yaml" -o "$work/n.o" --header "$work/n.h"
contains "$work/n.h" "out_a_2" "the second output's name in the header"
expect 0 "an output that is an input" -- "$kiln" import "$fx/passthrough.onnx" -o "$work/pt.yaml"
has "$work/pt.yaml" "outputs: [y, x_2]" "the input as an output gets a name of its own"
expect 0 "that model loads" -- "$kiln" dump "$work/pt.yaml"

# ---- refusals: exit 3, one line per problem, all of them
echo "keep me" >"$work/r.yaml"
expect 3 "refusals" -- "$kiln" import "$fx/refusals.onnx" -o "$work/r.yaml"
r=$fx/refusals.onnx
has "$work/err" "$r: input 'cond': unsupported: it is bool (kiln's inputs are float32)" "non-float input"
has "$work/err" "$r: node 'sine' (Sin): unsupported: kiln has no operation that computes ONNX's Sin" "op kiln lacks"
has "$work/err" "$r: node 'fused' (FusedGemm): unsupported: operator domain 'com.microsoft' is not supported (only ONNX's default domain is)" "other domain"
has "$work/err" "$r: node 'branch' (If): unsupported: control flow (If, Loop, Scan) is not supported" "control flow"
has "$work/err" "$r: node 'conv' (Conv): unsupported: its weight 'w' is a graph input, not an initializer: kiln needs parameters to be constants" "weight as a graph input"
[ "$(grep -c ": unsupported: " "$work/err")" -eq 5 ] && ok || fail "refusals: expected exactly 5 problem lines"
has "$work/r.yaml" "keep me" "a refused import writes nothing"
expect 3 "int64 input and output" -- "$kiln" import "$fx/int_io.onnx" -o "$work/r.yaml"
has "$work/err" "$fx/int_io.onnx: input 'ids': unsupported: it is int64 (kiln's inputs are float32)" "int64 input"
expect 3 "opset 22" -- "$kiln" import "$fx/opset22.onnx" -o "$work/r.yaml"
has "$work/err" "$fx/opset22.onnx: unsupported: operator set version 22 (kiln reads 1 to 21)" "opset range"
expect 0 "Split as slices" -- "$kiln" import "$fx/split.onnx" -o "$work/split.yaml"
has "$work/split.yaml" "  - {name: a, op: slice, axis: 1, end: 2}" "Split's first part"
has "$work/split.yaml" "  - {name: b, op: slice, input: x, axis: 1, start: 2}" "Split's second part"
expect 0 "that model loads" -- "$kiln" dump "$work/split.yaml"

# ---- what the ops of format 1.1 cannot take: every node listed, the reason naming the attribute
expect 3 "format 1.1 refusals" -- "$kiln" import "$fx/refusals_11.onnx" -o "$work/r.yaml"
r=$fx/refusals_11.onnx
has "$work/err" "$r: node 'resize_round' (Resize): unsupported: nearest with coordinates 'asymmetric' and rounding 'round_prefer_floor' (kiln's resize has PyTorch's nearest: asymmetric and floor, and nearest-exact: half_pixel and round_prefer_ceil)" "Resize rounding"
has "$work/err" "$r: node 'resize_cubic' (Resize): unsupported: cubic with coefficient -0.5 (kiln's bicubic is PyTorch's: -0.75, outside included)" "Resize cubic coefficient"
has "$work/err" "$r: node 'slice_back' (Slice): unsupported: step -1 on axis 2 (kiln's slice steps forward)" "Slice backwards"
has "$work/err" "$r: node 'deconv_outpad' (ConvTranspose): unsupported: kiln's conv_transpose2d cannot take it: output_padding (2) must be smaller than the stride (2) or the dilation (1) along the height axis" "ConvTranspose output_padding"
has "$work/err" "$r: node 'deconv_autopad' (ConvTranspose): unsupported: auto_pad 'SAME_MIDDLE'" "ConvTranspose auto_pad"
has "$work/err" "$r: node 'inorm_scale' (InstanceNormalization): unsupported: its scale has 3 values for 4 channels in 4 groups" "InstanceNormalization scale"
has "$work/err" "$r: node 'sum_batch' (ReduceSum): unsupported: kiln's reduce_sum cannot take it: axis 0 is the batch dimension, which cannot be reduced or normalized (pin the batch with --input to import the model with a fixed batch)" "ReduceSum over the batch"
has "$work/err" "$r: node 'pad_crop_all' (Pad): unsupported: its negative pads remove all of axis 2" "Pad cropping everything"
has "$work/err" "$r: node 'gather_2d' (Gather): unsupported: its indices have rank 2 (kiln's slices take one index or a list of them)" "Gather with 2-D indices"
has "$work/err" "$r: node 'expand_batch_moves' (Expand): unsupported: the expanded value would move the batch dimension off axis 0 (pin the batch with --input NAME=1x...)" "Expand moving the batch"
[ "$(grep -c ": unsupported: " "$work/err")" -eq 10 ] && ok || fail "format 1.1 refusals: expected exactly 10 problem lines"
expect 3 "GroupNormalization groups" -- "$kiln" import "$fx/group_norm_groups.onnx" -o "$work/r.yaml"
has "$work/err" "$fx/group_norm_groups.onnx: node 'gn' (GroupNormalization): unsupported: num_groups 3 does not divide the 4 channels" "GroupNormalization num_groups"

# ---- external data
expect 0 "external data" -- "$kiln" import "$fx/external.onnx" -o "$work/e.yaml"
expect 3 "external data missing" -- "$kiln" import "$fx/external_missing.onnx" -o "$work/e.yaml"
contains "$work/err" "its external data file 'external_missing.bin' is missing" "missing external file"

# ---- malformed files: refused with one line, never a crash
for f in truncated garbage deep; do
  expect 3 "$f.onnx" -- "$kiln" import "$fx/$f.onnx" -o "$work/x.yaml"
  [ "$(wc -l <"$work/err")" -ge 1 ] && ok || fail "$f.onnx: no message"
done
contains "$work/err" "nested more than" "deep nesting message"
: >"$work/empty.onnx"
expect 3 "empty file" -- "$kiln" import "$work/empty.onnx" -o "$work/x.yaml"
has "$work/err" "$work/empty.onnx: unsupported: the file is empty" "empty file message"

# ---- the patterns and lowerings leave the layers a person would write
cases=$src/tests/fixtures/onnx_cases
expect 0 "gelu pattern" -- "$kiln" import "$cases/gelu_pattern/model.onnx" -o "$work/g.yaml"
contains "$work/g.yaml" "activation: gelu" "GELU written out is one gelu"
expect 0 "gelu tanh pattern" -- "$kiln" import "$cases/gelu_tanh_pattern/model.onnx" -o "$work/gt.yaml"
has "$work/gt.yaml" "  - {name: y, op: gelu, approximate: tanh}" "GELU's tanh form written out is one gelu"
expect 0 "layernorm pattern" -- "$kiln" import "$cases/layernorm_pattern/model.onnx" -o "$work/l.yaml"
contains "$work/l.yaml" "op: layernorm" "LayerNorm written out is one layernorm"
[ "$(sed -n '/^layers:/,$p' "$work/l.yaml" | grep -c '^  - {')" -eq 1 ] && ok || fail "layernorm pattern: more than one layer"
expect 0 "MatMul + Add" -- "$kiln" import "$cases/matmul_add_dense/model.onnx" -o "$work/m.yaml"
has "$work/m.yaml" "  - {name: y, op: dense, units: 5}" "MatMul with a constant and its bias Add are one dense"
expect 0 "1-D convolution" -- "$kiln" import "$cases/conv1d_bn1d_pool1d/model.onnx" -o "$work/c.yaml"
contains "$work/c.yaml" "op: conv2d, filters: 4, kernel: [1, 3], padding: [0, 1]" "Conv on [N,C,L] as conv2d over [N,C,1,L]"
expect 0 "Softmax before opset 13" -- "$kiln" import "$cases/softmax_opset11_axis1/model.onnx" -o "$work/sm.yaml"
contains "$work/sm.yaml" "op: reshape, shape: [2, 12]" "Softmax at opset 11 flattens to 2-D"

expect 0 "a constant output" -- "$kiln" import "$cases/constant_output/model.onnx" -o "$work/co.yaml"
has "$work/co.yaml" "outputs: [y, c]" "a constant output keeps its name"
has "$work/co.yaml" "  - {name: c, op: constant}" "a constant output is a constant layer"

# ---- files: outputs appear only when the import succeeded; inputs are never overwritten
echo "keep me" > "$work/kept.yaml"
expect 3 "a refused import" -- "$kiln" import "$fx/refusals.onnx" -o "$work/kept.yaml"
has "$work/kept.yaml" "keep me" "a refused import leaves an existing -o untouched"
[ ! -e "$work/kept.safetensors" ] && ok || fail "a refused import wrote kept.safetensors"
[ -z "$(ls -A "$work" | grep kiln- )" ] && ok || fail "temporary files left behind: $(ls -A "$work")"
cp "$fx/classifier.onnx" "$work/self.onnx"
expect 2 "-o is the ONNX model" -- "$kiln" import "$work/self.onnx" -o "$work/self.onnx"
cmp -s "$fx/classifier.onnx" "$work/self.onnx" && ok || fail "the ONNX model was overwritten by -o"
expect 2 "--weights is the ONNX model" -- "$kiln" import "$work/self.onnx" -o "$work/w.yaml" --weights "$work/self.onnx"
cmp -s "$fx/classifier.onnx" "$work/self.onnx" && ok || fail "the ONNX model was overwritten by --weights"
cp "$fx/classifier.onnx" "$work/odd.safetensors"
expect 1 "a default weights path that is the ONNX model" -- "$kiln" import "$work/odd.safetensors" -o "$work/odd.yaml"
cmp -s "$fx/classifier.onnx" "$work/odd.safetensors" && ok || fail "the ONNX model was overwritten by the default weights path"
[ ! -e "$work/odd.yaml" ] && ok || fail "odd.yaml published although the import failed"
expect 2 "--weights is -o" -- "$kiln" import "$fx/classifier.onnx" -o "$work/same.yaml" --weights "$work/same.yaml"
mkfifo "$work/fifo.onnx"
expect 1 "a FIFO as the model" -- timeout 10 "$kiln" import "$work/fifo.onnx" -o "$work/f.yaml"
contains "$work/err" "a model must be a regular file" "the FIFO is named as such, not read"
expect 1 "a directory as the model" -- "$kiln" import "$work" -o "$work/f.yaml"

echo "import_cli: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
