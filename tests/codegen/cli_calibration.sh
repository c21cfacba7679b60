#!/usr/bin/env bash
# tests/codegen/cli_calibration.sh: --calibration, the ranges it observes,
# and kiln compile --precision auto (docs/precision.md, "Calibration" and
# "auto"):
#   - the data: a safetensors file, a folder of NAME.npy, `random`; every
#     rule of the format with its exact message (not F32, an unknown name, a
#     missing input, a shape, no samples, counts that differ), all problems
#     of one file in one run, exit status 1;
#   - the options: int8 needs calibration data, --calibration-method,
#     --tolerance and --metric only with auto, auto needs both (status 2);
#   - kiln dump --calibration: the ranges (min, max, the percentile of |x|,
#     the range each method keeps) on data whose answer is known;
#   - auto: a loose tolerance lowers layers (bf16, or f16 where bf16 is over),
#     tolerance 0 lowers none and gives the f32 object, a layer with its own
#     key is never changed, the same command gives the same object.
#
# usage: cli_calibration.sh KILN SOURCE_DIR
set -uo pipefail
kiln=$1 src=$2
work=$(mktemp -d "${TMPDIR:-/tmp}/kiln-cli-calib-XXXXXX")
trap 'rm -rf "$work"' EXIT
passed=0; failed=0
ok()   { passed=$((passed + 1)); }
fail() { failed=$((failed + 1)); echo "FAIL: $*"; }
expect_rc() { # rc, command...
  local want=$1; shift
  "$@" >"$work/out" 2>"$work/err"
  local rc=$?
  if [ "$rc" -eq "$want" ]; then ok; else fail "'$*' exited $rc, expected $want: $(head -3 "$work/err")"; fi
}
# fixed strings: the messages are golden
has() { if grep -qF -- "$2" "$1"; then ok; else fail "$3: '$2' not in $(basename "$1")"; sed 's/^/  | /' "$1" | head -8; fi; }
hasre() { if grep -qE -- "$2" "$1"; then ok; else fail "$3: /$2/ not in $(basename "$1")"; sed 's/^/  | /' "$1" | head -8; fi; }
hasntre() { if grep -qE -- "$2" "$1"; then fail "$3: /$2/ in $(basename "$1")"; grep -E -- "$2" "$1" | head -3 | sed 's/^/  | /'; else ok; fi; }
hasnt() { if grep -qF -- "$2" "$1"; then fail "$3: '$2' in $(basename "$1")"; grep -F -- "$2" "$1" | head -3 | sed 's/^/  | /'; else ok; fi; }
if ! python3 -c 'import struct, json' 2>/dev/null; then
  echo "cli_calibration: python3 is needed to write the test data; skipped"
  exit 0
fi

# mk.py st FILE NAME:DTYPE:D0xD1..:KIND ... | npy FILE DESCR D0xD1.. KIND
# KIND: ramp (i % 17 - 8: min -8, max 8), unit (uniform-ish in [-1, 1) from
# a fixed sequence), outlier (unit, one element 100), nan / inf (unit, the
# last element but one NaN / +inf)
cat >"$work/mk.py" <<'EOF'
import json, struct, sys
def values(n, kind):
    v = [((i * 7919) % 2000) / 1000.0 - 1.0 for i in range(n)] if kind != "ramp" else [float(i % 17 - 8) for i in range(n)]
    if kind == "outlier" and n:
        v[n // 2] = 100.0
    if kind in ("nan", "inf") and n:
        v[n - 2] = float(kind)
    return v
def dims(t):
    return [int(d) for d in t.split("x")] if t else []
def count(ds):
    n = 1
    for d in ds:
        n *= d
    return n
def pack(dtype, v):
    return struct.pack("<%d%s" % (len(v), "f" if dtype in ("F32", "<f4") else "d"), *v)
if sys.argv[1] == "st":
    header, data = {}, b""
    for spec in sys.argv[3:]:
        name, dtype, shape, kind = spec.split(":")
        ds = dims(shape)
        b = pack(dtype, values(count(ds), kind))
        header[name] = {"dtype": dtype, "shape": ds, "data_offsets": [len(data), len(data) + len(b)]}
        data += b
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    open(sys.argv[2], "wb").write(struct.pack("<Q", len(h)) + h + data)
else:
    path, descr, shape, kind = sys.argv[2:6]
    ds = dims(shape)
    h = "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }" % (descr, "".join("%d, " % d for d in ds))
    h += " " * (-(len(h) + 11) % 64) + "\n"
    open(path, "wb").write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h.encode() + pack(descr, values(count(ds), kind)))
EOF
mk() { python3 "$work/mk.py" "$@"; }

cat >"$work/tiny.yaml" <<'YAML'
kiln: 1
name: tiny
init: {random: 2}
inputs:
  - {name: x, shape: [batch, 16]}
layers:
  - {name: fc1, op: dense, units: 32, activation: relu}
  - {name: fc2, op: dense, units: 24, activation: relu}
  - {name: head, op: dense, units: 8}
YAML
cat >"$work/two.yaml" <<'YAML'
kiln: 1
name: two
inputs:
  - {name: x, shape: [batch, 4]}
  - {name: y, shape: [batch, 4]}
  - {name: z, shape: [3, 4]}
layers:
  - {name: s, op: add, inputs: [x, y]}
  - {name: t, op: relu, inputs: [z]}
outputs: [s, t]
YAML
tiny=$work/tiny.yaml two=$work/two.yaml

# ---- the data: what is accepted -----------------------------------------------------
mk st "$work/good.safetensors" x:F32:4x16:ramp
expect_rc 0 "$kiln" dump "$tiny" --calibration "$work/good.safetensors"
has "$work/out" "# calibration: 4 samples from $work/good.safetensors; 6 values observed by the reference interpreter" "dump: the summary"
hasre "$work/out" '^# x +-8 +8 +8  \[-8, 8\]$' "dump: the input's range is the data's"
hasre "$work/out" '^# head ' "dump: a row per value"
has "$work/out" "# int8 layers take their input's scale and zero point from the range kept (in_scale, in_zero)" "dump: says what reads the ranges"
# the text with its comment block reads back
cp "$work/out" "$work/tiny.kir"
expect_rc 0 "$kiln" dump "$work/tiny.kir"
# a folder of NAME.npy; an unbatched input takes [samples] + its whole shape
mkdir "$work/npy"
mk npy "$work/npy/x.npy" '<f4' 3x4 unit; mk npy "$work/npy/y.npy" '<f4' 3x4 unit; mk npy "$work/npy/z.npy" '<f4' 3x3x4 unit
expect_rc 0 "$kiln" dump "$two" --calibration "$work/npy"
has "$work/out" "# calibration: 3 samples from $work/npy" "npy folder: read"
hasre "$work/out" '^# t +0 ' "npy folder: the unbatched value observed"
expect_rc 0 "$kiln" dump "$tiny" --calibration random
has "$work/out" "# calibration: 32 random samples (uniform in [-1, 1), seed 1000003)" "random: how many, which distribution"

# ---- the data: every refusal, located, status 1 ---------------------------------------
mk st "$work/f64.safetensors" x:F64:4x16:ramp
expect_rc 1 "$kiln" dump "$tiny" --calibration "$work/f64.safetensors"
has "$work/err" "$work/f64.safetensors: error: tensor 'x' is F64: calibration data must be F32" "not F32"
# non-finite data would make every range and error meaningless (a NaN error
# is within any budget): refused with the first bad element
mk st "$work/nan.safetensors" x:F32:4x16:nan
expect_rc 1 "$kiln" compile "$tiny" -o "$work/n.o" --precision auto --tolerance 0.01 --calibration "$work/nan.safetensors"
has "$work/err" "$work/nan.safetensors: error: tensor 'x' holds NaN at sample 3, element 14: calibration data must be finite" "NaN in the data"
if [ -e "$work/n.o" ]; then fail "NaN calibration data: an object was written"; else ok; fi
mkdir "$work/infnpy"
mk npy "$work/infnpy/x.npy" '<f4' 2x16 inf
expect_rc 1 "$kiln" dump "$tiny" --calibration "$work/infnpy"
has "$work/err" "$work/infnpy/x.npy: error: the array holds +inf at sample 1, element 14: calibration data must be finite" "inf in a .npy"
mk st "$work/unknown.safetensors" q:F32:4x16:ramp
expect_rc 1 "$kiln" compile "$tiny" -o "$work/u.o" --calibration "$work/unknown.safetensors"
has "$work/err" "$work/unknown.safetensors: error: tensor 'q' is not an input of model 'tiny' (its inputs: x)" "unknown name"
has "$work/err" "$work/unknown.safetensors: error: no tensor for input 'x': expected F32 [samples,16]" "missing input, in the same run"
if [ -e "$work/u.o" ]; then fail "an object was written after bad calibration data"; else ok; fi
mk st "$work/shape.safetensors" x:F32:4x15:ramp
expect_rc 1 "$kiln" check "$tiny" --calibration "$work/shape.safetensors"
has "$work/err" "$work/shape.safetensors: error: tensor 'x' has shape [4,15]: input 'x' (f32[batch,16]) needs [samples,16] (the first axis counts the samples)" "shape"
mk st "$work/zero.safetensors" x:F32:0x16:ramp
expect_rc 1 "$kiln" run "$tiny" --calibration "$work/zero.safetensors" --input x=/dev/null --output "$work/o"
has "$work/err" "$work/zero.safetensors: error: tensor 'x' has no samples (its first axis is 0)" "zero samples"
mk st "$work/counts.safetensors" x:F32:4x4:unit y:F32:3x4:unit z:F32:4x3x4:unit
expect_rc 1 "$kiln" bench "$two" --calibration "$work/counts.safetensors"
has "$work/err" "$work/counts.safetensors: error: input 'y' has 3 samples, 'x' has 4: every input needs the same number" "sample counts differ"
mk st "$work/unb.safetensors" x:F32:2x4:unit y:F32:2x4:unit z:F32:2x4:unit
expect_rc 1 "$kiln" dump "$two" --calibration "$work/unb.safetensors"
has "$work/err" "tensor 'z' has shape [2,4]: input 'z' (f32[3,4]) needs [samples,3,4]" "an unbatched input needs its whole shape"
mkdir "$work/badnpy"
mk npy "$work/badnpy/x.npy" '<f8' 2x16 unit; mk npy "$work/badnpy/w.npy" '<f4' 2x16 unit
expect_rc 1 "$kiln" dump "$tiny" --calibration "$work/badnpy"
has "$work/err" "$work/badnpy/w.npy: error: 'w' is not an input of model 'tiny' (its inputs: x)" "npy: unknown name"
has "$work/err" "$work/badnpy/x.npy: error: the array is float64 ('<f8'): calibration data must be float32 ('<f4')" "npy: not float32"
mkdir "$work/empty"
expect_rc 1 "$kiln" dump "$tiny" --calibration "$work/empty"
has "$work/err" "$work/empty: error: no x.npy for input 'x': expected F32 [samples,16]" "npy: missing input"
expect_rc 1 "$kiln" dump "$tiny" --calibration "$work/none.safetensors"
has "$work/err" "kiln dump: error: cannot read the calibration data '$work/none.safetensors': No such file or directory" "no such file"

# ---- ranges: minmax and percentile ----------------------------------------------------
# 1000 samples x 16 in [-1, 1) with one 100: the 99.99% percentile of |x|
# (15999 of 16000 elements) leaves the outlier out
mk st "$work/outlier.safetensors" x:F32:1000x16:outlier
expect_rc 0 "$kiln" dump "$tiny" --calibration "$work/outlier.safetensors" --calibration-method minmax
hasre "$work/out" '^# x +-1 +100 +1\.0312  \[-1, 100\]$' "minmax keeps the outlier"
expect_rc 0 "$kiln" dump "$tiny" --calibration "$work/outlier.safetensors"
hasre "$work/out" '^# x +-1 +100 +1\.0312  \[-1, 1\.0312\]$' "percentile cuts it (to the histogram bin's top)"

# ---- the options ------------------------------------------------------------------
for cmd in compile dump check; do
  out=(); [ $cmd = compile ] && out=(-o "$work/i.o")
  expect_rc 2 "$kiln" $cmd "$tiny" "${out[@]}" --precision int8
  has "$work/err" "kiln $cmd: error: int8 needs calibration data: --calibration FILE, or --calibration random" "$cmd: int8 without data"
done
expect_rc 2 "$kiln" dump "$tiny" --calibration random --calibration-method median
has "$work/err" "kiln dump: error: --calibration-method must be 'percentile' or 'minmax', got 'median'" "bad method"
expect_rc 2 "$kiln" dump "$tiny" --calibration-method minmax
has "$work/err" "kiln dump: error: --calibration-method needs --calibration" "method without data"
expect_rc 2 "$kiln" dump "$tiny" --calibration random --format dot
expect_rc 2 "$kiln" compile "$tiny" -o "$work/a.o" --tolerance 0.1
has "$work/err" "kiln compile: error: --tolerance is for --precision auto (no layer of the model asks for it)" "--tolerance without auto"
expect_rc 2 "$kiln" compile "$tiny" -o "$work/a.o" --precision bf16 --metric top1
has "$work/err" "kiln compile: error: --metric is for --precision auto" "--metric without auto"
expect_rc 2 "$kiln" compile "$tiny" -o "$work/a.o" --precision auto --calibration random
has "$work/err" "kiln compile: error: --precision auto needs --calibration FILE (or --calibration random) and --tolerance X" "auto without --tolerance"
expect_rc 2 "$kiln" compile "$tiny" -o "$work/a.o" --precision auto --tolerance 0.1
expect_rc 2 "$kiln" compile "$tiny" -o "$work/a.o" --precision auto --calibration random --tolerance -1
expect_rc 2 "$kiln" compile "$tiny" -o "$work/a.o" --precision auto --calibration random --tolerance 0.1 --metric l2
has "$work/err" "kiln compile: error: --metric must be 'maxrel' or 'top1', got 'l2'" "bad metric"
# every precision accepts the data; only int8 and auto use it
expect_rc 0 "$kiln" compile "$tiny" -o "$work/f.o" --calibration random
has "$work/out" "calibration 32 random samples (uniform in [-1, 1), seed 1000003): checked against the inputs; not used (no layer asks for int8 or auto)" "f32 ignores the data"
expect_rc 0 "$kiln" compile "$tiny" -o "$work/i.o" --precision int8 --calibration "$work/good.safetensors"
has "$work/out" "calibration 4 samples from $work/good.safetensors: the input ranges (percentile) of 3 int8 layers" "int8: the ranges used"
has "$work/out" "precision int8 (s8 weights, u8 inputs, int32 sums): 3 layers; every other node f32" "int8: the report's precision line"
hasnt "$work/err" "warning" "int8: dense layers, no warning"
expect_rc 0 "$kiln" dump "$tiny" --after precision --precision auto
has "$work/err" "precision auto is chosen by 'kiln compile --calibration DATA --tolerance X'; here 3 layers computed in f32" "auto outside compile"

# ---- --precision auto -----------------------------------------------------------------
# tiny's errors on the random data (sapphirerapids; bf16 ~1e-3 to 2e-3, f16
# ~1e-4): 0.05 takes bf16 everywhere, 0 takes nothing
expect_rc 0 "$kiln" compile "$tiny" -o "$work/loose.o" --precision auto --calibration random --tolerance 0.05 \
  --dump-ir=after:precision
has "$work/out" "auto      maxrel <= 0.05 on 32 random samples (uniform in [-1, 1), seed 1000003); int8 not tried (auto chooses between bf16 and f16)" "auto: the table's header"
has "$work/out" "3 of 3 lowered" "auto 0.05: every layer lowered"
hasre "$work/out" '^ +fc2 +bf16 +bf16 [0-9.e+-]+ ' "auto 0.05: fc2 row (the most work first)"
has "$work/err" 'layer "fc1" precision bf16' "auto: the choice is in the IR"
has "$work/out" "precision bf16 (weights and products): 3 layers" "auto: the report's precision line"
expect_rc 0 "$kiln" compile "$tiny" -o "$work/loose2.o" --precision auto --calibration random --tolerance 0.05
if cmp -s "$work/loose.o" "$work/loose2.o"; then ok; else fail "auto: the same command gave another object"; fi
expect_rc 0 "$kiln" compile "$tiny" -o "$work/zero.o" --precision auto --calibration random --tolerance 0
has "$work/out" "0 of 3 lowered, error 0.0e+00" "auto 0: nothing lowered"
hasre "$work/out" 'fc1 +f32 +bf16 [0-9.e+-]+ \(over\), f16 [0-9.e+-]+ \(over\)' "auto 0: both tried, both over"
hasnt "$work/out" "precision bf16" "auto 0: no reduced-precision layer"
expect_rc 0 "$kiln" compile "$tiny" -o "$work/f32.o"
if cmp -s "$work/zero.o" "$work/f32.o"; then ok; else fail "auto at tolerance 0 is not the f32 object"; fi
# a layer's own key is never changed; the model's default auto asks for it
sed -e 's/^name: tiny/name: tiny\nprecision: auto/' -e 's/units: 24, activation: relu}/units: 24, activation: relu, precision: f32}/' \
  "$tiny" >"$work/own.yaml"
expect_rc 0 "$kiln" compile "$work/own.yaml" -o "$work/own.o" --calibration random --tolerance 3e-4 --dump-ir=after:precision
has "$work/out" "2 layers tried, the most work first (the schedule's estimate); 1 keeps its own precision: key" "own key: not tried"
hasntre "$work/out" '^ +fc2 +(f32|bf16|f16) ' "own key: no row for fc2"
hasre "$work/out" 'fc1 +f16 +bf16 [0-9.e+-]+ \(over\), f16 ' "between bf16 and f16: f16 chosen"
hasre "$work/err" 'dense\(%x, %fc1.weight, %fc1.bias\).* layer "fc1" precision f16' "f16 in the IR"
hasre "$work/err" 'dense\(.*layer "fc2" precision f32' "own key: fc2 stays f32"
expect_rc 0 "$kiln" compile "$tiny" -o "$work/top1.o" --precision auto --calibration random --tolerance 0 --metric top1
has "$work/out" "auto      top1 <= 0 on" "top1: the metric named"

# ---- int8 ------------------------------------------------------------------------------
# the parameters are in the text, and read back: the dump of the dump is the dump
expect_rc 0 "$kiln" dump "$tiny" --precision int8 --calibration random --after precision
hasre "$work/out" 'dense\(%x, %fc1\.weight, %fc1\.bias\) \{units=32, in_scale=[0-9.e-]+, in_zero=128\} .*precision int8' "int8: the input's quantization in the dump"
sed '/^#/d' "$work/out" >"$work/q.kir"
expect_rc 0 "$kiln" dump "$work/q.kir"
if cmp -s "$work/q.kir" "$work/out"; then ok; else fail "int8: the dump does not read back identically"; diff "$work/q.kir" "$work/out" | head -5; fi
# an int8 layer without its parameters: a clean error, from the driver and from the code generator
sed -E 's/, in_scale=[0-9.e-]+, in_zero=[0-9]+//' "$work/q.kir" >"$work/noq.kir"
expect_rc 1 "$kiln" compile "$work/noq.kir" -o "$work/noq.o" --passes none
has "$work/err" "kiln compile: error: layer 'fc1' computes int8 but has no valid in_scale and in_zero: give --calibration FILE (or --calibration random)" "int8 without parameters"
sed -E 's/in_zero=[0-9]+/in_zero=300/' "$work/q.kir" >"$work/badq.kir"
expect_rc 1 "$kiln" compile "$work/badq.kir" -o "$work/badq.o" --passes none
has "$work/err" "layer 'fc1' computes int8 but has no valid in_scale and in_zero" "int8 with a zero point out of range"
expect_rc 0 "$kiln" compile "$work/q.kir" -o "$work/q.o" --passes none
# the same inputs give the same object, bit for bit; int8 weights take about a quarter of f32's
expect_rc 0 "$kiln" compile "$tiny" -o "$work/q1.o" --precision int8 --calibration random --header "$work/q1.h"
expect_rc 0 "$kiln" compile "$tiny" -o "$work/q2.o" --precision int8 --calibration random
if cmp -s "$work/q1.o" "$work/q2.o"; then ok; else fail "int8: two compiles differ"; fi
expect_rc 0 "$kiln" compile "$tiny" -o "$work/f1.o" --header "$work/f1.h"
wq=$(sed -n 's/.*_WEIGHT_BYTES ((size_t)\([0-9]*\)u).*/\1/p' "$work/q1.h")
wf=$(sed -n 's/.*_WEIGHT_BYTES ((size_t)\([0-9]*\)u).*/\1/p' "$work/f1.h")
if [ -n "$wq" ] && [ -n "$wf" ] && [ $((wq * 2)) -lt "$wf" ]; then ok; else fail "int8 weights $wq bytes, f32 $wf: not under half"; fi
# the instruction family per target: VNNI, vpmaddwd (AVX2, AVX-512 without VNNI), plain IR
fams=""
for cpu_ins in znver4:vpdpbusd sapphirerapids:vpdpbusd alderlake:vpdpbusd znver3:vpmaddwd skylake-avx512:vpmaddwd x86-64-v2:none; do
  cpu=${cpu_ins%%:*} ins=${cpu_ins#*:}
  expect_rc 0 "$kiln" compile "$tiny" -o "$work/q.s" --emit asm --cpu "$cpu" --precision int8 --calibration random
  has "$work/q.s" "int8_dense_bias_relu_" "int8 on $cpu: the kernel's name"
  for other in vpdpbusd vpmaddwd; do
    # AVX-VNNI (alderlake) prints as {vex} vpdpbusd
    if [ "$other" = "$ins" ]; then hasre "$work/q.s" "^[[:space:]]+(\{vex\}[[:space:]]+)?$other" "int8 on $cpu: $other"
    else hasntre "$work/q.s" "^[[:space:]]+(\{vex\}[[:space:]]+)?$other" "int8 on $cpu: no $other"; fi
  done
  fams="$fams $cpu=$ins"
done
echo "cli_calibration: int8 families checked in the assembly:$fams"

echo "cli_calibration: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
