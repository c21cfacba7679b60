#!/usr/bin/python3
"""Hand-made ONNX models for the tests of `kiln import` (committed; the tests
need no Python):

  tests/fixtures/onnx_cases/NAME/{model.onnx, in0.npy, ..., out0.npy, ...}
      one lowering each (Gemm's transposes and scales, Softmax before opset
      13, 1-D convolution and pooling, the GELU and LayerNorm patterns, the
      legacy broadcast, shape arithmetic over the batch, ...), with the
      expected outputs computed here in float64 from the ONNX definitions
      (numpy / torch), not by kiln. tests/onnx/onnx_check runs them.
  tests/fixtures/onnx/NAME.onnx
      models for the command-line contract (pins, the batch, names, refusals,
      external data, malformed files), checked by tests/onnx/import_cli.sh.

Needs Debian's python3-onnx and python3-torch.
"""

import os
import shutil

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import TensorProto, helper, numpy_helper

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
CASES = os.path.join(ROOT, "tests", "fixtures", "onnx_cases")
CONTRACT = os.path.join(ROOT, "tests", "fixtures", "onnx")
RNG = np.random.default_rng(20240611)

F32 = TensorProto.FLOAT


def rand(*shape, lo=-1.0, hi=1.0):
    return RNG.uniform(lo, hi, shape).astype(np.float32)


def init(name, a):
    return numpy_helper.from_array(np.asarray(a), name)


def vi(name, shape, t=F32):
    return helper.make_tensor_value_info(name, t, shape)


def model(nodes, inputs, outputs, inits=(), opset=13, name="g"):
    g = helper.make_graph(nodes, name, inputs, outputs, list(inits))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], producer_name="gen_onnx_fixtures")
    m.ir_version = 7 if opset >= 13 else 3
    return m


def case(name, m, ins, outs):
    d = os.path.join(CASES, name)
    os.makedirs(d, exist_ok=True)
    onnx.save(m, os.path.join(d, "model.onnx"))
    for k, a in enumerate(ins):
        np.save(os.path.join(d, "in%d.npy" % k), np.asarray(a, np.float32))
    for k, a in enumerate(outs):
        np.save(os.path.join(d, "out%d.npy" % k), np.asarray(a, np.float64).astype(np.float32))


def t64(a):
    return torch.from_numpy(np.asarray(a, np.float64))


# --------------------------------------------------------------------------
# numeric cases


def cases():
    # Gemm: transB, alpha, beta, a row bias -> one dense layer
    a, b, c = rand(3, 4), rand(5, 4), rand(5)
    m = model([helper.make_node("Gemm", ["a", "B", "C"], ["y"], transB=1, alpha=0.5, beta=2.0)],
              [vi("a", [3, 4])], [vi("y", [3, 5])], [init("B", b), init("C", c)])
    case("gemm_transb_alpha_beta", m, [a], [0.5 * (a.astype(np.float64) @ b.T) + 2.0 * c])

    # Gemm: transA, a matrix C -> transpose, dense, add
    a, b, c = rand(4, 3), rand(4, 5), rand(3, 5)
    m = model([helper.make_node("Gemm", ["a", "B", "C"], ["y"], transA=1)],
              [vi("a", [4, 3])], [vi("y", [3, 5])], [init("B", b), init("C", c)])
    case("gemm_transa_matrix_c", m, [a], [a.astype(np.float64).T @ b + c])

    # MatMul with a constant, then Add of a vector: dense with bias, batched
    x, w, bias = rand(2, 3, 4), rand(4, 5), rand(5)
    m = model([helper.make_node("MatMul", ["x", "W"], ["h"]), helper.make_node("Add", ["h", "b"], ["y"])],
              [vi("x", ["N", 3, 4])], [vi("y", ["N", 3, 5])], [init("W", w), init("b", bias)])
    case("matmul_add_dense", m, [x], [x.astype(np.float64) @ w + bias])

    # Softmax at opset 11: axis 1 means every axis from 1 on
    x = rand(2, 3, 4, lo=-3, hi=3)
    m = model([helper.make_node("Softmax", ["x"], ["y"], axis=1)], [vi("x", [2, 3, 4])], [vi("y", [2, 3, 4])],
              opset=11)
    case("softmax_opset11_axis1", m, [x], [F.softmax(t64(x).reshape(2, 12), 1).reshape(2, 3, 4).numpy()])

    # LogSoftmax at opset 13: axis 1 alone
    m = model([helper.make_node("LogSoftmax", ["x"], ["y"], axis=1)], [vi("x", [2, 3, 4])], [vi("y", [2, 3, 4])])
    case("logsoftmax_opset13_axis1", m, [x], [F.log_softmax(t64(x), 1).numpy()])

    # Flatten at axis 2: always 2-D in ONNX
    x = rand(2, 3, 4, 5)
    m = model([helper.make_node("Flatten", ["x"], ["y"], axis=2)], [vi("x", [2, 3, 4, 5])], [vi("y", [6, 20])])
    case("flatten_axis2", m, [x], [x.reshape(6, 20)])

    # Clip with its bounds as constant inputs (opset 13) and as attributes (opset 6)
    x = rand(3, 4, lo=-8, hi=8)
    m = model([helper.make_node("Clip", ["x", "lo", "hi"], ["r6"]), helper.make_node("Clip", ["x", "lo2", "hi2"], ["c"])],
              [vi("x", [3, 4])], [vi("r6", [3, 4]), vi("c", [3, 4])],
              [init("lo", np.float32(0)), init("hi", np.float32(6)), init("lo2", np.float32(-1)),
               init("hi2", np.float32(0.5))])
    case("clip_inputs", m, [x], [np.clip(x, 0, 6), np.clip(x, -1, 0.5)])
    m = model([helper.make_node("Clip", ["x"], ["y"], min=-2.0, max=3.0)], [vi("x", [3, 4])], [vi("y", [3, 4])],
              opset=6)
    case("clip_attributes_opset6", m, [x], [np.clip(x, -2, 3)])

    # HardSigmoid with ONNX's defaults (alpha 0.2): mul, add, clip; PyTorch's (1/6): hardsigmoid
    x = rand(3, 4, lo=-5, hi=5)
    m = model([helper.make_node("HardSigmoid", ["x"], ["a"]),
               helper.make_node("HardSigmoid", ["x"], ["b"], alpha=1.0 / 6, beta=0.5)],
              [vi("x", [3, 4])], [vi("a", [3, 4]), vi("b", [3, 4])])
    x64 = x.astype(np.float64)
    case("hardsigmoid_alpha_beta", m, [x],
         [np.clip(np.float32(0.2) * x64 + 0.5, 0, 1), np.clip(x64 / 6 + 0.5, 0, 1)])

    # Pad with pads and value as inputs (opset 11), on the last two axes
    x = rand(1, 2, 3, 4)
    pads = np.array([0, 0, 1, 2, 0, 0, 3, 1], np.int64)
    m = model([helper.make_node("Pad", ["x", "pads", "v"], ["y"])], [vi("x", [1, 2, 3, 4])], [vi("y", [1, 2, 7, 7])],
              [init("pads", pads), init("v", np.float32(0.5))])
    case("pad_inputs", m, [x], [np.pad(x, [(0, 0), (0, 0), (1, 3), (2, 1)], constant_values=0.5)])

    # Squeeze and Unsqueeze (axes as inputs at opset 13): reshapes
    x = rand(2, 1, 3)
    m = model([helper.make_node("Squeeze", ["x", "ax1"], ["s"]), helper.make_node("Unsqueeze", ["s", "ax2"], ["y"])],
              [vi("x", [2, 1, 3])], [vi("y", [2, 3, 1])],
              [init("ax1", np.array([1], np.int64)), init("ax2", np.array([-1], np.int64))])
    case("squeeze_unsqueeze", m, [x], [x.reshape(2, 3, 1)])

    # 1-D convolution, batch norm and pooling on [N, C, L]: the 2-D layers over [N, C, 1, L]
    x, w, b = rand(2, 3, 10), rand(4, 3, 3), rand(4)
    s, bb, mean, var = rand(4, lo=0.5, hi=1.5), rand(4), rand(4, lo=-0.1, hi=0.1), rand(4, lo=0.5, hi=1.5)
    nodes = [helper.make_node("Conv", ["x", "W", "B"], ["c"], pads=[1, 1], strides=[1]),
             helper.make_node("BatchNormalization", ["c", "s", "bb", "m", "v"], ["n"], epsilon=1e-3),
             helper.make_node("MaxPool", ["n"], ["p"], kernel_shape=[2], strides=[2]),
             helper.make_node("AveragePool", ["p"], ["y"], kernel_shape=[3], strides=[1], pads=[1, 1],
                              count_include_pad=0)]
    m = model(nodes, [vi("x", ["N", 3, 10])], [vi("y", ["N", 4, 5])],
              [init("W", w), init("B", b), init("s", s), init("bb", bb), init("m", mean), init("v", var)])
    t = F.conv1d(t64(x), t64(w), t64(b), padding=1)
    t = F.batch_norm(t, t64(mean), t64(var), t64(s), t64(bb), eps=np.float32(1e-3).item())
    t = F.max_pool1d(t, 2)
    t = F.avg_pool1d(t, 3, 1, 1, count_include_pad=False)
    case("conv1d_bn1d_pool1d", m, [x], [t.numpy()])

    # GELU written out in primitive ops (PyTorch's export before opset 20): one gelu layer
    x, w = rand(2, 6, lo=-3, hi=3), rand(6, 6)
    nodes = [helper.make_node("MatMul", ["x", "W"], ["h"]),
             helper.make_node("Div", ["h", "sqrt2"], ["d"]), helper.make_node("Erf", ["d"], ["e"]),
             helper.make_node("Add", ["e", "one"], ["a"]), helper.make_node("Mul", ["h", "a"], ["m"]),
             helper.make_node("Mul", ["m", "half"], ["y"])]
    m = model(nodes, [vi("x", ["N", 6])], [vi("y", ["N", 6])],
              [init("W", w), init("sqrt2", np.float32(1.4142135381698608)), init("one", np.float32(1.0)),
               init("half", np.float32(0.5))])
    case("gelu_pattern", m, [x], [F.gelu(t64(x) @ t64(w)).numpy()])

    # LayerNorm written out (PyTorch's export before opset 17): one layernorm layer
    x, g, be = rand(2, 3, 8, lo=-2, hi=2), rand(8, lo=0.5, hi=1.5), rand(8)
    nodes = [helper.make_node("ReduceMean", ["x"], ["mu"], axes=[-1]), helper.make_node("Sub", ["x", "mu"], ["d"]),
             helper.make_node("Pow", ["d", "two"], ["sq"]), helper.make_node("ReduceMean", ["sq"], ["var"], axes=[-1]),
             helper.make_node("Add", ["var", "eps"], ["ve"]), helper.make_node("Sqrt", ["ve"], ["sd"]),
             helper.make_node("Div", ["d", "sd"], ["nrm"]), helper.make_node("Mul", ["nrm", "g"], ["sc"]),
             helper.make_node("Add", ["sc", "be"], ["y"])]
    m = model(nodes, [vi("x", ["N", 3, 8])], [vi("y", ["N", 3, 8])],
              [init("two", np.float32(2)), init("eps", np.float32(1e-5)), init("g", g), init("be", be)])
    case("layernorm_pattern", m, [x], [F.layer_norm(t64(x), [8], t64(g), t64(be), np.float32(1e-5).item()).numpy()])

    # the broadcast of opset 6: B lined up with A from `axis` on
    x, bvec = rand(2, 3, 4, 5), rand(3, 4)
    m = model([helper.make_node("Add", ["x", "B"], ["y"], broadcast=1, axis=1)], [vi("x", [2, 3, 4, 5])],
              [vi("y", [2, 3, 4, 5])], [init("B", bvec)], opset=6)
    case("legacy_broadcast_opset6", m, [x], [x + bvec.reshape(1, 3, 4, 1)])

    # shape arithmetic over the batch: Shape, Gather, Unsqueeze, Concat, Reshape ([n, -1])
    x, w = rand(2, 3, 4), rand(12, 5)
    nodes = [helper.make_node("Shape", ["x"], ["s"]), helper.make_node("Gather", ["s", "zero"], ["n"], axis=0),
             helper.make_node("Unsqueeze", ["n", "ax0"], ["n1"]),
             helper.make_node("Concat", ["n1", "minus1"], ["shape"], axis=0),
             helper.make_node("Reshape", ["x", "shape"], ["f"]), helper.make_node("MatMul", ["f", "W"], ["y"])]
    m = model(nodes, [vi("x", ["N", 3, 4])], [vi("y", ["N", 5])],
              [init("zero", np.array(0, np.int64)), init("ax0", np.array([0], np.int64)),
               init("minus1", np.array([-1], np.int64)), init("W", w)])
    case("shape_arithmetic_batch", m, [x], [x.reshape(2, 12).astype(np.float64) @ w])

    # Constant nodes, Range, ConstantOfShape and Cast folded into constants
    x = rand(3, 4)
    nodes = [helper.make_node("Constant", [], ["start"], value=numpy_helper.from_array(np.array(0, np.int64))),
             helper.make_node("Constant", [], ["limit"], value_int=4),
             helper.make_node("Constant", [], ["delta"], value=numpy_helper.from_array(np.array(1, np.int64))),
             helper.make_node("Range", ["start", "limit", "delta"], ["r"]),
             helper.make_node("Cast", ["r"], ["rf"], to=F32),
             helper.make_node("Constant", [], ["shp"], value_ints=[3, 1]),
             helper.make_node("ConstantOfShape", ["shp"], ["ones"],
                              value=numpy_helper.from_array(np.array([2.5], np.float32))),
             helper.make_node("Add", ["x", "rf"], ["t"]), helper.make_node("Mul", ["t", "ones"], ["y"])]
    m = model(nodes, [vi("x", [3, 4])], [vi("y", [3, 4])])
    case("constants_folded", m, [x], [(x.astype(np.float64) + np.arange(4)) * 2.5])

    # PRelu with a per-channel slope: relu(x) + slope * min(x, 0)
    x, sl = rand(2, 3, 4, 4), rand(3, 1, 1, lo=0, hi=0.5)
    m = model([helper.make_node("PRelu", ["x", "slope"], ["y"])], [vi("x", ["N", 3, 4, 4])], [vi("y", ["N", 3, 4, 4])],
              [init("slope", sl)])
    case("prelu_channels", m, [x], [np.where(x > 0, x, sl * x.astype(np.float64))])

    # DepthToSpace (DCR) and Tile
    x = rand(1, 8, 2, 3)
    y = x.reshape(1, 2, 2, 2, 2, 3).transpose(0, 3, 4, 1, 5, 2).reshape(1, 2, 4, 6)
    m = model([helper.make_node("DepthToSpace", ["x"], ["d"], blocksize=2, mode="DCR"),
               helper.make_node("Tile", ["d", "rep"], ["y"])], [vi("x", [1, 8, 2, 3])], [vi("y", [1, 2, 8, 6])],
              [init("rep", np.array([1, 1, 2, 1], np.int64))])
    case("depthtospace_tile", m, [x], [np.tile(y, (1, 1, 2, 1))])

    # Expand along a middle axis of a batched value: an add of zeros
    x = rand(2, 1, 4)
    nodes = [helper.make_node("Shape", ["x"], ["s"]), helper.make_node("Gather", ["s", "zero"], ["n"], axis=0),
             helper.make_node("Unsqueeze", ["n", "ax0"], ["n1"]),
             helper.make_node("Concat", ["n1", "rest"], ["shape"], axis=0),
             helper.make_node("Expand", ["x", "shape"], ["y"])]
    m = model(nodes, [vi("x", ["N", 1, 4])], [vi("y", ["N", 3, 4])],
              [init("zero", np.array(0, np.int64)), init("ax0", np.array([0], np.int64)),
               init("rest", np.array([3, 4], np.int64))])
    case("expand_batched", m, [x], [np.broadcast_to(x, (2, 3, 4))])

    # ReduceMax over H and W: a max pool; GlobalMaxPool; ReduceMin by negation
    x = rand(2, 3, 4, 5)
    m = model([helper.make_node("ReduceMax", ["x"], ["a"], axes=[2, 3], keepdims=0),
               helper.make_node("GlobalMaxPool", ["x"], ["b"]),
               helper.make_node("ReduceMin", ["x"], ["c"], axes=[3], keepdims=1)],
              [vi("x", ["N", 3, 4, 5])], [vi("a", ["N", 3]), vi("b", ["N", 3, 1, 1]), vi("c", ["N", 3, 4, 1])])
    case("reduce_max_min_spatial", m, [x], [x.max(axis=(2, 3)), x.max(axis=(2, 3), keepdims=True),
                                            x.min(axis=3, keepdims=True)])

    # MaxPool padded by more than half its window: a pad layer in front
    x = rand(1, 2, 5, 5)
    m = model([helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[3, 3], pads=[2, 2, 2, 2])],
              [vi("x", [1, 2, 5, 5])], [vi("y", [1, 2, 7, 7])])
    xp = np.pad(x, [(0, 0), (0, 0), (2, 2), (2, 2)], constant_values=-np.inf)
    y = np.stack([np.stack([xp[:, :, i:i + 3, j:j + 3].max(axis=(2, 3)) for j in range(7)], -1) for i in range(7)], -2)
    case("maxpool_wide_padding", m, [x], [y])

    # elementwise compositions: Abs, Softsign, Selu, Mean of three, Reciprocal
    x, z = rand(3, 4, lo=-2, hi=2), rand(3, 4, lo=0.5, hi=2)
    nodes = [helper.make_node("Abs", ["x"], ["a"]), helper.make_node("Softsign", ["x"], ["s"]),
             helper.make_node("Selu", ["x"], ["e"]), helper.make_node("Mean", ["x", "a", "s"], ["mn"]),
             helper.make_node("Reciprocal", ["z"], ["r"])]
    m = model(nodes, [vi("x", [3, 4]), vi("z", [3, 4])],
              [vi("a", [3, 4]), vi("s", [3, 4]), vi("e", [3, 4]), vi("mn", [3, 4]), vi("r", [3, 4])])
    x64 = x.astype(np.float64)
    selu = 1.05070102214813232421875 * np.where(x64 > 0, x64, 1.67326319217681884765625 * (np.exp(x64) - 1))
    case("elementwise_compositions", m, [x, z],
         [np.abs(x64), x64 / (1 + np.abs(x64)), selu, (x64 + np.abs(x64) + x64 / (1 + np.abs(x64))) / 3, 1 / z])

    # a batched Reshape to [-1, 6]: the -1 is the batch
    x = rand(2, 2, 3)
    m = model([helper.make_node("Reshape", ["x", "shape"], ["y"])], [vi("x", ["N", 2, 3])], [vi("y", ["N", 6])],
              [init("shape", np.array([-1, 6], np.int64))])
    case("reshape_minus1_batch", m, [x], [x.reshape(2, 6)])

    # a graph output that is a constant: a `constant` layer under the output's name
    x, c = rand(2, 3), rand(2, 2)
    m = model([helper.make_node("Relu", ["x"], ["y"]),
               helper.make_node("Constant", [], ["c"], value=numpy_helper.from_array(c))],
              [vi("x", [2, 3])], [vi("y", [2, 3]), vi("c", [2, 2])])
    case("constant_output", m, [x], [np.maximum(x, 0), c])

    # GELU's tanh approximation written out (PyTorch's export): gelu with approximate tanh
    x = rand(2, 6, lo=-3, hi=3)
    nodes = [helper.make_node("Mul", ["x", "x"], ["sq"]), helper.make_node("Mul", ["x", "sq"], ["cube"]),
             helper.make_node("Mul", ["cube", "k1"], ["cs"]), helper.make_node("Add", ["x", "cs"], ["inner"]),
             helper.make_node("Mul", ["inner", "k2"], ["arg"]), helper.make_node("Tanh", ["arg"], ["t"]),
             helper.make_node("Add", ["t", "one"], ["o"]), helper.make_node("Mul", ["x", "o"], ["m"]),
             helper.make_node("Mul", ["m", "half"], ["y"])]
    m = model(nodes, [vi("x", ["N", 6])], [vi("y", ["N", 6])],
              [init("k1", np.float32(0.044715)), init("k2", np.float32(0.7978845608028654)),
               init("one", np.float32(1.0)), init("half", np.float32(0.5))])
    case("gelu_tanh_pattern", m, [x], [F.gelu(t64(x), approximate="tanh").numpy()])

    # GlobalAveragePool on [N, C, L]
    x = rand(2, 3, 5)
    m = model([helper.make_node("GlobalAveragePool", ["x"], ["y"])], [vi("x", ["N", 3, 5])], [vi("y", ["N", 3, 1])])
    case("global_avgpool_1d", m, [x], [x.mean(axis=2, keepdims=True)])


# --------------------------------------------------------------------------
# the ops of format 1.1 (own random stream: the cases above keep their data)

RNG11 = np.random.default_rng(20250111)


def rand11(*shape, lo=-1.0, hi=1.0):
    return RNG11.uniform(lo, hi, shape).astype(np.float32)


def i64(*v):
    return np.array(v, np.int64)


def cases_11():
    # Erf, Log, Softplus, Abs: kiln's elementwise ops of the same names
    x, z = rand11(3, 4, lo=-3, hi=3), rand11(3, 4, lo=0.1, hi=4)
    nodes = [helper.make_node("Erf", ["x"], ["e"]), helper.make_node("Log", ["z"], ["l"]),
             helper.make_node("Softplus", ["x"], ["s"]), helper.make_node("Abs", ["x"], ["a"])]
    m = model(nodes, [vi("x", ["N", 4]), vi("z", ["N", 4])], [vi(k, ["N", 4]) for k in "elsa"])
    case("unary_erf_log_softplus_abs", m, [x, z],
         [torch.erf(t64(x)).numpy(), np.log(z.astype(np.float64)), F.softplus(t64(x)).numpy(), np.abs(x)])

    # Pow: a constant exponent kiln has no shortcut for, two computed operands, a constant base
    x, y = rand11(2, 3, lo=0.2, hi=2), rand11(2, 3, lo=-2, hi=2)
    nodes = [helper.make_node("Pow", ["x", "e"], ["p"]), helper.make_node("Pow", ["x", "y"], ["q"]),
             helper.make_node("Pow", ["b", "y"], ["r"])]
    m = model(nodes, [vi("x", ["N", 3]), vi("y", ["N", 3])], [vi("p", ["N", 3]), vi("q", ["N", 3]), vi("r", ["N", 3])],
              [init("e", np.float32(1.7)), init("b", np.float32(2.5))])
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    case("pow_general", m, [x, y], [x64 ** np.float32(1.7).item(), x64 ** y64, 2.5 ** y64])

    # PRelu: one slope ([1]) and per channel ([C, 1, 1]) are kiln's prelu; a slope along W is written out
    x = rand11(2, 3, 2, 4, lo=-2, hi=2)
    s1, sc, sw = rand11(1, lo=0, hi=0.5), rand11(3, 1, 1, lo=0, hi=0.5), rand11(4, lo=0, hi=0.5)
    nodes = [helper.make_node("PRelu", ["x", "s1"], ["a"]), helper.make_node("PRelu", ["x", "sc"], ["b"]),
             helper.make_node("PRelu", ["x", "sw"], ["c"])]
    m = model(nodes, [vi("x", ["N", 3, 2, 4])], [vi(k, ["N", 3, 2, 4]) for k in "abc"],
              [init("s1", s1), init("sc", sc), init("sw", sw)])
    x64 = x.astype(np.float64)
    case("prelu_forms", m, [x], [np.where(x64 > 0, x64, s * x64) for s in (s1, sc, sw)])

    # ReduceSum (axes as an input at 13), ReduceMax/ReduceMin (attribute before 18), noop_with_empty_axes
    x = rand11(2, 3, 4, 5)
    nodes = [helper.make_node("ReduceSum", ["x", "ax"], ["s"], keepdims=0),
             helper.make_node("ReduceSum", ["x"], ["same"], noop_with_empty_axes=1),
             helper.make_node("ReduceMax", ["x"], ["mx"], axes=[1, -1]),
             helper.make_node("ReduceMin", ["x"], ["mn"], axes=[2], keepdims=0)]
    m = model(nodes, [vi("x", ["N", 3, 4, 5])],
              [vi("s", ["N", 5]), vi("same", ["N", 3, 4, 5]), vi("mx", ["N", 1, 4, 1]), vi("mn", ["N", 3, 5])],
              [init("ax", i64(1, 2))])
    x64 = x.astype(np.float64)
    case("reduce_sum_max_min", m, [x], [x64.sum(axis=(1, 2)), x, x.max(axis=(1, 3), keepdims=True), x.min(axis=2)])
    # ReduceMax at opset 18: axes as an input; every axis of an unbatched value to a scalar
    x = rand11(3, 4)
    m = model([helper.make_node("ReduceMax", ["x", "ax"], ["a"], keepdims=0),
               helper.make_node("ReduceSum", ["x"], ["t"], keepdims=0)],
              [vi("x", [3, 4])], [vi("a", [3]), vi("t", [])], [init("ax", i64(-1))], opset=18)
    case("reduce_opset18_scalar", m, [x], [x.max(axis=1), np.array(x.astype(np.float64).sum())])

    # Slice: steps, negative starts, an end past the axis, the batch axis kept whole
    x = rand11(2, 5, 6, 7)
    m = model([helper.make_node("Slice", ["x", "st", "en", "ax", "sp"], ["y"])], [vi("x", ["N", 5, 6, 7])],
              [vi("y", ["N", 2, 3, 2])],
              [init("st", i64(0, 1, -5, 0)), init("en", i64(2 ** 62, 5, 2 ** 62, 4)), init("ax", i64(0, 1, 2, 3)),
               init("sp", i64(1, 2, 2, 3))])
    case("slice_steps", m, [x], [x[:, 1:5:2, -5::2, 0:4:3]])
    # Slice before opset 10: attributes
    m = model([helper.make_node("Slice", ["x"], ["y"], starts=[1, 0], ends=[3, -1], axes=[1, 3])],
              [vi("x", [2, 5, 6, 7])], [vi("y", [2, 2, 6, 6])], opset=9)
    case("slice_opset9", m, [x], [x[:, 1:3, :, 0:-1]])

    # Split with sizes; Gather of one index (drops the axis) and of indices that do not step evenly
    x = rand11(2, 6, 3)
    nodes = [helper.make_node("Split", ["x", "sizes"], ["a", "b", "c"], axis=1),
             helper.make_node("Gather", ["x", "one"], ["g1"], axis=2),
             helper.make_node("Gather", ["x", "many"], ["g2"], axis=1)]
    m = model(nodes, [vi("x", ["N", 6, 3])],
              [vi("a", ["N", 1, 3]), vi("b", ["N", 2, 3]), vi("c", ["N", 3, 3]), vi("g1", ["N", 6]),
               vi("g2", ["N", 5, 3])],
              [init("sizes", i64(1, 2, 3)), init("one", np.array(-1, np.int64)), init("many", i64(0, 2, 4, 5, 1))])
    case("split_gather", m, [x], [x[:, :1], x[:, 1:3], x[:, 3:], x[:, :, -1], x[:, [0, 2, 4, 5, 1]]])

    # ViT's class token: a constant expanded along the batch (Shape arithmetic), concatenated with the patches;
    # ConstantOfShape over the batch
    x, cls = rand11(2, 3, 4), rand11(1, 1, 4)
    nodes = [helper.make_node("Shape", ["x"], ["s"]), helper.make_node("Gather", ["s", "zero"], ["n"], axis=0),
             helper.make_node("Unsqueeze", ["n", "ax0"], ["n1"]),
             helper.make_node("Concat", ["n1", "rest"], ["shape"], axis=0),
             helper.make_node("Expand", ["cls", "shape"], ["tok"]),
             helper.make_node("Concat", ["tok", "x"], ["y"], axis=1),
             helper.make_node("Concat", ["n1", "rest2"], ["shape2"], axis=0),
             helper.make_node("ConstantOfShape", ["shape2"], ["c"],
                              value=numpy_helper.from_array(np.array([0.25], np.float32))),
             helper.make_node("Add", ["x", "c"], ["z"])]
    m = model(nodes, [vi("x", ["N", 3, 4])], [vi("y", ["N", 4, 4]), vi("z", ["N", 3, 4])],
              [init("zero", np.array(0, np.int64)), init("ax0", i64(0)), init("rest", i64(1, 4)),
               init("rest2", i64(3, 4)), init("cls", cls)])
    case("expand_class_token", m, [x], [np.concatenate([np.broadcast_to(cls, (2, 1, 4)), x], 1), x + 0.25])

    # Pad with negative pads: a crop (slice) around a pad
    x = rand11(1, 2, 5, 6)
    m = model([helper.make_node("Pad", ["x", "pads"], ["y"])], [vi("x", [1, 2, 5, 6])], [vi("y", [1, 2, 5, 5])],
              [init("pads", i64(0, 0, -1, 2, 0, 0, 1, -3))])
    case("pad_negative", m, [x], [np.pad(x, [(0, 0), (0, 0), (0, 1), (2, 0)])[:, :, 1:, :-3]])

    # Resize at opset 13: nearest (asymmetric, floor) by scales, bilinear (half_pixel) to sizes,
    # bicubic with align_corners; Upsample at opset 9
    x = rand11(1, 2, 4, 5)
    empty = np.zeros(0, np.float32)
    nodes = [helper.make_node("Resize", ["x", "", "sc"], ["a"], mode="nearest",
                              coordinate_transformation_mode="asymmetric", nearest_mode="floor"),
             helper.make_node("Resize", ["x", "", "", "sz"], ["b"], mode="linear"),
             helper.make_node("Resize", ["x", "roi", "sc2"], ["c"], mode="cubic",
                              coordinate_transformation_mode="align_corners"),
             helper.make_node("Resize", ["x", "", "", "sz2"], ["d"], mode="nearest",
                              coordinate_transformation_mode="half_pixel", nearest_mode="round_prefer_ceil")]
    m = model(nodes, [vi("x", ["N", 2, 4, 5])],
              [vi("a", ["N", 2, 8, 7]), vi("b", ["N", 2, 3, 7]), vi("c", ["N", 2, 8, 10]), vi("d", ["N", 2, 7, 3])],
              [init("sc", np.array([1, 1, 2, 1.5], np.float32)), init("sz", i64(1, 2, 3, 7)), init("roi", empty),
               init("sc2", np.array([1, 1, 2, 2], np.float32)), init("sz2", i64(1, 2, 7, 3))])
    t = t64(x)
    case("resize_modes", m, [x],
         [F.interpolate(t, scale_factor=(2, 1.5), mode="nearest").numpy(),
          F.interpolate(t, size=(3, 7), mode="bilinear", align_corners=False).numpy(),
          F.interpolate(t, scale_factor=2, mode="bicubic", align_corners=True).numpy(),
          F.interpolate(t, size=(7, 3), mode="nearest-exact").numpy()])
    m = model([helper.make_node("Upsample", ["x", "sc"], ["y"], mode="nearest")], [vi("x", [1, 2, 4, 5])],
              [vi("y", [1, 2, 8, 15])], [init("sc", np.array([1, 1, 2, 3], np.float32))], opset=9)
    case("upsample_opset9", m, [x], [np.repeat(np.repeat(x, 2, 2), 3, 3)])

    # ConvTranspose: groups, dilation, stride, unequal pads (a crop after), output_padding, a bias; and a
    # bias-free 1-D one sized by output_shape. Expected: PyTorch's full transposed convolution, cut as ONNX says.
    x, w, b = rand11(2, 4, 3, 4), rand11(4, 3, 3, 2), rand11(6)
    node = helper.make_node("ConvTranspose", ["x", "W", "B"], ["y"], group=2, strides=[2, 3], dilations=[2, 1],
                            pads=[1, 0, 0, 2], output_padding=[1, 0])
    full = F.conv_transpose2d(t64(x), t64(w), t64(b), stride=(2, 3), output_padding=(1, 0), groups=2,
                              dilation=(2, 1)).numpy()
    m = model([node], [vi("x", ["N", 4, 3, 4])], [vi("y", ["N", 6, 9, 9])], [init("W", w), init("B", b)])
    case("conv_transpose_groups_pads", m, [x], [full[:, :, 1:, :full.shape[3] - 2]])
    x, w = rand11(2, 3, 5), rand11(3, 2, 3)
    node = helper.make_node("ConvTranspose", ["x", "W"], ["y"], strides=[2], output_shape=[10])
    full = F.conv_transpose1d(t64(x), t64(w), stride=2).numpy()  # 11 long: total padding 1, at the end
    m = model([node], [vi("x", ["N", 3, 5])], [vi("y", ["N", 2, 10])], [init("W", w)])
    case("conv_transpose_1d_output_shape", m, [x], [full[:, :, :10]])
    # auto_pad SAME_UPPER: the output is input x stride; the odd unit of padding is cut at the end
    x, w = rand11(1, 2, 3, 3), rand11(2, 2, 4, 4)
    node = helper.make_node("ConvTranspose", ["x", "W"], ["y"], strides=[2, 2], auto_pad="SAME_UPPER")
    full = F.conv_transpose2d(t64(x), t64(w), stride=2).numpy()  # 8 x 8, total padding 2: 1 and 1
    m = model([node], [vi("x", [1, 2, 3, 3])], [vi("y", [1, 2, 6, 6])], [init("W", w)])
    case("conv_transpose_same_upper", m, [x], [full[:, :, 1:7, 1:7]])

    # InstanceNormalization (opset 13), GroupNormalization with per-group scale (18) and per-channel (21)
    x = rand11(2, 4, 3, 3, lo=-2, hi=2)
    s, bb = rand11(4, lo=0.5, hi=1.5), rand11(4)
    m = model([helper.make_node("InstanceNormalization", ["x", "s", "b"], ["y"], epsilon=1e-3)],
              [vi("x", ["N", 4, 3, 3])], [vi("y", ["N", 4, 3, 3])], [init("s", s), init("b", bb)])
    eps = np.float32(1e-3).item()
    case("instance_norm", m, [x], [F.group_norm(t64(x), 4, t64(s), t64(bb), eps=eps).numpy()])
    gs, gb = rand11(2, lo=0.5, hi=1.5), rand11(2)
    m = model([helper.make_node("GroupNormalization", ["x", "s", "b"], ["y"], num_groups=2)],
              [vi("x", ["N", 4, 3, 3])], [vi("y", ["N", 4, 3, 3])], [init("s", gs), init("b", gb)], opset=18)
    case("group_norm_opset18", m, [x],
         [F.group_norm(t64(x), 2, t64(np.repeat(gs, 2)), t64(np.repeat(gb, 2)), eps=1e-5).numpy()])
    m = model([helper.make_node("GroupNormalization", ["x", "s", "b"], ["y"], num_groups=2, epsilon=1e-4)],
              [vi("x", ["N", 4, 3, 3])], [vi("y", ["N", 4, 3, 3])], [init("s", s), init("b", bb)], opset=21)
    case("group_norm_opset21", m, [x], [F.group_norm(t64(x), 2, t64(s), t64(bb), eps=np.float32(1e-4).item()).numpy()])


def contract_11():
    # what the ops of format 1.1 cannot take: one node each, every one listed, each reading the input
    x = vi("x", ["N", 4, 6, 6])
    w = rand11(4, 2, 3, 3)
    nodes = [
        helper.make_node("Resize", ["x", "", "sc"], ["r"], mode="nearest", name="resize_round",
                         coordinate_transformation_mode="asymmetric", nearest_mode="round_prefer_floor"),
        helper.make_node("Resize", ["x", "", "sc"], ["r2"], mode="cubic", cubic_coeff_a=-0.5, name="resize_cubic"),
        helper.make_node("Slice", ["x", "st", "en", "ax", "neg"], ["s"], name="slice_back"),
        helper.make_node("ConvTranspose", ["x", "W"], ["ct"], strides=[2, 2], output_padding=[2, 0],
                         name="deconv_outpad"),
        helper.make_node("ConvTranspose", ["x", "W"], ["ct2"], auto_pad="SAME_MIDDLE", name="deconv_autopad"),
        helper.make_node("InstanceNormalization", ["x", "s3", "b3"], ["in"], name="inorm_scale"),
        helper.make_node("ReduceSum", ["x", "ax0"], ["rs"], name="sum_batch"),
        helper.make_node("Pad", ["x", "crop"], ["p"], name="pad_crop_all"),
        helper.make_node("Gather", ["x", "idx2"], ["g"], axis=1, name="gather_2d"),
        helper.make_node("Expand", ["x", "wide"], ["e"], name="expand_batch_moves"),
    ]
    outs = [vi(k, None) for k in ("r", "r2", "s", "ct", "ct2", "in", "rs", "p", "g", "e")]
    inits = [init("sc", np.array([1, 1, 2, 2], np.float32)), init("st", i64(5)), init("en", i64(0)),
             init("ax", i64(2)), init("neg", i64(-1)), init("W", w), init("s3", rand11(3)), init("b3", rand11(3)),
             init("ax0", i64(0)), init("crop", i64(0, 0, -3, 0, 0, 0, -3, 0)), init("idx2", i64(0, 1).reshape(1, 2)),
             init("wide", i64(2, 1, 4, 6, 6))]
    save("refusals_11.onnx", model(nodes, [x], outs, inits))
    # GroupNormalization whose groups do not divide the channels
    save("group_norm_groups.onnx",
         model([helper.make_node("GroupNormalization", ["x", "s", "b"], ["y"], num_groups=3, name="gn")],
               [vi("x", ["N", 4, 2, 2])], [vi("y", ["N", 4, 2, 2])], [init("s", rand11(3)), init("b", rand11(3))],
               opset=18))


# --------------------------------------------------------------------------
# command-line contract fixtures


def save(name, m):
    onnx.save(m, os.path.join(CONTRACT, name))


def contract():
    # a small classifier with a dynamic batch: conv, relu, pool, flatten, gemm
    w, b, fw, fb = rand(4, 3, 3, 3), rand(4), rand(10, 16), rand(10)
    nodes = [helper.make_node("Conv", ["input", "conv1.weight", "conv1.bias"], ["c"], pads=[1, 1, 1, 1],
                              name="/conv1/Conv"),
             helper.make_node("Relu", ["c"], ["r"], name="/relu/Relu"),
             helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2], name="/pool/MaxPool"),
             helper.make_node("Flatten", ["p"], ["f"], name="/Flatten"),
             helper.make_node("Gemm", ["f", "fc.weight", "fc.bias"], ["logits"], transB=1, name="/fc/Gemm")]
    save("classifier.onnx", model(nodes, [vi("input", ["batch_size", 3, 4, 4])], [vi("logits", ["batch_size", 10])],
                                  [init("conv1.weight", w), init("conv1.bias", b), init("fc.weight", fw),
                                   init("fc.bias", fb)]))

    # dynamic spatial dimensions: they must be pinned
    save("dynamic_hw.onnx", model([helper.make_node("Relu", ["x"], ["y"])], [vi("x", ["N", 3, "H", "W"])],
                                  [vi("y", ["N", 3, "H", "W"])]))

    # a rank-0 input, pinned with `s=`
    save("scalar_input.onnx", model([helper.make_node("Mul", ["x", "s"], ["y"])], [vi("x", [4]), vi("s", [])],
                                    [vi("y", [4])]))

    # names to sanitize, and outputs that collide in their C spelling
    nodes = [helper.make_node("Relu", ["input:0"], ["out.a"], name="relu/one"),
             helper.make_node("Neg", ["input:0"], ["out_a"], name="neg one")]
    save("names.onnx", model(nodes, [vi("input:0", [2, 3])], [vi("out.a", [2, 3]), vi("out_a", [2, 3])]))

    # a graph output that is also its input
    save("passthrough.onnx", model([helper.make_node("Relu", ["x"], ["y"])], [vi("x", [2, 2])],
                                   [vi("y", [2, 2]), vi("x", [2, 2])]))

    # every kind of refusal at once: an op kiln lacks, another domain, control
    # flow, a weight that is a graph input; each is listed
    then_g = helper.make_graph([helper.make_node("Relu", ["x"], ["t"])], "then", [], [vi("t", [2, 4])])
    nodes = [helper.make_node("Sin", ["x"], ["s"], name="sine"),
             helper.make_node("FusedGemm", ["x", "x"], ["f"], domain="com.microsoft", name="fused"),
             helper.make_node("If", ["cond"], ["i"], then_branch=then_g, else_branch=then_g, name="branch"),
             helper.make_node("Conv", ["img", "w"], ["c"], name="conv")]
    m = helper.make_model(helper.make_graph(nodes, "g", [vi("x", [2, 4]), vi("cond", [], TensorProto.BOOL),
                                                         vi("img", [1, 1, 4, 4]), vi("w", [1, 1, 3, 3])],
                                            [vi("s", [2, 4]), vi("f", [2, 4]), vi("i", [2, 4]), vi("c", [1, 1, 2, 2])]),
                          opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("com.microsoft", 1)])
    m.ir_version = 7
    save("refusals.onnx", m)

    # an int64 input and output
    save("int_io.onnx", model([helper.make_node("Identity", ["ids"], ["out"])], [vi("ids", [4], TensorProto.INT64)],
                              [vi("out", [4], TensorProto.INT64)]))

    # an operator set newer than kiln knows
    save("opset22.onnx", model([helper.make_node("Relu", ["x"], ["y"])], [vi("x", [2])], [vi("y", [2])], opset=22))

    # weights in an external file, and one whose file is missing
    w = rand(3, 4)
    for name, present in (("external", True), ("external_missing", False)):
        t = numpy_helper.from_array(w, "W")
        t.ClearField("raw_data")
        t.data_location = TensorProto.EXTERNAL
        for k, v in (("location", name + ".bin"), ("offset", "0"), ("length", str(w.nbytes))):
            e = t.external_data.add()
            e.key, e.value = k, v
        m = model([helper.make_node("MatMul", ["x", "W"], ["y"])], [vi("x", ["N", 3])], [vi("y", ["N", 4])], [t])
        save(name + ".onnx", m)
        if present:
            with open(os.path.join(CONTRACT, name + ".bin"), "wb") as f:
                f.write(w.tobytes())

    # a Split: one kiln slice per part
    save("split.onnx", model([helper.make_node("Split", ["x"], ["a", "b"], axis=1)], [vi("x", [2, 4])],
                             [vi("a", [2, 2]), vi("b", [2, 2])]))

    # malformed files: a truncated model, bytes that are not protobuf, and
    # attribute graphs nested deeper than the importer reads
    with open(os.path.join(CONTRACT, "classifier.onnx"), "rb") as f:
        whole = f.read()
    with open(os.path.join(CONTRACT, "truncated.onnx"), "wb") as f:
        f.write(whole[:len(whole) // 2])
    with open(os.path.join(CONTRACT, "garbage.onnx"), "wb") as f:
        f.write(b"\xff\xff\xff\xff this is not a protobuf \x00\x01\x02")
    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g0", [vi("x", [2])], [vi("y", [2])])
    leaf = g
    for depth in range(30):
        g = helper.make_graph([helper.make_node("If", ["c"], ["y"], then_branch=g, else_branch=leaf)],
                              "g%d" % (depth + 1), [vi("x", [2])], [vi("y", [2])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    save("deep.onnx", m)


def main():
    for d in (CASES, CONTRACT):
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
    cases()
    contract()
    cases_11()
    contract_11()
    for d in (CASES, CONTRACT):
        size = sum(os.path.getsize(os.path.join(p, f)) for p, _, fs in os.walk(d) for f in fs)
        print("wrote %s (%.1f KiB)" % (d, size / 1024))


if __name__ == "__main__":
    main()
