#!/usr/bin/python3
"""Generate PyTorch reference fixtures for kiln's interpreter tests.

For every case this writes tests/fixtures/torch/<case>/:

    model.yaml            the case as a model (FORMAT.md)
    weights.safetensors   its parameters (when it has any; PyTorch names for
                          the cases built from torch.nn modules)
    in0.npy, in1.npy ...  float32 inputs, in the model's input order
    out0.npy, ...         the expected outputs, in the model's output order:
                          computed by torch in float64 from the float32
                          inputs and weights, then rounded to float32

and tests/fixtures/torch/MANIFEST, the case names one per line.

The expected outputs come from torch code written per case (torch.nn modules
or torch.nn.functional calls with the attributes spelled out by hand, e.g.
the explicit pads that `same` must produce). As a check on the YAML, every
case is also read back by tools/kiln_ref.py (an independent reading of
FORMAT.md) and must agree with the torch code to 1e-9.

    /usr/bin/python3 tools/gen_fixtures.py [--out tests/fixtures/torch] [--only NAME ...]

Deterministic: every case draws from its own seeded generator.
"""

import argparse
import math
import os
import shutil
import sys
import zlib

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kiln_ref  # noqa: E402

CASES = []  # (name, builder)


def case(name):
    def deco(fn):
        CASES.append((name, fn))
        return fn
    return deco


class R:
    """Per-case random values, rounded to float32."""

    def __init__(self, name):
        self.rng = np.random.default_rng(zlib.crc32(name.encode()))

    def normal(self, *shape, scale=1.0):
        return (self.rng.standard_normal(shape) * scale).astype(np.float32)

    def uniform(self, lo, hi, *shape):
        return self.rng.uniform(lo, hi, size=shape).astype(np.float32)

    def away(self, *shape):
        """Magnitudes in [0.5, 2], random signs: safe divisors."""
        s = np.where(self.rng.random(shape) < 0.5, -1.0, 1.0)
        return (s * self.rng.uniform(0.5, 2.0, size=shape)).astype(np.float32)

    def positive(self, *shape):
        return self.rng.uniform(0.05, 4.0, size=shape).astype(np.float32)

    def var(self, *shape):
        return self.rng.uniform(0.3, 2.5, size=shape).astype(np.float32)


def T(a):
    """float32 array -> float64 tensor (exact)."""
    return torch.from_numpy(np.asarray(a)).double()


def f32(m):
    """Rounds a module's parameters and buffers to float32 values, keeps float64."""
    with torch.no_grad():
        for p in list(m.parameters()) + [b for b in m.buffers() if b.is_floating_point()]:
            p.copy_(p.float().double())
    return m


def sd_np(m, prefix=""):
    """A module's state_dict as numpy arrays (float32 for floats, int64 as is)."""
    out = {}
    for k, v in m.state_dict().items():
        v = v.detach().cpu().numpy()
        out[prefix + k] = v.astype(np.float32) if np.issubdtype(v.dtype, np.floating) else v
    return out


def bn_module(c, r, eps=1e-5):
    bn = nn.BatchNorm2d(c, eps=eps).double()
    with torch.no_grad():
        bn.weight.copy_(T(r.uniform(0.5, 1.5, c)))
        bn.bias.copy_(T(r.normal(c, scale=0.3)))
        bn.running_mean.copy_(T(r.normal(c, scale=0.5)))
        bn.running_var.copy_(T(r.var(c)))
        bn.num_batches_tracked.fill_(17)
    return bn.eval()


def spec(inputs, layers, params=None, ref=None, outputs=None, blocks=None, dtypes=None,
         header=None, metadata=None, unused=(), batch_name="batch", extra_weights=None):
    """inputs: [(name, array, batched)]; layers/blocks: YAML text; ref(*inputs, P)
    returns a tensor or a list (one per output)."""
    return dict(inputs=inputs, layers=layers, params=params or {}, ref=ref, outputs=outputs,
                blocks=blocks, dtypes=dtypes or {}, header=header, metadata=metadata,
                unused=set(unused), batch_name=batch_name, extra_weights=extra_weights)


def B(r, *shape, batch=2, scale=1.0):
    return r.normal(batch, *shape, scale=scale)


# ==========================================================================
# dense

@case("dense_basic")
def _(r):
    return spec([("x", B(r, 7, batch=3), True)],
                "  - {name: fc, op: dense, units: 5}\n",
                {"fc.weight": r.normal(5, 7), "fc.bias": r.normal(5)},
                lambda x, P: F.linear(x, P["fc.weight"], P["fc.bias"]))


@case("dense_nobias_tanh")
def _(r):
    return spec([("x", B(r, 6), True)],
                "  - {name: fc, op: dense, units: 4, bias: false, activation: tanh}\n",
                {"fc.weight": r.normal(4, 6)},
                lambda x, P: torch.tanh(F.linear(x, P["fc.weight"])))


@case("dense_rank3_relu")
def _(r):
    return spec([("x", B(r, 4, 6), True)],
                "  - {name: fc, op: dense, units: 5, activation: relu}\n",
                {"fc.weight": r.normal(5, 6), "fc.bias": r.normal(5)},
                lambda x, P: F.relu(F.linear(x, P["fc.weight"], P["fc.bias"])))


@case("dense_rank4_elu_map")
def _(r):
    return spec([("x", B(r, 2, 3, 6), True)],
                "  - {name: fc, op: dense, units: 3, activation: {op: elu, alpha: 0.5}}\n",
                {"fc.weight": r.normal(3, 6), "fc.bias": r.normal(3)},
                lambda x, P: F.elu(F.linear(x, P["fc.weight"], P["fc.bias"]), 0.5))


@case("dense_chain_nn_linear")
def _(r):
    # nn.Sequential(Linear, GELU, Linear): state_dict keys 0.weight ... used
    # through params: overrides.
    m = f32(nn.Sequential(nn.Linear(5, 9), nn.GELU(), nn.Linear(9, 3)).double())
    return spec([("x", B(r, 5, batch=3), True)],
                "  - {name: hidden, op: dense, units: 9, activation: gelu, params: {weight: 0.weight, bias: 0.bias}}\n"
                "  - {name: out, op: dense, units: 3, params: {weight: 2.weight, bias: 2.bias}}\n",
                sd_np(m), lambda x, P: m(x))


# ==========================================================================
# conv2d

def conv_case(name, cin, hw, conv_yaml, filters, kernel, stride=1, dilation=1, groups=1,
              bias=True, pads=(0, 0, 0, 0), act=None, batch=2):
    """pads: the explicit (top, left, bottom, right) that torch must apply."""
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel

    @case(name)
    def _(r):
        x = B(r, cin, *hw, batch=batch)
        P = {"conv.weight": r.normal(filters, cin // groups, kh, kw, scale=0.5)}
        if bias:
            P["conv.bias"] = r.normal(filters)

        def ref(x, P):
            t, l, b, rr = pads
            x = F.pad(x, (l, rr, t, b))
            y = F.conv2d(x, P["conv.weight"], P.get("conv.bias"), stride=stride,
                         dilation=dilation, groups=groups)
            return act(y) if act else y
        return spec([("x", x, True)], "  - {name: conv, op: conv2d, %s}\n" % conv_yaml, P, ref)


conv_case("conv_basic", 3, (7, 7), "filters: 4, kernel: 3", 4, 3)
conv_case("conv_stride2_pad1_relu", 3, (9, 8), "filters: 5, kernel: 3, stride: 2, padding: 1, activation: relu",
          5, 3, stride=2, pads=(1, 1, 1, 1), act=F.relu)
conv_case("conv_dilation2", 3, (9, 9), "filters: 4, kernel: 3, dilation: 2, padding: 2", 4, 3, dilation=2,
          pads=(2, 2, 2, 2))
conv_case("conv_groups2", 4, (6, 6), "filters: 6, kernel: 3, groups: 2, padding: 1", 6, 3, groups=2,
          pads=(1, 1, 1, 1))
conv_case("conv_depthwise_s2", 5, (7, 7), "filters: 5, kernel: 3, groups: 5, padding: 1, stride: 2", 5, 3,
          groups=5, stride=2, pads=(1, 1, 1, 1))
conv_case("conv_depthwise_mult2", 3, (6, 6), "filters: 6, kernel: 3, groups: 3", 6, 3, groups=3)
conv_case("conv_pad_asym", 3, (6, 7), "filters: 4, kernel: 3, padding: [1, 0, 2, 1]", 4, 3, pads=(1, 0, 2, 1))
conv_case("conv_pad_hw", 7, (7, 6), "filters: 7, kernel: [3, 1], stride: [1, 2], padding: [1, 0]", 7, (3, 1),
          stride=(1, 2), pads=(1, 0, 1, 0))
# same, stride 2: out 5x5 from 9x10; total pads h (5-1)*2+3-9=2 -> 1,1; w (5-1)*2+3-10=1 -> 0,1
conv_case("conv_same_s2", 3, (9, 10), "filters: 4, kernel: 3, stride: 2, padding: same", 4, 3, stride=2,
          pads=(1, 0, 1, 1))
# same, dilation [2,3], kernel [3,2]: k_eff 5 and 4: h total 4 -> 2,2; w total 3 -> 1,2
conv_case("conv_same_dilation", 2, (8, 7), "filters: 3, kernel: [3, 2], dilation: [2, 3], padding: same", 3, (3, 2),
          dilation=(2, 3), pads=(2, 1, 2, 2))
# same, stride 2 and dilation 2 on 10x11: k_eff 5, out 5x6: h (4*2+5-10)=3 -> 1,2; w (5*2+5-11)=4 -> 2,2
conv_case("conv_same_s2_dil2", 3, (10, 11), "filters: 5, kernel: 3, stride: 2, dilation: 2, padding: same", 5, 3,
          stride=2, dilation=2, pads=(1, 2, 2, 2))
# same with stride 1 and an even kernel: total 1 -> 0 top/left, 1 bottom/right
conv_case("conv_same_even_kernel", 3, (5, 6), "filters: 2, kernel: 2, padding: same", 2, 2, pads=(0, 0, 1, 1))
conv_case("conv_valid_sigmoid", 5, (6, 6), "filters: 3, kernel: 3, padding: valid, activation: sigmoid", 3, 3,
          act=torch.sigmoid)
conv_case("conv_nobias_leaky_map", 3, (6, 6),
          "filters: 4, kernel: 3, padding: 1, bias: false, activation: {op: leaky_relu, alpha: 0.1}",
          4, 3, bias=False, pads=(1, 1, 1, 1), act=lambda y: F.leaky_relu(y, 0.1))
conv_case("conv_gelu_tanh_map", 3, (5, 5), "filters: 3, kernel: 3, padding: 1, activation: {op: gelu, approximate: tanh}",
          3, 3, pads=(1, 1, 1, 1), act=lambda y: F.gelu(y, approximate="tanh"))
conv_case("conv_clip_map", 3, (5, 5), "filters: 3, kernel: 3, activation: {op: clip, min: -0.5, max: 1}",
          3, 3, act=lambda y: torch.clamp(y, -0.5, 1.0))
conv_case("conv_hardswish", 5, (5, 5), "filters: 7, kernel: 1, activation: hardswish", 7, 1, act=F.hardswish)
conv_case("conv_relu6_s2_k5", 3, (11, 9), "filters: 4, kernel: 5, stride: 2, padding: 2, activation: relu6", 4, 5,
          stride=2, pads=(2, 2, 2, 2), act=F.relu6, batch=3)


@case("conv_nn_module")
def _(r):
    # a torch.nn.Conv2d with its own state_dict names
    m = f32(nn.Conv2d(3, 5, kernel_size=(3, 2), stride=(2, 1), padding=(1, 0), dilation=(1, 2), groups=1).double())
    x = B(r, 3, 8, 7)
    return spec([("x", x, True)],
                "  - {name: conv, op: conv2d, filters: 5, kernel: [3, 2], stride: [2, 1], padding: [1, 0], dilation: [1, 2]}\n",
                sd_np(m, "conv."), lambda x, P: m(x))


# ==========================================================================
# pooling

def pool_case(name, kind, hw, yaml_attrs, ref, c=2, batch=2):
    @case(name)
    def _(r):
        x = B(r, c, *hw, batch=batch)
        return spec([("x", x, True)], "  - {name: pool, op: %s, %s}\n" % (kind, yaml_attrs), None,
                    lambda x, P: ref(x))


NEG_INF = -math.inf
pool_case("maxpool_k2", "maxpool2d", (6, 6), "kernel: 2", lambda x: F.max_pool2d(x, 2), c=3)
pool_case("maxpool_k3s2p1", "maxpool2d", (8, 8), "kernel: 3, stride: 2, padding: 1",
          lambda x: F.max_pool2d(x, 3, 2, 1))
pool_case("maxpool_ceil", "maxpool2d", (8, 8), "kernel: 3, stride: 2, ceil_mode: true",
          lambda x: F.max_pool2d(x, 3, 2, 0, ceil_mode=True))
pool_case("maxpool_ceil_pad", "maxpool2d", (8, 8), "kernel: 3, stride: 2, padding: 1, ceil_mode: true",
          lambda x: F.max_pool2d(x, 3, 2, 1, ceil_mode=True))
# ceil_mode where PyTorch drops the last window (it would start in the right padding): 7 -> 4
pool_case("maxpool_ceil_drop", "maxpool2d", (7, 7), "kernel: 2, stride: 2, padding: 1, ceil_mode: true",
          lambda x: F.max_pool2d(x, 2, 2, 1, ceil_mode=True))
pool_case("maxpool_nonceil_pad", "maxpool2d", (7, 7), "kernel: 2, stride: 2, padding: 1, ceil_mode: false",
          lambda x: F.max_pool2d(x, 2, 2, 1, ceil_mode=False))
pool_case("maxpool_dilation2", "maxpool2d", (7, 7), "kernel: 3, stride: 2, padding: 1, dilation: 2",
          lambda x: F.max_pool2d(x, 3, 2, 1, dilation=2))
pool_case("maxpool_dilation_ceil", "maxpool2d", (8, 9), "kernel: 2, stride: 2, dilation: [2, 3], ceil_mode: true",
          lambda x: F.max_pool2d(x, 2, 2, 0, dilation=(2, 3), ceil_mode=True))
pool_case("maxpool_stride_ne_kernel", "maxpool2d", (7, 6), "kernel: [3, 2], stride: [1, 2]",
          lambda x: F.max_pool2d(x, (3, 2), (1, 2)))
# same, kernel 3 stride 2 on 7x8: out 4x4; h total (3*2+3-7)=2 -> 1,1; w total (3*2+3-8)=1 -> 0,1
pool_case("maxpool_same_s2", "maxpool2d", (7, 8), "kernel: 3, stride: 2, padding: same",
          lambda x: F.max_pool2d(F.pad(x, (0, 1, 1, 1), value=NEG_INF), 3, 2))
pool_case("maxpool_pad_asym", "maxpool2d", (5, 5), "kernel: 2, stride: 2, padding: [0, 1, 1, 0]",
          lambda x: F.max_pool2d(F.pad(x, (1, 0, 0, 1), value=NEG_INF), 2, 2))

pool_case("avgpool_k2", "avgpool2d", (6, 6), "kernel: 2", lambda x: F.avg_pool2d(x, 2), c=3)
pool_case("avgpool_k3s1", "avgpool2d", (5, 6), "kernel: 3, stride: 1", lambda x: F.avg_pool2d(x, 3, 1))
for _cip in (True, False):
    _w = "true" if _cip else "false"
    _s = "cip" if _cip else "nocip"
    pool_case("avgpool_p1_%s" % _s, "avgpool2d", (7, 7),
              "kernel: 3, stride: 2, padding: 1, count_include_pad: %s" % _w,
              (lambda c: lambda x: F.avg_pool2d(x, 3, 2, 1, count_include_pad=c))(_cip))
    # 8 -> 5 with ceil: the last window runs past the right padding
    pool_case("avgpool_p1_ceil_%s" % _s, "avgpool2d", (8, 8),
              "kernel: 3, stride: 2, padding: 1, ceil_mode: true, count_include_pad: %s" % _w,
              (lambda c: lambda x: F.avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=c))(_cip))
    pool_case("avgpool_p0_ceil_%s" % _s, "avgpool2d", (8, 7),
              "kernel: 3, stride: 2, ceil_mode: true, count_include_pad: %s" % _w,
              (lambda c: lambda x: F.avg_pool2d(x, 3, 2, 0, ceil_mode=True, count_include_pad=c))(_cip))
    pool_case("avgpool_ceil_drop_%s" % _s, "avgpool2d", (7, 7),
              "kernel: 2, stride: 2, padding: 1, ceil_mode: true, count_include_pad: %s" % _w,
              (lambda c: lambda x: F.avg_pool2d(x, 2, 2, 1, ceil_mode=True, count_include_pad=c))(_cip))


def _avg_same_nocip(x):
    # same, kernel 3 stride 2 on 8x9: out 4x5; h total 1 -> 0,1; w total 2 -> 1,1
    s = F.avg_pool2d(F.pad(x, (1, 1, 0, 1)), 3, 2, divisor_override=1)
    n = F.avg_pool2d(F.pad(torch.ones_like(x), (1, 1, 0, 1)), 3, 2, divisor_override=1)
    return s / n


pool_case("avgpool_same_cip", "avgpool2d", (8, 9), "kernel: 3, stride: 2, padding: same",
          lambda x: F.avg_pool2d(F.pad(x, (1, 1, 0, 1)), 3, 2))
pool_case("avgpool_same_nocip", "avgpool2d", (8, 9), "kernel: 3, stride: 2, padding: same, count_include_pad: false",
          _avg_same_nocip)


@case("global_avgpool")
def _(r):
    return spec([("x", B(r, 5, 3, 4), True)], "  - {name: gap, op: global_avgpool}\n", None,
                lambda x, P: F.adaptive_avg_pool2d(x, 1))


# ==========================================================================
# normalization

@case("batchnorm_nn_module")
def _(r):
    bn = f32(bn_module(5, r))
    return spec([("x", B(r, 5, 3, 3), True)], "  - {name: bn, op: batchnorm}\n", sd_np(bn, "bn."),
                lambda x, P: bn(x))


@case("batchnorm_eps_rank2")
def _(r):
    bn = nn.BatchNorm1d(6, eps=0.1).double()
    with torch.no_grad():
        bn.weight.copy_(T(r.uniform(0.5, 1.5, 6)))
        bn.bias.copy_(T(r.normal(6)))
        bn.running_mean.copy_(T(r.normal(6)))
        bn.running_var.copy_(T(r.var(6) * 0.2))
    bn = f32(bn).eval()
    return spec([("x", B(r, 6, batch=3), True)], "  - {name: bn, op: batchnorm, eps: 0.1}\n", sd_np(bn, "bn."),
                lambda x, P: bn(x))


@case("batchnorm_rank3_eps")
def _(r):
    bn = nn.BatchNorm1d(4, eps=1e-3).double()
    with torch.no_grad():
        bn.weight.copy_(T(r.uniform(0.5, 1.5, 4)))
        bn.bias.copy_(T(r.normal(4)))
        bn.running_mean.copy_(T(r.normal(4)))
        bn.running_var.copy_(T(r.var(4)))
    bn = f32(bn).eval()
    return spec([("x", B(r, 4, 5), True)], "  - {name: bn, op: batchnorm, eps: 1e-3}\n", sd_np(bn, "bn."),
                lambda x, P: bn(x))


@case("layernorm_affine")
def _(r):
    ln = nn.LayerNorm(6).double()
    with torch.no_grad():
        ln.weight.copy_(T(r.uniform(0.5, 1.5, 6)))
        ln.bias.copy_(T(r.normal(6)))
    ln = f32(ln)
    return spec([("x", B(r, 4, 6, scale=2.0), True)], "  - {name: ln, op: layernorm}\n", sd_np(ln, "ln."),
                lambda x, P: ln(x))


@case("layernorm_noaffine_eps")
def _(r):
    return spec([("x", B(r, 3, 8), True)], "  - {name: ln, op: layernorm, affine: false, eps: 0.001}\n", None,
                lambda x, P: F.layer_norm(x, (8,), eps=1e-3))


@case("layernorm_rank2")
def _(r):
    return spec([("x", B(r, 10, batch=3), True)], "  - {name: ln, op: layernorm}\n",
                {"ln.weight": r.normal(10), "ln.bias": r.normal(10)},
                lambda x, P: F.layer_norm(x, (10,), P["ln.weight"], P["ln.bias"]))


# ==========================================================================
# elementwise

UNARY_REF = {
    "relu": F.relu, "relu6": F.relu6, "sigmoid": torch.sigmoid, "tanh": torch.tanh, "silu": F.silu,
    "hardswish": F.hardswish, "hardsigmoid": F.hardsigmoid, "exp": torch.exp, "sqrt": torch.sqrt,
    "neg": torch.neg,
}


def unary_case(name, yaml_attrs, ref, positive=False, scale=4.0):
    @case(name)
    def _(r):
        x = r.positive(2, 3, 4, 5) if positive else B(r, 3, 4, 5, scale=scale)
        return spec([("x", x, True)], "  - {name: y, %s}\n" % yaml_attrs, None, lambda x, P: ref(x))


for _op, _f in UNARY_REF.items():
    unary_case("unary_" + _op, "op: " + _op, _f, positive=(_op == "sqrt"), scale=(2.0 if _op == "exp" else 4.0))
unary_case("gelu_none", "op: gelu", lambda x: F.gelu(x))
unary_case("gelu_none_explicit", "op: gelu, approximate: none", lambda x: F.gelu(x, approximate="none"))
unary_case("gelu_tanh", "op: gelu, approximate: tanh", lambda x: F.gelu(x, approximate="tanh"))
unary_case("leaky_relu_default", "op: leaky_relu", lambda x: F.leaky_relu(x, 0.01))
unary_case("leaky_relu_alpha", "op: leaky_relu, alpha: 0.2", lambda x: F.leaky_relu(x, 0.2))
unary_case("elu_default", "op: elu", lambda x: F.elu(x, 1.0))
unary_case("elu_alpha", "op: elu, alpha: 0.5", lambda x: F.elu(x, 0.5))
unary_case("elu_alpha_int", "op: elu, alpha: 2", lambda x: F.elu(x, 2.0))
unary_case("clip_min", "op: clip, min: -1.5", lambda x: torch.clamp(x, min=-1.5))
unary_case("clip_max", "op: clip, max: 0.25", lambda x: torch.clamp(x, max=0.25))
unary_case("clip_both", "op: clip, min: -1, max: 2.5", lambda x: torch.clamp(x, -1.0, 2.5))

for _op in ("softmax", "log_softmax"):
    _f = F.softmax if _op == "softmax" else F.log_softmax
    unary_case(_op + "_default", "op: " + _op, (lambda f: lambda x: f(x, dim=-1))(_f), scale=2.0)
    unary_case(_op + "_axis1", "op: %s, axis: 1" % _op, (lambda f: lambda x: f(x, dim=1))(_f), scale=2.0)
    unary_case(_op + "_axis_neg1", "op: %s, axis: -1" % _op, (lambda f: lambda x: f(x, dim=-1))(_f), scale=2.0)
    unary_case(_op + "_axis2", "op: %s, axis: 2" % _op, (lambda f: lambda x: f(x, dim=2))(_f), scale=2.0)

# ==========================================================================
# binary ops with broadcasting

BIN_REF = {"add": torch.add, "sub": torch.sub, "mul": torch.mul, "div": torch.div,
           "max": torch.maximum, "min": torch.minimum}


def _operand(r, op, *shape, batch=None):
    if op == "div":
        return r.away(*shape) if batch is None else r.away(batch, *shape)
    return r.normal(*shape) if batch is None else r.normal(batch, *shape)


for _op, _f in BIN_REF.items():
    def _mk(op, f):
        @case("%s_bcast_const" % op)
        def _(r):
            # [batch,3,1,5] (op) [4,1] -> [batch,3,4,5]
            return spec([("x", B(r, 3, 1, 5), True)],
                        "  - {name: c, op: constant}\n"
                        "  - {name: y, op: %s, inputs: [x, c]}\n" % op,
                        {"c.value": _operand(r, op, 4, 1)}, lambda x, P: f(x, P["c.value"]))

        @case("%s_const_first" % op)
        def _(r):
            # [4,1] (op) [batch,3,1,5]: the constant is the left operand
            return spec([("x", _operand(r, op, 3, 1, 5, batch=2), True)],
                        "  - {name: c, op: constant}\n"
                        "  - {name: y, op: %s, inputs: [c, x]}\n" % op,
                        {"c.value": r.normal(4, 1)}, lambda x, P: f(P["c.value"], x))

        @case("%s_two_inputs" % op)
        def _(r):
            # [batch,3,1,5] (op) [batch,1,4,1] -> [batch,3,4,5]
            return spec([("a", B(r, 3, 1, 5), True), ("b", _operand(r, op, 1, 4, 1, batch=2), True)],
                        "  - {name: y, op: %s, inputs: [a, b]}\n" % op, None, lambda a, b, P: f(a, b))

        @case("%s_rank1" % op)
        def _(r):
            # [batch,2,3,5] (op) [5]
            return spec([("x", B(r, 2, 3, 5), True)],
                        "  - {name: v, op: constant}\n"
                        "  - {name: y, op: %s, inputs: [x, v]}\n" % op,
                        {"v.value": _operand(r, op, 5)}, lambda x, P: f(x, P["v.value"]))

        @case("%s_scalar" % op)
        def _(r):
            return spec([("x", B(r, 3, 4), True)], "  - {name: y, op: %s, scalar: -1.25}\n" % op, None,
                        lambda x, P: f(x, torch.tensor(-1.25, dtype=torch.float64)))

        @case("%s_scalar_reverse" % op)
        def _(r):
            return spec([("x", _operand(r, op, 3, 4, batch=2), True)],
                        "  - {name: y, op: %s, scalar: 3, reverse: true}\n" % op, None,
                        lambda x, P: f(torch.tensor(3.0, dtype=torch.float64), x))
    _mk(_op, _f)


@case("add_same_shape_chain")
def _(r):
    # x + y, then (x + y) * x with a batched [batch,1,1] operand
    return spec([("x", B(r, 3, 4), True), ("y", B(r, 3, 4), True), ("s", B(r, 1, 1), True)],
                "  - {name: sum, op: add, inputs: [x, y]}\n"
                "  - {name: prod, op: mul, inputs: [sum, s]}\n", None,
                lambda x, y, s, P: (x + y) * s)


# ==========================================================================
# matmul

@case("matmul_batched_bcast_const")
def _(r):
    # [batch,3,4,6] @ [3,6,5] -> [batch,3,4,5]
    return spec([("a", B(r, 3, 4, 6), True)],
                "  - {name: w, op: constant}\n"
                "  - {name: y, op: matmul, inputs: [a, w]}\n",
                {"w.value": r.normal(3, 6, 5)}, lambda a, P: torch.matmul(a, P["w.value"]))


@case("matmul_two_inputs_bcast")
def _(r):
    # [batch,2,3,4] @ [batch,1,4,5] -> [batch,2,3,5]
    return spec([("a", B(r, 2, 3, 4), True), ("b", B(r, 1, 4, 5), True)],
                "  - {name: y, op: matmul, inputs: [a, b]}\n", None, lambda a, b, P: torch.matmul(a, b))


@case("matmul_transpose_b")
def _(r):
    # [batch,2,3,4] @ [batch,2,5,4]^T -> [batch,2,3,5]
    return spec([("a", B(r, 2, 3, 4), True), ("b", B(r, 2, 5, 4), True)],
                "  - {name: y, op: matmul, inputs: [a, b], transpose_b: true}\n", None,
                lambda a, b, P: torch.matmul(a, b.transpose(-1, -2)))


@case("matmul_transpose_b_const")
def _(r):
    # [batch,3,4] @ [6,4]^T -> [batch,3,6]
    return spec([("a", B(r, 3, 4), True)],
                "  - {name: w, op: constant}\n"
                "  - {name: y, op: matmul, inputs: [a, w], transpose_b: true}\n",
                {"w.value": r.normal(6, 4)}, lambda a, P: torch.matmul(a, P["w.value"].t()))


@case("matmul_3d_2d")
def _(r):
    # [batch,3,4] @ [4,5] -> [batch,3,5]
    return spec([("a", B(r, 3, 4, batch=3), True)],
                "  - {name: w, op: constant}\n"
                "  - {name: y, op: matmul, inputs: [a, w]}\n",
                {"w.value": r.normal(4, 5)}, lambda a, P: torch.matmul(a, P["w.value"]))


@case("matmul_2d_3d")
def _(r):
    # [3,4] @ [batch,4,5] -> [batch,3,5]
    return spec([("b", B(r, 4, 5), True)],
                "  - {name: w, op: constant}\n"
                "  - {name: y, op: matmul, inputs: [w, b]}\n",
                {"w.value": r.normal(3, 4)}, lambda b, P: torch.matmul(P["w.value"], b))


@case("matmul_batched_2d")
def _(r):
    # [batch,4] @ [4,6]: plain 2-D matrix product, the batch as the rows
    return spec([("a", B(r, 4, batch=3), True)],
                "  - {name: w, op: constant}\n"
                "  - {name: y, op: matmul, inputs: [a, w]}\n",
                {"w.value": r.normal(4, 6)}, lambda a, P: torch.matmul(a, P["w.value"]))


# ==========================================================================
# shape ops

@case("concat_axis1_three")
def _(r):
    return spec([("a", B(r, 2, 3), True), ("b", B(r, 4, 3), True), ("c", B(r, 1, 3), True)],
                "  - {name: y, op: concat, inputs: [a, b, c]}\n", None,
                lambda a, b, c, P: torch.cat([a, b, c], 1))


@case("concat_axis_neg1_three")
def _(r):
    return spec([("a", B(r, 2, 3), True), ("b", B(r, 2, 1), True), ("c", B(r, 2, 4), True)],
                "  - {name: y, op: concat, inputs: [a, b, c], axis: -1}\n", None,
                lambda a, b, c, P: torch.cat([a, b, c], -1))


@case("concat_axis2_4d")
def _(r):
    return spec([("a", B(r, 2, 3, 2), True), ("b", B(r, 2, 1, 2), True)],
                "  - {name: y, op: concat, inputs: [a, b], axis: 2}\n", None,
                lambda a, b, P: torch.cat([a, b], 2))


@case("concat_same_value_twice")
def _(r):
    return spec([("a", B(r, 2, 3), True)],
                "  - {name: r, op: relu}\n"
                "  - {name: y, op: concat, inputs: [a, r, a]}\n", None,
                lambda a, P: torch.cat([a, F.relu(a), a], 1))


@case("flatten_axis1")
def _(r):
    return spec([("x", B(r, 3, 4, 2), True)], "  - {name: y, op: flatten}\n", None, lambda x, P: x.flatten(1))


@case("flatten_axis2")
def _(r):
    return spec([("x", B(r, 3, 4, 2), True)], "  - {name: y, op: flatten, axis: 2}\n", None,
                lambda x, P: x.flatten(2))


@case("flatten_axis_neg2")
def _(r):
    return spec([("x", B(r, 3, 4, 2), True)], "  - {name: y, op: flatten, axis: -2}\n", None,
                lambda x, P: x.flatten(2))


@case("reshape_0_neg1")
def _(r):
    return spec([("x", B(r, 4, 6), True)], "  - {name: y, op: reshape, shape: [0, -1, 3]}\n", None,
                lambda x, P: x.reshape(x.shape[0], 8, 3))


@case("reshape_copy_dims")
def _(r):
    return spec([("x", B(r, 2, 3, 4), True)], "  - {name: y, op: reshape, shape: [0, 0, -1]}\n", None,
                lambda x, P: x.reshape(x.shape[0], 2, 12))


@case("reshape_split")
def _(r):
    return spec([("x", B(r, 12), True)],
                "  - {name: y, op: reshape, shape: [0, 3, 2, 2]}\n"
                "  - {name: z, op: mul, inputs: [y, y]}\n", None,
                lambda x, P: x.reshape(x.shape[0], 3, 2, 2) ** 2)


@case("transpose_basic")
def _(r):
    return spec([("x", B(r, 3, 4), True)], "  - {name: y, op: transpose, perm: [0, 2, 1]}\n", None,
                lambda x, P: x.permute(0, 2, 1))


@case("transpose_neg_perm")
def _(r):
    # [0, -1, 1, -2] = [0, 3, 1, 2]
    return spec([("x", B(r, 2, 3, 4), True)], "  - {name: y, op: transpose, perm: [0, -1, 1, -2]}\n", None,
                lambda x, P: x.permute(0, 3, 1, 2))


@case("transpose_then_dense")
def _(r):
    return spec([("x", B(r, 5, 3), True)],
                "  - {name: t, op: transpose, perm: [0, 2, 1]}\n"
                "  - {name: fc, op: dense, units: 2}\n",
                {"fc.weight": r.normal(2, 5), "fc.bias": r.normal(2)},
                lambda x, P: F.linear(x.permute(0, 2, 1), P["fc.weight"], P["fc.bias"]))


@case("mean_axes_keepdims")
def _(r):
    return spec([("x", B(r, 3, 4, 5), True)], "  - {name: y, op: mean, axes: [2, 3]}\n", None,
                lambda x, P: x.mean(dim=(2, 3), keepdim=True))


@case("mean_nokeep")
def _(r):
    return spec([("x", B(r, 3, 4, 5), True)], "  - {name: y, op: mean, axes: [1], keepdims: false}\n", None,
                lambda x, P: x.mean(dim=1))


@case("mean_neg_axes")
def _(r):
    return spec([("x", B(r, 3, 4, 5), True)], "  - {name: y, op: mean, axes: [-1, -3], keepdims: false}\n", None,
                lambda x, P: x.mean(dim=(3, 1)))


@case("mean_neg_keep")
def _(r):
    return spec([("x", B(r, 6, 4), True)], "  - {name: y, op: mean, axes: [-1], keepdims: true}\n", None,
                lambda x, P: x.mean(dim=-1, keepdim=True))


@case("pad_value")
def _(r):
    return spec([("x", B(r, 2, 3, 4), True)], "  - {name: y, op: pad, pads: [1, 2, 0, 1], value: -1.5}\n", None,
                lambda x, P: F.pad(x, (2, 1, 1, 0), value=-1.5))


@case("pad_zero")
def _(r):
    return spec([("x", B(r, 2, 3, 4), True)], "  - {name: y, op: pad, pads: [2, 0, 1, 3]}\n", None,
                lambda x, P: F.pad(x, (0, 3, 2, 1)))


@case("pad_rank3")
def _(r):
    return spec([("x", B(r, 3, 4), True)], "  - {name: y, op: pad, pads: [1, 1, 1, 1], value: 2}\n", None,
                lambda x, P: F.pad(x, (1, 1, 1, 1), value=2.0))


@case("dropout_identity")
def _(r):
    return spec([("x", B(r, 4, 3), True)],
                "  - {name: d, op: dropout}\n"
                "  - {name: i, op: identity}\n"
                "  - {name: y, op: tanh}\n", None, lambda x, P: torch.tanh(x))


@case("identity_output")
def _(r):
    return spec([("x", B(r, 5), True)], "  - {name: y, op: identity}\n", None, lambda x, P: x)


@case("constant_add")
def _(r):
    return spec([("x", B(r, 2, 3, 4), True)],
                "  - {name: bias, op: constant}\n"
                "  - {name: y, op: add, inputs: [x, bias]}\n",
                {"bias.value": r.normal(3, 4)}, lambda x, P: x + P["bias.value"])


@case("constant_params_key")
def _(r):
    # a constant read from a key of another name, used twice
    return spec([("x", B(r, 3), True)],
                "  - {name: k, op: constant, params: {value: tables.scale}}\n"
                "  - {name: y, op: mul, inputs: [x, k]}\n"
                "  - {name: z, op: sub, inputs: [y, k]}\n",
                {"tables.scale": r.normal(3)}, lambda x, P: x * P["tables.scale"] - P["tables.scale"])


# ==========================================================================
# model-level features

@case("multi_output")
def _(r):
    P = {"fc.weight": r.normal(4, 6), "fc.bias": r.normal(4)}
    return spec([("x", B(r, 6), True)],
                "  - {name: fc, op: dense, units: 4}\n"
                "  - {name: act, op: sigmoid}\n"
                "  - {name: probs, op: softmax, input: fc}\n",
                P, lambda x, P: [torch.sigmoid(F.linear(x, P["fc.weight"], P["fc.bias"])),
                                 F.softmax(F.linear(x, P["fc.weight"], P["fc.bias"]), -1),
                                 F.linear(x, P["fc.weight"], P["fc.bias"])],
                outputs=["act", "probs", "fc"])


@case("outputs_order")
def _(r):
    # outputs listed out of layer order; a pass-through value as an output
    # (a model input itself cannot be an output: its C name would collide)
    return spec([("x", B(r, 3), True), ("y", r.away(2, 3), True)],
                "  - {name: s, op: sub, inputs: [x, y]}\n"
                "  - {name: y_copy, op: identity, input: y}\n"
                "  - {name: d, op: div, inputs: [s, y]}\n", None,
                lambda x, y, P: [y, (x - y) / y, x - y], outputs=["y_copy", "d", "s"])


@case("fixed_shape")
def _(r):
    # no symbolic dimension: shapes are fixed, the run takes batch = 1
    return spec([("x", r.normal(2, 3), False)],
                "  - {name: fc, op: dense, units: 4, activation: silu}\n",
                {"fc.weight": r.normal(4, 3), "fc.bias": r.normal(4)},
                lambda x, P: F.silu(F.linear(x, P["fc.weight"], P["fc.bias"])))


@case("batch_name_n")
def _(r):
    # the symbolic dimension may have any name
    return spec([("x", B(r, 3, 3), True), ("y", B(r, 3, 3), True)],
                "  - {name: p, op: matmul, inputs: [x, y]}\n", None,
                lambda x, y, P: torch.matmul(x, y), batch_name="N")


@case("yaml_scalars")
def _(r):
    # names that look like numbers, floats written 1e-3 / .5 / integers, anchors
    # and aliases, flow and block styles, quoted strings
    layers = (
        "  - name: 0\n"
        "    op: conv2d\n"
        "    filters: 3\n"
        "    kernel: &k [3, 3]\n"
        "    padding: &p 1\n"
        "    activation: &act {op: leaky_relu, alpha: .5}\n"
        "  - {name: '1', op: conv2d, input: 0, filters: 2, kernel: *k, padding: *p, activation: *act}\n"
        "  - {name: 2, op: layernorm, eps: 1e-3}\n"
        "  - {name: \"3\", op: mul, scalar: 2}\n"
    )
    P = {"0.weight": r.normal(3, 2, 3, 3, scale=0.5), "0.bias": r.normal(3),
         "1.weight": r.normal(2, 3, 3, 3, scale=0.5), "1.bias": r.normal(2),
         "2.weight": r.normal(5), "2.bias": r.normal(5)}

    def ref(x, P):
        y = F.leaky_relu(F.conv2d(x, P["0.weight"], P["0.bias"], padding=1), 0.5)
        y = F.leaky_relu(F.conv2d(y, P["1.weight"], P["1.bias"], padding=1), 0.5)
        return F.layer_norm(y, (5,), P["2.weight"], P["2.bias"], eps=1e-3) * 2
    return spec([("x", B(r, 2, 4, 5), True)], layers, P, ref)


@case("precision_f32")
def _(r):
    return spec([("x", B(r, 4), True)],
                "  - {name: fc, op: dense, units: 3, precision: f32}\n",
                {"fc.weight": r.normal(3, 4), "fc.bias": r.normal(3)},
                lambda x, P: F.linear(x, P["fc.weight"], P["fc.bias"]),
                header="precision: f32\ndescription: \"explicit f32 precision, model and layer\"\n")


def _exact16(r, *shape):
    """Values exactly representable in both float16 and bfloat16."""
    return (np.round(r.normal(*shape) * 8) / 8).astype(np.float32)


@case("weights_dtypes")
def _(r):
    # F16, BF16 and F64 tensors, with values every dtype holds exactly
    P = {"a.weight": _exact16(r, 4, 5), "a.bias": _exact16(r, 4),
         "b.weight": r.normal(3, 4), "b.bias": _exact16(r, 3)}
    return spec([("x", B(r, 5), True)],
                "  - {name: a, op: dense, units: 4, activation: relu}\n"
                "  - {name: b, op: dense, units: 3}\n", P,
                lambda x, P: F.linear(F.relu(F.linear(x, P["a.weight"], P["a.bias"])), P["b.weight"], P["b.bias"]),
                dtypes={"a.weight": "F16", "a.bias": "BF16", "b.weight": "F64", "b.bias": "F16"})


@case("weights_state_dict_extras")
def _(r):
    # a state_dict with I64 num_batches_tracked, __metadata__, and tensors no
    # layer reads (ignored whatever their dtype)
    conv = f32(nn.Conv2d(3, 4, 3, padding=1, bias=False).double())
    bn = f32(bn_module(4, r))
    P = {}
    P.update(sd_np(conv, "conv."))
    P.update(sd_np(bn, "bn."))
    P["head.unused"] = r.normal(7)
    P["step"] = np.array([12345], dtype=np.int64)
    return spec([("x", B(r, 3, 5, 5), True)],
                "  - {name: conv, op: conv2d, filters: 4, kernel: 3, padding: 1, bias: false}\n"
                "  - {name: bn, op: batchnorm}\n"
                "  - {name: relu, op: relu}\n", P,
                lambda x, P: F.relu(bn(conv(x))), metadata={"format": "pt"},
                unused={"bn.num_batches_tracked", "head.unused", "step"},
                dtypes={"step": "I64", "bn.num_batches_tracked": "I64"})


@case("weights_two_files")
def _(r):
    # weights: [weights.safetensors, extra.safetensors]
    P = {"a.weight": r.normal(4, 3), "a.bias": r.normal(4)}
    E = {"b.weight": r.normal(2, 4), "b.bias": r.normal(2)}
    return spec([("x", B(r, 3), True)],
                "  - {name: a, op: dense, units: 4, activation: tanh}\n"
                "  - {name: b, op: dense, units: 2}\n", P,
                lambda x, P: F.linear(torch.tanh(F.linear(x, P["a.weight"], P["a.bias"])), P["b.weight"], P["b.bias"]),
                extra_weights=("extra.safetensors", E))


# ==========================================================================
# blocks

@case("block_args_nested")
def _(r):
    blocks = (
        "  affine:\n"
        "    args: [units]\n"
        "    inputs: [x]\n"
        "    layers:\n"
        "      - {name: fc, op: dense, units: $units}\n"
        "  res:\n"
        "    args: {units: 6, act: relu, skip: x}\n"
        "    inputs: [x, y]\n"
        "    layers:\n"
        "      - {name: inner, use: affine, with: {units: $units}}\n"
        "      - {name: act, op: $act}\n"
        "      - {name: sum, op: add, inputs: [act, $skip]}\n"
        "      - {name: half, op: mul, input: y, scalar: 0.5}\n"
        "      - {name: out, op: add, inputs: [sum, half]}\n"
        "      - {name: unused_tail, op: neg, input: x}\n"
        "    output: out\n"
    )
    layers = (
        "  - {name: b0, use: res, inputs: [x, y]}\n"
        "  - {name: b1, use: res, inputs: [b0, x], with: {act: tanh, skip: y}}\n"
        "  - {name: shared, op: dense, units: 6, input: b1, params: {weight: b0.inner.fc.weight, bias: b1.inner.fc.bias}}\n"
    )
    P = {"b0.inner.fc.weight": r.normal(6, 6, scale=0.5), "b0.inner.fc.bias": r.normal(6),
         "b1.inner.fc.weight": r.normal(6, 6, scale=0.5), "b1.inner.fc.bias": r.normal(6)}

    def ref(x, y, P):
        b0 = F.relu(F.linear(x, P["b0.inner.fc.weight"], P["b0.inner.fc.bias"])) + x + 0.5 * y
        b1 = torch.tanh(F.linear(b0, P["b1.inner.fc.weight"], P["b1.inner.fc.bias"])) + x + 0.5 * x
        return [F.linear(b1, P["b0.inner.fc.weight"], P["b1.inner.fc.bias"]), b0]
    return spec([("x", B(r, 6), True), ("y", B(r, 6), True)], layers, P, ref, blocks=blocks,
                outputs=["shared", "b0"])


@case("block_params_arg")
def _(r):
    # params: keys are absolute; an argument varies them. Required arg given as ~.
    blocks = (
        "  scaled:\n"
        "    args: {table: ~, ch: 4}\n"
        "    inputs: [x]\n"
        "    layers:\n"
        "      - {name: k, op: constant, params: {value: $table}}\n"
        "      - {name: m, op: mul, inputs: [x, k]}\n"
        "      - {name: fc, op: dense, units: $ch}\n"
    )
    layers = (
        "  - {name: s1, use: scaled, with: {table: tables.a}}\n"
        "  - {name: s2, use: scaled, with: {table: tables.b, ch: 4}}\n"
    )
    P = {"tables.a": r.normal(4), "tables.b": r.normal(4),
         "s1.fc.weight": r.normal(4, 4), "s1.fc.bias": r.normal(4),
         "s2.fc.weight": r.normal(4, 4), "s2.fc.bias": r.normal(4)}

    def ref(x, P):
        y = F.linear(x * P["tables.a"], P["s1.fc.weight"], P["s1.fc.bias"])
        return F.linear(y * P["tables.b"], P["s2.fc.weight"], P["s2.fc.bias"])
    return spec([("x", B(r, 3, 4), True)], layers, P, ref, blocks=blocks)


@case("block_input_arg")
def _(r):
    # `input: $src` picks which template operand a layer reads; an instance
    # without input takes the previous layer; a template without args
    blocks = (
        "  pick:\n"
        "    args: {src: a}\n"
        "    inputs: [a, b]\n"
        "    layers:\n"
        "      - {name: t, op: tanh, input: $src}\n"
        "      - {name: s, op: sub, inputs: [t, b]}\n"
        "  twice:\n"
        "    inputs: [x]\n"
        "    layers:\n"
        "      - {name: n, op: neg}\n"
        "      - {name: p, use: pick, inputs: [n, x], with: {src: b}}\n"
        "      - {name: q, use: pick, inputs: [p, x]}\n"
    )
    layers = (
        "  - {name: first, op: relu}\n"
        "  - {name: blk, use: twice}\n"
        "  - {name: out, use: pick, inputs: [blk, first]}\n"
    )

    def ref(x, P):
        first = F.relu(x)
        p = torch.tanh(first) - first
        q = torch.tanh(p) - first
        return torch.tanh(q) - first
    return spec([("x", B(r, 5, scale=2.0), True)], layers, None, ref, blocks=blocks)


# ==========================================================================
# whole models built from torch.nn modules

class _Basic(nn.Module):
    def __init__(self, cin, cout, stride, r):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = bn_module(cout, r)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = bn_module(cout, r)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), bn_module(cout, r))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + (self.downsample(x) if self.downsample is not None else x))


class _ResNetish(nn.Module):
    def __init__(self, r):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 3, 1, 1, bias=False)
        self.bn1 = bn_module(6, r)
        self.layer1 = nn.Sequential(_Basic(6, 6, 1, r))
        self.layer2 = nn.Sequential(_Basic(6, 10, 2, r), _Basic(10, 10, 1, r))
        self.fc = nn.Linear(10, 5)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer2(self.layer1(x))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


@case("model_resnetish")
def _(r):
    torch.manual_seed(11)
    m = f32(_ResNetish(r).double().eval())
    blocks = (
        "  downsample:\n"
        "    args: {ch: ~, stride: 2}\n"
        "    inputs: [x]\n"
        "    layers:\n"
        "      - {name: 0, op: conv2d, filters: $ch, kernel: 1, stride: $stride, bias: false}\n"
        "      - {name: 1, op: batchnorm}\n"
        "  basic:\n"
        "    args: {ch: ~}\n"
        "    inputs: [x]\n"
        "    layers:\n"
        "      - {name: conv1, op: conv2d, filters: $ch, kernel: 3, padding: 1, bias: false}\n"
        "      - {name: bn1, op: batchnorm}\n"
        "      - {name: relu1, op: relu}\n"
        "      - {name: conv2, op: conv2d, filters: $ch, kernel: 3, padding: 1, bias: false}\n"
        "      - {name: bn2, op: batchnorm}\n"
        "      - {name: add, op: add, inputs: [bn2, x]}\n"
        "      - {name: relu2, op: relu}\n"
        "  basic_down:\n"
        "    args: {ch: ~, stride: 2}\n"
        "    inputs: [x]\n"
        "    layers:\n"
        "      - {name: conv1, op: conv2d, filters: $ch, kernel: 3, stride: $stride, padding: 1, bias: false}\n"
        "      - {name: bn1, op: batchnorm}\n"
        "      - {name: relu1, op: relu}\n"
        "      - {name: conv2, op: conv2d, filters: $ch, kernel: 3, padding: 1, bias: false}\n"
        "      - {name: bn2, op: batchnorm}\n"
        "      - {name: downsample, use: downsample, input: x, with: {ch: $ch, stride: $stride}}\n"
        "      - {name: add, op: add, inputs: [bn2, downsample]}\n"
        "      - {name: relu2, op: relu}\n"
    )
    layers = (
        "  - {name: conv1, op: conv2d, filters: 6, kernel: 3, padding: 1, bias: false}\n"
        "  - {name: bn1, op: batchnorm}\n"
        "  - {name: relu, op: relu}\n"
        "  - {name: layer1.0, use: basic, with: {ch: 6}}\n"
        "  - {name: layer2.0, use: basic_down, with: {ch: 10}}\n"
        "  - {name: layer2.1, use: basic, with: {ch: 10}}\n"
        "  - {name: pool, op: global_avgpool}\n"
        "  - {name: flat, op: flatten}\n"
        "  - {name: fc, op: dense, units: 5}\n"
    )
    P = sd_np(m)
    return spec([("image", B(r, 3, 8, 8), True)], layers, P, lambda x, P: m(x), blocks=blocks,
                unused={k for k in P if k.endswith("num_batches_tracked")},
                dtypes={k: "I64" for k in P if k.endswith("num_batches_tracked")})


class _InvRes(nn.Module):
    """MobileNetV2's inverted residual, torchvision's module layout."""

    def __init__(self, c, t, r):
        super().__init__()
        h = c * t
        self.conv = nn.Sequential(
            nn.Sequential(nn.Conv2d(c, h, 1, bias=False), bn_module(h, r), nn.ReLU6()),
            nn.Sequential(nn.Conv2d(h, h, 3, 1, 1, groups=h, bias=False), bn_module(h, r), nn.ReLU6()),
            nn.Conv2d(h, c, 1, bias=False), bn_module(c, r))

    def forward(self, x):
        return x + self.conv(x)


@case("model_inverted_residual")
def _(r):
    torch.manual_seed(12)
    m = f32(_InvRes(4, 3, r).double().eval())
    blocks = (
        "  cbr:\n"
        "    args: {ch: ~, kernel: 1, pad: 0, groups: 1}\n"
        "    inputs: [x]\n"
        "    layers:\n"
        "      - {name: 0, op: conv2d, filters: $ch, kernel: $kernel, padding: $pad, groups: $groups, bias: false}\n"
        "      - {name: 1, op: batchnorm}\n"
        "      - {name: 2, op: relu6}\n"
    )
    layers = (
        "  - {name: conv.0, use: cbr, with: {ch: 12}}\n"
        "  - {name: conv.1, use: cbr, with: {ch: 12, kernel: 3, pad: 1, groups: 12}}\n"
        "  - {name: conv.2, op: conv2d, filters: 4, kernel: 1, bias: false}\n"
        "  - {name: conv.3, op: batchnorm}\n"
        "  - {name: add, op: add, inputs: [x, conv.3]}\n"
    )
    P = sd_np(m)
    return spec([("x", B(r, 4, 6, 6, scale=2.0), True)], layers, P, lambda x, P: m(x), blocks=blocks,
                unused={k for k in P if k.endswith("num_batches_tracked")},
                dtypes={k: "I64" for k in P if k.endswith("num_batches_tracked")})


@case("model_transformer_layer")
def _(r):
    # nn.TransformerEncoderLayer (pre-norm, GELU, batch_first), its packed
    # in_proj split into q/k/v tensors read through params: overrides.
    torch.manual_seed(13)
    d, heads, hidden, seq = 16, 2, 32, 6
    m = nn.TransformerEncoderLayer(d, heads, hidden, dropout=0.0, activation="gelu", batch_first=True,
                                   norm_first=True).double()
    with torch.no_grad():
        m.norm1.weight.copy_(T(r.uniform(0.5, 1.5, d)))
        m.norm1.bias.copy_(T(r.normal(d, scale=0.2)))
        m.norm2.weight.copy_(T(r.uniform(0.5, 1.5, d)))
        m.norm2.bias.copy_(T(r.normal(d, scale=0.2)))
        m.self_attn.in_proj_bias.copy_(T(r.normal(3 * d, scale=0.2)))
        m.self_attn.out_proj.bias.copy_(T(r.normal(d, scale=0.2)))
    m = f32(m).eval()
    P = sd_np(m)
    w, b = P["self_attn.in_proj_weight"], P["self_attn.in_proj_bias"]
    for i, n in enumerate("qkv"):
        P["self_attn.%s_proj.weight" % n] = w[i * d:(i + 1) * d].copy()
        P["self_attn.%s_proj.bias" % n] = b[i * d:(i + 1) * d].copy()
    hd = d // heads
    layers = (
        "  - {name: norm1, op: layernorm}\n"
        "  - {name: q, op: dense, units: 16, input: norm1, params: {weight: self_attn.q_proj.weight, bias: self_attn.q_proj.bias}}\n"
        "  - {name: k, op: dense, units: 16, input: norm1, params: {weight: self_attn.k_proj.weight, bias: self_attn.k_proj.bias}}\n"
        "  - {name: v, op: dense, units: 16, input: norm1, params: {weight: self_attn.v_proj.weight, bias: self_attn.v_proj.bias}}\n"
        "  - {name: qh, op: reshape, input: q, shape: [0, 6, 2, 8]}\n"
        "  - {name: qt, op: transpose, perm: [0, 2, 1, 3]}\n"
        "  - {name: kh, op: reshape, input: k, shape: [0, 6, 2, -1]}\n"
        "  - {name: kt, op: transpose, perm: [0, -2, 1, -1]}\n"
        "  - {name: vh, op: reshape, input: v, shape: [0, 0, 2, 8]}\n"
        "  - {name: vt, op: transpose, perm: [0, 2, 1, 3]}\n"
        "  - {name: scores, op: matmul, inputs: [qt, kt], transpose_b: true}\n"
        "  - {name: scaled, op: mul, scalar: %r}\n"
        "  - {name: attn, op: softmax, axis: -1}\n"
        "  - {name: ctx, op: matmul, inputs: [attn, vt]}\n"
        "  - {name: ctx_t, op: transpose, perm: [0, 2, 1, 3]}\n"
        "  - {name: merged, op: reshape, shape: [0, 0, -1]}\n"
        "  - {name: self_attn.out_proj, op: dense, units: 16}\n"
        "  - {name: res1, op: add, inputs: [x, self_attn.out_proj]}\n"
        "  - {name: norm2, op: layernorm}\n"
        "  - {name: linear1, op: dense, units: 32, activation: gelu}\n"
        "  - {name: dropout, op: dropout}\n"
        "  - {name: linear2, op: dense, units: 16}\n"
        "  - {name: res2, op: add, inputs: [res1, linear2]}\n"
    ) % (1.0 / math.sqrt(hd))

    def ref(x, P):
        with torch.no_grad():
            return m(x)
    unused = {"self_attn.in_proj_weight", "self_attn.in_proj_bias"}
    return spec([("x", B(r, seq, d), True)], layers, P, ref, unused=unused)


# ==========================================================================
# version 1.1 (FORMAT.md "Ops added in version 1.1")

@case("slice_channels")
def _(r):
    return spec([("x", B(r, 6, 3, 4), True)], "  - {name: y, op: slice, axis: 1, start: 1, end: -1}\n", None,
                lambda x, P: x[:, 1:-1])


@case("slice_step_neg_start")
def _(r):
    return spec([("x", B(r, 3, 4, 11), True)], "  - {name: y, op: slice, axis: -1, start: -8, step: 3}\n", None,
                lambda x, P: x[..., -8::3])


@case("slice_clamped")
def _(r):
    return spec([("x", B(r, 5, 4), True)], "  - {name: y, op: slice, axis: 2, start: -100, end: 100}\n", None,
                lambda x, P: x[:, :, -100:100])


@case("slice_chunk_fixed")
def _(r):
    # torch.chunk(x, 3, dim=1) on a fixed-shape input: three slices (views)
    x = r.normal(1, 9, 2, 3)
    return spec([("x", x, False)],
                "  - {name: a, op: slice, axis: 1, end: 3}\n"
                "  - {name: b, op: slice, input: x, axis: 1, start: 3, end: 6}\n"
                "  - {name: c, op: slice, input: x, axis: 1, start: 6}\n"
                "  - {name: y, op: add, inputs: [a, c]}\n", None,
                lambda x, P: (lambda t: [t[0] + t[2], t[1]])(torch.chunk(x, 3, dim=1)), outputs=["y", "b"])


@case("expand_class_token")
def _(r):
    # ViT: cls_token.expand(n, -1, -1) then cat with the patches
    return spec([("x", B(r, 5, 8), True)],
                "  - {name: cls, op: constant}\n"
                "  - {name: tok, op: expand, shape: [batch, 1, 8]}\n"
                "  - {name: y, op: concat, inputs: [tok, x], axis: 1}\n",
                {"cls.value": r.normal(1, 1, 8)},
                lambda x, P: torch.cat([P["cls.value"].expand(x.shape[0], -1, -1), x], dim=1))


@case("expand_rows")
def _(r):
    return spec([("x", B(r, 3, 1), True)], "  - {name: y, op: expand, shape: [batch, 3, 5]}\n", None,
                lambda x, P: x.expand(-1, 3, 5))


@case("concat_unbatched_operand")
def _(r):
    return spec([("x", B(r, 2, 3), True)],
                "  - {name: t, op: constant}\n"
                "  - {name: y, op: concat, inputs: [x, t, x], axis: 1}\n",
                {"t.value": r.normal(1, 4, 3)},
                lambda x, P: torch.cat([x, P["t.value"].expand(x.shape[0], 4, 3), x], dim=1))


def resize_case(name, hw, yaml_attrs, **kw):
    @case(name)
    def _(r):
        return spec([("x", B(r, 2, *hw), True)], "  - {name: y, op: resize, %s}\n" % yaml_attrs, None,
                    lambda x, P: F.interpolate(x, **kw))


resize_case("resize_nearest_scale2", (3, 4), "scale: 2", scale_factor=2, mode="nearest",
            recompute_scale_factor=False)
resize_case("resize_nearest_size", (4, 5), "size: [7, 13]", size=(7, 13), mode="nearest")
resize_case("resize_nearest_down_scale", (10, 7), "scale: [0.3, 0.45]", scale_factor=(0.3, 0.45), mode="nearest",
            recompute_scale_factor=False)
resize_case("resize_nearest_same_size_scale", (10, 4), "scale: [1.05, 1]", scale_factor=(1.05, 1.0),
            mode="nearest", recompute_scale_factor=False)
resize_case("resize_nearest_exact", (4, 5), "size: [9, 12], mode: nearest_exact", size=(9, 12),
            mode="nearest-exact")
resize_case("resize_nearest_exact_scale", (6, 5), "scale: [0.5, 1.7], mode: nearest_exact",
            scale_factor=(0.5, 1.7), mode="nearest-exact", recompute_scale_factor=False)
resize_case("resize_bilinear_scale2", (3, 4), "scale: 2, mode: bilinear", scale_factor=2, mode="bilinear",
            align_corners=False, recompute_scale_factor=False)
resize_case("resize_bilinear_align", (4, 3), "size: [7, 8], mode: bilinear, align_corners: true", size=(7, 8),
            mode="bilinear", align_corners=True)
resize_case("resize_bilinear_scale_frac", (5, 6), "scale: [0.6, 1.7], mode: bilinear",
            scale_factor=(0.6, 1.7), mode="bilinear", align_corners=False, recompute_scale_factor=False)
resize_case("resize_bilinear_down_size", (9, 8), "size: [4, 3], mode: bilinear", size=(4, 3), mode="bilinear",
            align_corners=False)
resize_case("resize_bicubic_scale2", (3, 4), "scale: 2, mode: bicubic", scale_factor=2, mode="bicubic",
            align_corners=False, recompute_scale_factor=False)
resize_case("resize_bicubic_align", (4, 5), "size: [6, 9], mode: bicubic, align_corners: true", size=(6, 9),
            mode="bicubic", align_corners=True)
resize_case("resize_bicubic_down", (9, 10), "scale: [0.4, 0.75], mode: bicubic", scale_factor=(0.4, 0.75),
            mode="bicubic", align_corners=False, recompute_scale_factor=False)


@case("resize_rank3")
def _(r):
    # the last two axes of [batch, H, W]: interpolate as one channel
    return spec([("x", B(r, 3, 4), True)], "  - {name: y, op: resize, size: [5, 7], mode: bilinear}\n", None,
                lambda x, P: F.interpolate(x[:, None], size=(5, 7), mode="bilinear", align_corners=False)[:, 0])


def deconv_case(name, cin, hw, yaml_attrs, filters, kernel, stride=1, padding=0, output_padding=0, dilation=1,
                groups=1, bias=True, act=None):
    @case(name)
    def _(r):
        m = nn.ConvTranspose2d(cin, filters, kernel, stride=stride, padding=padding, output_padding=output_padding,
                               groups=groups, bias=bias, dilation=dilation).double()
        f32(m)
        x = B(r, cin, *hw)

        def ref(x, P):
            y = m(x)
            return act(y) if act else y
        return spec([("x", x, True)], "  - {name: up, op: conv_transpose2d, %s}\n" % yaml_attrs, sd_np(m, "up."),
                    ref)


deconv_case("deconv_stride1", 3, (4, 5), "filters: 4, kernel: 3, padding: 1", 4, 3, padding=1)
deconv_case("deconv_dcgan_relu", 4, (3, 4), "filters: 3, kernel: 4, stride: 2, padding: 1, activation: relu", 3, 4,
            stride=2, padding=1, act=F.relu)
deconv_case("deconv_output_padding", 3, (4, 3), "filters: 2, kernel: 3, stride: 2, padding: 1, output_padding: 1",
            2, 3, stride=2, padding=1, output_padding=1)
deconv_case("deconv_groups_dilation", 4, (3, 3), "filters: 6, kernel: 3, stride: 2, dilation: 2, groups: 2", 6, 3,
            stride=2, dilation=2, groups=2)
deconv_case("deconv_hw_attrs", 2, (3, 5),
            "filters: 3, kernel: [2, 3], stride: [3, 2], padding: [0, 1], output_padding: [2, 1], bias: false, "
            "activation: {op: leaky_relu, alpha: 0.1}", 3, (2, 3), stride=(3, 2), padding=(0, 1),
            output_padding=(2, 1), bias=False, act=lambda y: F.leaky_relu(y, 0.1))


def apool_case(name, hw, size):
    @case(name)
    def _(r):
        return spec([("x", B(r, 3, *hw), True)], "  - {name: y, op: adaptive_avgpool2d, size: %s}\n" % size, None,
                    lambda x, P: nn.AdaptiveAvgPool2d(eval(size))(x))


apool_case("adaptive_avgpool_1", (5, 6), "1")
apool_case("adaptive_avgpool_uneven", (7, 9), "[3, 4]")
apool_case("adaptive_avgpool_larger", (3, 4), "[5, 7]")


def gn_case(name, shape, groups, yaml_attrs="", affine=True, eps=1e-5):
    @case(name)
    def _(r):
        c = shape[0]
        m = nn.GroupNorm(groups, c, eps=eps, affine=affine).double()
        if affine:
            with torch.no_grad():
                m.weight.copy_(T(r.uniform(0.5, 1.5, c)))
                m.bias.copy_(T(r.normal(c, scale=0.3)))
        return spec([("x", B(r, *shape), True)], "  - {name: gn, op: group_norm, groups: %d%s}\n" % (groups, yaml_attrs),
                    sd_np(m, "gn.") if affine else None, lambda x, P: m(x))


gn_case("group_norm_affine", (6, 3, 4), 3)
gn_case("group_norm_instance", (4, 5, 3), 4)
gn_case("group_norm_noaffine_eps", (6, 7), 2, ", affine: false, eps: 0.001", affine=False, eps=1e-3)


@case("prelu_channels")
def _(r):
    m = nn.PReLU(4).double()
    with torch.no_grad():
        m.weight.copy_(T(r.uniform(-0.5, 0.8, 4)))
    return spec([("x", B(r, 4, 3, 2), True)], "  - {name: act, op: prelu}\n", sd_np(m, "act."), lambda x, P: m(x))


@case("prelu_single")
def _(r):
    m = f32(nn.PReLU().double())
    return spec([("x", B(r, 5, 3), True)], "  - {name: act, op: prelu}\n", sd_np(m, "act."), lambda x, P: m(x))


@case("pow_two_inputs")
def _(r):
    return spec([("a", r.positive(2, 3, 4), True), ("b", B(r, 1, 4), True)],
                "  - {name: y, op: pow, inputs: [a, b]}\n", None, lambda a, b, P: torch.pow(a, b))


@case("pow_scalar_square")
def _(r):
    return spec([("x", B(r, 3, 4), True)], "  - {name: y, op: pow, scalar: 2}\n", None, lambda x, P: x ** 2)


@case("pow_scalar_cube_negative")
def _(r):
    return spec([("x", B(r, 3, 4), True)], "  - {name: y, op: pow, scalar: 3}\n", None, lambda x, P: x ** 3)


@case("pow_scalar_frac")
def _(r):
    return spec([("x", r.positive(2, 3, 4), True)], "  - {name: y, op: pow, scalar: 0.75}\n", None,
                lambda x, P: x ** 0.75)


@case("pow_scalar_reverse")
def _(r):
    return spec([("x", B(r, 3, 4), True)], "  - {name: y, op: pow, scalar: 2, reverse: true}\n", None,
                lambda x, P: torch.pow(torch.tensor(2.0, dtype=torch.float64), x))


def reduce_case(name, op, yaml_attrs, ref):
    @case(name)
    def _(r):
        return spec([("x", B(r, 3, 4, 5), True)], "  - {name: y, op: %s, %s}\n" % (op, yaml_attrs), None,
                    lambda x, P: ref(x))


reduce_case("reduce_sum_keep", "reduce_sum", "axes: [2, 3]", lambda x: x.sum(dim=(2, 3), keepdim=True))
reduce_case("reduce_sum_nokeep", "reduce_sum", "axes: 1, keepdims: false", lambda x: x.sum(dim=1))
reduce_case("reduce_max_neg_axes", "reduce_max", "axes: [-1], keepdims: false", lambda x: x.amax(dim=-1))
reduce_case("reduce_min_two", "reduce_min", "axes: [1, -1]", lambda x: x.amin(dim=(1, 3), keepdim=True))

unary_case("unary_erf", "op: erf", torch.erf, scale=2.0)
unary_case("unary_abs", "op: abs", torch.abs)
unary_case("unary_log", "op: log", torch.log, positive=True)
unary_case("unary_softplus", "op: softplus", F.softplus, scale=12.0)
unary_case("hardsigmoid_onnx", "op: hardsigmoid, alpha: 0.2, beta: 0.5",
           lambda x: torch.clamp(0.2 * x + 0.5, 0.0, 1.0))
unary_case("hardsigmoid_defaults_explicit", "op: hardsigmoid, alpha: 0.16666666666666666, beta: 0.5",
           F.hardsigmoid)


# ==========================================================================

def yaml_text(name, s, has_weights):
    lines = ["# kiln fixture %s: generated by tools/gen_fixtures.py, do not edit" % name,
             "kiln: 1", "name: %s" % name]
    if s["header"]:
        lines.append(s["header"].rstrip("\n"))
    if has_weights:
        if s["extra_weights"]:
            lines.append("weights: [weights.safetensors, %s]" % s["extra_weights"][0])
        else:
            lines.append("weights: weights.safetensors")
    lines.append("inputs:")
    for n, a, batched in s["inputs"]:
        dims = ([s["batch_name"]] + [str(d) for d in a.shape[1:]]) if batched else [str(d) for d in a.shape]
        lines.append("  - {name: %s, shape: [%s]}" % (n, ", ".join(dims)))
    if s["outputs"]:
        lines.append("outputs: [%s]" % ", ".join(s["outputs"]))
    if s["blocks"]:
        lines.append("blocks:")
        lines.append(s["blocks"].rstrip("\n"))
    lines.append("layers:")
    lines.append(s["layers"].rstrip("\n"))
    return "\n".join(lines) + "\n"


def build(name, builder, outdir):
    torch.manual_seed(zlib.crc32(name.encode()))
    r = R(name)
    s = builder(r)
    d = os.path.join(outdir, name)
    if os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(d)
    params = s["params"]
    has_weights = bool(params)
    if has_weights:
        kiln_ref.save_safetensors(os.path.join(d, "weights.safetensors"), params, s["dtypes"], s["metadata"])
    if s["extra_weights"]:
        kiln_ref.save_safetensors(os.path.join(d, s["extra_weights"][0]), s["extra_weights"][1])
    with open(os.path.join(d, "model.yaml"), "w") as f:
        f.write(yaml_text(name, s, has_weights))

    # the expected outputs, from the per-case torch code
    P = {}
    for k, v in list(params.items()) + list((s["extra_weights"] or ("", {}))[1].items()):
        if np.issubdtype(np.asarray(v).dtype, np.floating):
            P[k] = T(v)
    xs = [T(a) for _, a, _ in s["inputs"]]
    with torch.no_grad():
        outs = s["ref"](*xs, P)
    if not isinstance(outs, (list, tuple)):
        outs = [outs]
    for i, (_, a, _) in enumerate(s["inputs"]):
        np.save(os.path.join(d, "in%d.npy" % i), np.ascontiguousarray(a, dtype=np.float32))
    for i, o in enumerate(outs):
        o = o.detach().double().numpy()
        if not np.all(np.isfinite(o)):
            raise SystemExit("%s: output %d is not finite" % (name, i))
        np.save(os.path.join(d, "out%d.npy" % i), np.ascontiguousarray(o.astype(np.float32)))

    # cross-check: the YAML read by kiln_ref must give the same result
    model = kiln_ref.Model(os.path.join(d, "model.yaml"))
    feeds = {n: a for n, a, _ in s["inputs"]}
    with torch.no_grad():
        got = model.run(feeds)
    if len(got) != len(outs):
        raise SystemExit("%s: kiln_ref gives %d outputs, torch %d" % (name, len(got), len(outs)))
    for i, (g, o) in enumerate(zip(got, outs)):
        if list(g.shape) != list(o.shape):
            raise SystemExit("%s: output %d shape %s by kiln_ref, %s by torch" %
                             (name, i, list(g.shape), list(o.shape)))
        err = float(((g - o.double()).abs() / o.double().abs().clamp(min=1.0)).max()) if g.numel() else 0.0
        if err > 1e-9:
            raise SystemExit("%s: output %d differs between kiln_ref and torch by %g" % (name, i, err))
    all_keys = set(params) | set((s["extra_weights"] or ("", {}))[1])
    unread = {k for k in all_keys - model.used_keys - s["unused"] if not k.endswith("num_batches_tracked")}
    if unread:
        raise SystemExit("%s: weights no layer reads: %s" % (name, sorted(unread)))
    return [tuple(o.shape) for o in outs]


def main():
    ap = argparse.ArgumentParser(description="generate the torch fixtures")
    root = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    ap.add_argument("--out", default=os.path.join(root, "tests", "fixtures", "torch"))
    ap.add_argument("--only", nargs="*")
    ap.add_argument("--list", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    names = [n for n, _ in CASES]
    if len(set(names)) != len(names):
        raise SystemExit("duplicate case names")
    if args.list:
        print("\n".join(names))
        return
    os.makedirs(args.out, exist_ok=True)
    for n, b in CASES:
        if args.only and n not in args.only:
            continue
        shapes = build(n, b, args.out)
        print("%-32s %s" % (n, " ".join(str(list(s)) for s in shapes)))
    if not args.only:
        keep = set(names)
        for entry in os.listdir(args.out):
            p = os.path.join(args.out, entry)
            if os.path.isdir(p) and entry not in keep:
                shutil.rmtree(p)
        with open(os.path.join(args.out, "MANIFEST"), "w") as f:
            f.write("\n".join(names) + "\n")
        total = 0
        for dp, _, fs in os.walk(args.out):
            total += sum(os.path.getsize(os.path.join(dp, f)) for f in fs)
        print("%d cases, %d bytes" % (len(names), total))


if __name__ == "__main__":
    main()
