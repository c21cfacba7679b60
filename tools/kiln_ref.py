#!/usr/bin/python3
"""kiln_ref: an independent PyTorch reading of FORMAT.md, for tools and checks.

This is not part of kiln. It loads a model written to the kiln model format
(docs/format.md, the contract: YAML + safetensors), expands blocks, and
evaluates the layers with torch in float64.
gen_fixtures.py uses it to cross-check every fixture (the fixture's expected
output is computed with plain torch code written separately; the YAML must
give the same result when read by this module), and train_digits.py uses it
to check that the exported YAML and weights reproduce the trained network.

Also: a safetensors writer/reader (no `safetensors` package needed).

    python3 tools/kiln_ref.py MODEL.yaml [--batch N]     # print every layer's shape
    python3 tools/kiln_ref.py MODEL.yaml --input NAME=FILE.npy ...   # run, print outputs

Parameters missing from the weights get arbitrary random values when the
model has `init: {random: SEED}` (not kiln's algorithm: shapes only).
"""

import json
import math
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F
import yaml

# --------------------------------------------------------------------------
# safetensors

_ST_DTYPES = {
    "F64": np.float64, "F32": np.float32, "F16": np.float16,
    "I64": np.int64, "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8,
    "BOOL": np.bool_,
}


def _bf16_bits(a):
    """float32 array -> uint16 bfloat16 bits (round to nearest even)."""
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounding = ((u >> 16) & 1) + 0x7FFF
    return ((u + rounding) >> 16).astype(np.uint16)


def save_safetensors(path, tensors, dtypes=None, metadata=None):
    """tensors: ordered {name: array-like}; dtypes: {name: 'F32'|'F16'|'BF16'|'F64'|'I64'}
    (default F32, I64 for integer arrays). Returns the header size."""
    dtypes = dtypes or {}
    header = {}
    if metadata is not None:
        header["__metadata__"] = metadata
    blobs = []
    offset = 0
    for name, t in tensors.items():
        if isinstance(t, torch.Tensor):
            t = t.detach().cpu().numpy()
        a = np.asarray(t)
        dt = dtypes.get(name)
        if dt is None:
            dt = "I64" if np.issubdtype(a.dtype, np.integer) else "F32"
        if dt == "BF16":
            raw = _bf16_bits(a.astype(np.float32)).astype("<u2").tobytes()
        else:
            raw = np.ascontiguousarray(a.astype(np.dtype(_ST_DTYPES[dt]).newbyteorder("<"))).tobytes()
        header[name] = {"dtype": dt, "shape": [int(d) for d in a.shape],
                        "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    hjson = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hjson += b" " * ((8 - len(hjson) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for b in blobs:
            f.write(b)
    return len(hjson)


def load_safetensors(path):
    """{name: np.ndarray} (BF16 widened to float32)."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n].decode("utf-8"))
    base = 8 + n
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        b, end = e["data_offsets"]
        raw = data[base + b:base + end]
        if e["dtype"] == "BF16":
            bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
            a = bits.view(np.float32)
        else:
            a = np.frombuffer(raw, dtype=np.dtype(_ST_DTYPES[e["dtype"]]).newbyteorder("<"))
        out[name] = a.reshape(e["shape"]).copy()
    return out


# --------------------------------------------------------------------------
# YAML reading (every scalar as text, as kiln does)

class ModelError(Exception):
    pass


def _int(v, what):
    if isinstance(v, list):
        raise ModelError("%s: expected an integer, got a list" % what)
    try:
        return int(str(v), 10)
    except ValueError:
        raise ModelError("%s: expected an integer, got %r" % (what, v))


def _float(v, what):
    f = float(str(v))
    if math.isinf(f) or math.isnan(f):
        raise ModelError("%s: inf/nan not allowed" % what)
    return f


def _bool(v, what):
    if v == "true":
        return True
    if v == "false":
        return False
    raise ModelError("%s: expected true/false, got %r" % (what, v))


def _ints(v, what):
    if isinstance(v, list):
        return [_int(x, what) for x in v]
    return [_int(v, what)]


def _pair(v, what):
    x = _ints(v, what)
    if len(x) == 1:
        return x * 2
    if len(x) != 2:
        raise ModelError("%s: expected k or [kh, kw]" % what)
    return x


UNARY = {"relu", "relu6", "sigmoid", "tanh", "silu", "hardswish", "hardsigmoid", "exp",
         "sqrt", "neg", "gelu", "leaky_relu", "elu", "clip", "erf", "abs", "log", "softplus"}
BINARY = {"add", "sub", "mul", "div", "max", "min", "pow"}

# op -> allowed attribute keys
OP_ATTRS = {
    "dense": {"units", "bias", "activation"},
    "conv2d": {"filters", "kernel", "stride", "padding", "dilation", "groups", "bias", "activation"},
    "maxpool2d": {"kernel", "stride", "padding", "dilation", "ceil_mode"},
    "avgpool2d": {"kernel", "stride", "padding", "ceil_mode", "count_include_pad"},
    "global_avgpool": set(),
    "batchnorm": {"eps"},
    "layernorm": {"eps", "affine"},
    "gelu": {"approximate"},
    "leaky_relu": {"alpha"},
    "elu": {"alpha"},
    "clip": {"min", "max"},
    "softmax": {"axis"},
    "log_softmax": {"axis"},
    "matmul": {"transpose_b"},
    "concat": {"axis"},
    "flatten": {"axis"},
    "reshape": {"shape"},
    "transpose": {"perm"},
    "mean": {"axes", "keepdims"},
    "pad": {"pads", "value"},
    "identity": set(), "dropout": set(), "constant": set(),
    # version 1.1
    "slice": {"axis", "start", "end", "step"},
    "expand": {"shape"},
    "resize": {"size", "scale", "mode", "align_corners"},
    "conv_transpose2d": {"filters", "kernel", "stride", "padding", "output_padding", "dilation", "groups",
                         "bias", "activation"},
    "adaptive_avgpool2d": {"size"},
    "group_norm": {"groups", "eps", "affine"},
    "prelu": set(),
    "reduce_sum": {"axes", "keepdims"}, "reduce_max": {"axes", "keepdims"}, "reduce_min": {"axes", "keepdims"},
    "hardsigmoid": {"alpha", "beta"},
}
for _u in ("relu", "relu6", "sigmoid", "tanh", "silu", "hardswish", "exp", "sqrt", "neg",
           "erf", "abs", "log", "softplus"):
    OP_ATTRS[_u] = set()
for _b in BINARY:
    OP_ATTRS[_b] = {"scalar", "reverse"}

COMMON_KEYS = {"name", "op", "use", "input", "inputs", "params", "precision", "with"}


def _subst(node, args):
    """Replaces every scalar that is exactly `$name` by the argument's value."""
    if isinstance(node, str):
        if node.startswith("$") and node[1:] in args:
            return args[node[1:]]
        return node
    if isinstance(node, list):
        return [_subst(x, args) for x in node]
    if isinstance(node, dict):
        return {k: _subst(v, args) for k, v in node.items()}
    return node


class Layer:
    __slots__ = ("name", "op", "attrs", "operands", "params")

    def __init__(self, name, op, attrs, operands, params):
        self.name, self.op, self.attrs, self.operands, self.params = name, op, attrs, operands, params


def _param_roles(op, attrs):
    if op in ("dense", "conv2d", "conv_transpose2d"):
        return ["weight"] + (["bias"] if _bool(attrs.get("bias", "true"), "bias") else [])
    if op == "group_norm":
        return ["weight", "bias"] if _bool(attrs.get("affine", "true"), "affine") else []
    if op == "prelu":
        return ["weight"]
    if op == "batchnorm":
        return ["weight", "bias", "running_mean", "running_var"]
    if op == "layernorm":
        return ["weight", "bias"] if _bool(attrs.get("affine", "true"), "affine") else []
    if op == "constant":
        return ["value"]
    return []


def _expand(layer_list, scope, prefix, blocks, first_default, out, stack):
    """Expands layers into `out` (a list of Layer). scope maps visible names to
    global value names. Returns the global name of the last layer."""
    prev = first_default
    last = None
    for raw in layer_list:
        if not isinstance(raw, dict):
            raise ModelError("a layer must be a mapping")
        for k in raw:
            if k not in COMMON_KEYS and ("op" not in raw or k not in OP_ATTRS.get(raw["op"], set())):
                raise ModelError("layer %r: unknown key %r" % (raw.get("name"), k))
        lname = str(raw["name"])
        gname = prefix + lname
        if "input" in raw and "inputs" in raw:
            raise ModelError("layer %s: both input and inputs" % gname)
        if "input" in raw:
            srcs = [raw["input"]]
        elif "inputs" in raw:
            srcs = list(raw["inputs"])
        else:
            srcs = None
        if srcs is not None:
            operands = []
            for s in srcs:
                s = str(s)
                if s not in scope:
                    raise ModelError("layer %s: unknown operand %r" % (gname, s))
                operands.append(scope[s])
        if "use" in raw:
            bname = str(raw["use"])
            if bname not in blocks:
                raise ModelError("layer %s: unknown block %r" % (gname, bname))
            if bname in stack:
                raise ModelError("recursive block %r" % bname)
            b = blocks[bname]
            if srcs is None:
                operands = [prev]
            binputs = [str(x) for x in b.get("inputs", ["x"])]
            if len(operands) != len(binputs):
                raise ModelError("layer %s: block %s takes %d operands, got %d" %
                                 (gname, bname, len(binputs), len(operands)))
            bargs = b.get("args", {}) or {}
            if isinstance(bargs, list):
                bargs = {str(a): None for a in bargs}
            with_ = raw.get("with", {}) or {}
            args = {}
            for a, d in bargs.items():
                args[str(a)] = None if d in ("~", "", "null") else d
            for a, v in with_.items():
                if str(a) not in args:
                    raise ModelError("layer %s: unknown argument %r" % (gname, a))
                args[str(a)] = v
            for a, v in args.items():
                if v is None:
                    raise ModelError("layer %s: missing argument %r" % (gname, a))
            inner_scope = dict(zip(binputs, operands))
            tlayers = _subst(b["layers"], args)
            last_inner = _expand(tlayers, inner_scope, gname + ".", blocks, operands[0], out,
                                 stack + [bname])
            if "output" in b:
                o = str(_subst(b["output"], args))
                if o not in inner_scope:
                    raise ModelError("block %s: unknown output %r" % (bname, o))
                result = inner_scope[o]
            else:
                result = last_inner
            # Refer to the instance by its name: an identity layer (no cost here).
            out.append(Layer(gname, "identity", {}, [result], {}))
        else:
            op = str(raw["op"])
            if op not in OP_ATTRS:
                raise ModelError("layer %s: unknown op %r" % (gname, op))
            attrs = {k: v for k, v in raw.items() if k in OP_ATTRS[op]}
            if op == "constant":
                operands = []
            elif srcs is None:
                operands = [prev]
            params = {}
            overrides = raw.get("params", {}) or {}
            roles = _param_roles(op, attrs)
            for r in overrides:
                if r not in roles:
                    raise ModelError("layer %s: op %s has no parameter %r" % (gname, op, r))
            for r in roles:
                params[r] = str(overrides[r]) if r in overrides else gname + "." + r
            out.append(Layer(gname, op, attrs, operands, params))
        if lname in scope:
            raise ModelError("duplicate name %r" % gname)
        scope[lname] = gname
        prev = gname
        last = gname
    return last


class Model:
    def __init__(self, path):
        self.path = path
        with open(path) as f:
            doc = yaml.load(f, Loader=yaml.BaseLoader)
        if doc.get("kiln") != "1":
            raise ModelError("kiln: 1 required")
        self.name = doc["name"]
        base = os.path.dirname(os.path.abspath(path))
        w = doc.get("weights")
        files = [] if w is None else (w if isinstance(w, list) else [w])
        self.weights = {}
        for fn in files:
            for k, v in load_safetensors(os.path.join(base, fn)).items():
                if k in self.weights:
                    raise ModelError("key %r in two weights files" % k)
                self.weights[k] = v
        self.init = doc.get("init")
        self.inputs = []
        self.batch_name = None
        for i in doc["inputs"]:
            shape = list(i["shape"])
            if not shape[0].lstrip("-").isdigit():
                self.batch_name = shape[0]
                dims = [None] + [_int(d, "shape") for d in shape[1:]]
            else:
                dims = [_int(d, "shape") for d in shape]
            self.inputs.append((i["name"], dims))
        self.layers = []
        scope = {n: n for n, _ in self.inputs}
        last = _expand(doc["layers"], scope, "", doc.get("blocks", {}) or {}, self.inputs[0][0],
                       self.layers, [])
        outs = doc.get("outputs")
        self.outputs = [str(o) for o in outs] if outs else [last]
        for o in self.outputs:
            if o not in scope:
                raise ModelError("unknown output %r" % o)
        self._rng = torch.Generator().manual_seed(int(self.init["random"]) if self.init else 0)
        self.used_keys = set()

    def param(self, key, shape):
        self.used_keys.add(key)
        if key in self.weights:
            t = torch.from_numpy(self.weights[key].astype(np.float64))
            if shape is not None and list(t.shape) != list(shape):
                raise ModelError("param %s: shape %s, layer needs %s" % (key, list(t.shape), shape))
            return t
        if self.init is None:
            raise ModelError("missing parameter %s" % key)
        if shape is None:
            raise ModelError("constant %s must come from the weights" % key)
        if key.endswith("running_var"):
            return torch.rand(shape, generator=self._rng, dtype=torch.float64) + 0.5
        fan_in = max(1, int(np.prod(shape[1:]))) if len(shape) > 1 else 1
        return (torch.rand(shape, generator=self._rng, dtype=torch.float64) * 2 - 1) / math.sqrt(fan_in)

    def run(self, feeds, trace=None):
        """feeds: {input name: array}; returns [output tensors (float64)]."""
        vals = {}
        self.batch = None
        for n, dims in self.inputs:
            t = torch.as_tensor(np.asarray(feeds[n]), dtype=torch.float64)
            want = list(dims)
            if want[0] is None:
                want[0] = t.shape[0]
                self.batch = t.shape[0]
            if list(t.shape) != want:
                raise ModelError("input %s: shape %s, expected %s" % (n, list(t.shape), want))
            vals[n] = t
        for L in self.layers:
            xs = [vals[o] for o in L.operands]
            try:
                vals[L.name] = self._eval(L, xs)
            except ModelError:
                raise
            except Exception as e:
                raise ModelError("layer %s (%s): %s" % (L.name, L.op, e))
            if trace is not None:
                trace(L, vals[L.name])
        return [vals[o] for o in self.outputs]

    # ------------------------------------------------------------------
    def _eval(self, L, xs):
        a, op = L.attrs, L.op
        if op == "dense":
            x = xs[0]
            units = _int(a["units"], "units")
            w = self.param(L.params["weight"], [units, x.shape[-1]])
            b = self.param(L.params["bias"], [units]) if "bias" in L.params else None
            return self._act(F.linear(x, w, b), a.get("activation"))
        if op == "conv2d":
            x = xs[0]
            k = _pair(a["kernel"], "kernel")
            s = _pair(a.get("stride", "1"), "stride")
            d = _pair(a.get("dilation", "1"), "dilation")
            g = _int(a.get("groups", "1"), "groups")
            f = _int(a["filters"], "filters")
            c = x.shape[1]
            w = self.param(L.params["weight"], [f, c // g] + k)
            b = self.param(L.params["bias"], [f]) if "bias" in L.params else None
            t, l, bo, r = self._pads(a.get("padding", "0"), x, k, s, d)
            if t != bo or l != r:
                x = F.pad(x, (l, r, t, bo))
                t = l = 0
            y = F.conv2d(x, w, b, stride=s, padding=(t, l), dilation=d, groups=g)
            return self._act(y, a.get("activation"))
        if op == "maxpool2d" or op == "avgpool2d":
            x = xs[0]
            k = _pair(a["kernel"], "kernel")
            s = _pair(a.get("stride", a["kernel"]), "stride")
            d = _pair(a.get("dilation", "1"), "dilation")
            ceil = _bool(a.get("ceil_mode", "false"), "ceil_mode")
            t, l, bo, r = self._pads(a.get("padding", "0"), x, k, s, d)
            sym = t == bo and l == r and 2 * t <= k[0] and 2 * l <= k[1]
            if op == "maxpool2d":
                if sym:
                    return F.max_pool2d(x, k, s, (t, l), d, ceil_mode=ceil)
                if ceil:
                    raise ModelError("asymmetric padding with ceil_mode: not modelled here")
                return F.max_pool2d(F.pad(x, (l, r, t, bo), value=-math.inf), k, s, 0, d)
            cip = _bool(a.get("count_include_pad", "true"), "count_include_pad")
            if sym:
                return F.avg_pool2d(x, k, s, (t, l), ceil_mode=ceil, count_include_pad=cip)
            if ceil:
                raise ModelError("asymmetric padding with ceil_mode: not modelled here")
            xp = F.pad(x, (l, r, t, bo))
            y = F.avg_pool2d(xp, k, s, 0)
            if cip:
                return y
            ones = F.pad(torch.ones_like(x[:1, :1]), (l, r, t, bo))
            cnt = F.avg_pool2d(ones, k, s, 0)
            return y / cnt
        if op == "global_avgpool":
            return xs[0].mean(dim=(2, 3), keepdim=True)
        if op == "batchnorm":
            x = xs[0]
            c = [x.shape[1]]
            p = {r: self.param(L.params[r], c) for r in L.params}
            return F.batch_norm(x, p["running_mean"], p["running_var"], p["weight"], p["bias"],
                                training=False, eps=_float(a.get("eps", "1e-5"), "eps"))
        if op == "layernorm":
            x = xs[0]
            c = [x.shape[-1]]
            w = self.param(L.params["weight"], c) if "weight" in L.params else None
            b = self.param(L.params["bias"], c) if "bias" in L.params else None
            return F.layer_norm(x, c, w, b, eps=_float(a.get("eps", "1e-5"), "eps"))
        if op in UNARY:
            return self._unary(op, a, xs[0])
        if op in ("softmax", "log_softmax"):
            ax = _int(a.get("axis", "-1"), "axis")
            return (F.softmax if op == "softmax" else F.log_softmax)(xs[0], dim=ax)
        if op in BINARY:
            if "scalar" in a:
                if len(xs) != 1:
                    raise ModelError("scalar needs one operand")
                x = xs[0]
                sv = torch.tensor(_float(a["scalar"], "scalar"), dtype=torch.float64)
                if _bool(a.get("reverse", "false"), "reverse"):
                    lhs, rhs = sv, x
                else:
                    lhs, rhs = x, sv
            else:
                if len(xs) != 2:
                    raise ModelError("binary op needs two operands")
                lhs, rhs = xs
            return {"add": torch.add, "sub": torch.sub, "mul": torch.mul, "div": torch.div,
                    "max": torch.maximum, "min": torch.minimum, "pow": torch.pow}[op](lhs, rhs)
        if op == "matmul":
            x, y = xs
            if _bool(a.get("transpose_b", "false"), "transpose_b"):
                y = y.transpose(-1, -2)
            return torch.matmul(x, y)
        if op == "concat":
            # an operand without the batch (axis 0 of 1) is repeated along it
            n0 = max(x.shape[0] for x in xs)
            xs = [x.expand(n0, *x.shape[1:]) if x.shape[0] == 1 else x for x in xs]
            return torch.cat(xs, dim=_int(a.get("axis", "1"), "axis"))
        if op == "flatten":
            ax = _int(a.get("axis", "1"), "axis") % xs[0].dim()
            if ax < 1:
                raise ModelError("flatten axis must be >= 1")
            return xs[0].flatten(ax)
        if op == "reshape":
            x = xs[0]
            shp = _ints(a["shape"], "shape")
            if shp[0] != 0:
                raise ModelError("reshape: first entry must be 0")
            shp = [x.shape[i] if v == 0 else v for i, v in enumerate(shp)]
            return x.reshape(shp)
        if op == "transpose":
            x = xs[0]
            perm = [p % x.dim() for p in _ints(a["perm"], "perm")]
            if perm[0] != 0:
                raise ModelError("transpose: perm must start with 0")
            return x.permute(perm)
        if op == "mean":
            x = xs[0]
            axes = [p % x.dim() for p in _ints(a["axes"], "axes")]
            if 0 in axes:
                raise ModelError("mean over the batch axis")
            return x.mean(dim=axes, keepdim=_bool(a.get("keepdims", "true"), "keepdims"))
        if op == "pad":
            t, l, b, r = _ints(a["pads"], "pads")
            return F.pad(xs[0], (l, r, t, b), value=_float(a.get("value", "0"), "value"))
        if op in ("identity", "dropout"):
            return xs[0]
        r = self._eval11(L, xs)
        if r is not None:
            return r
        if op == "constant":
            return self.param(L.params["value"], None)
        raise ModelError("op %s not handled" % op)

    def _eval11(self, L, xs):
        """The ops of FORMAT.md's version 1.1, or None."""
        a, op = L.attrs, L.op
        if op == "slice":
            x = xs[0]
            ax = _int(a["axis"], "axis") % x.dim()
            if ax == 0 and self.batch is not None:
                raise ModelError("slice of the batch axis")
            end = _int(a["end"], "end") if "end" in a else None
            idx = [slice(None)] * x.dim()
            idx[ax] = slice(_int(a.get("start", "0"), "start"), end, _int(a.get("step", "1"), "step"))
            return x[tuple(idx)]
        if op == "expand":
            shape = []
            for v in a["shape"]:
                if str(v).lstrip("-").isdigit():
                    shape.append(_int(v, "shape"))
                else:
                    if self.batch is None:
                        raise ModelError("expand: %r is no batch" % v)
                    shape.append(self.batch)
            return torch.broadcast_to(xs[0], shape)
        if op == "resize":
            x = xs[0]
            mode = a.get("mode", "nearest")
            if ("size" in a) == ("scale" in a):
                raise ModelError("resize: exactly one of size and scale")
            kw = {}
            if "size" in a:
                kw["size"] = _pair(a["size"], "size")
            else:
                sc = a["scale"] if isinstance(a["scale"], list) else [a["scale"]] * 2
                kw["scale_factor"] = [_float(v, "scale") for v in sc]
                kw["recompute_scale_factor"] = False
            align = _bool(a.get("align_corners", "false"), "align_corners")
            if mode in ("bilinear", "bicubic"):
                kw["align_corners"] = align
            elif align:
                raise ModelError("align_corners with %s" % mode)
            # every plane as a channel of one NCHW tensor (at least two: with
            # one channel PyTorch takes its channels-last kernel, whose
            # nearest mode copies when out = in whatever the scale)
            lead = x.shape[:-2]
            planes = x.reshape(1, -1, x.shape[-2], x.shape[-1])
            n = planes.shape[1]
            if n == 1:
                planes = torch.cat([planes, planes], 1)
            y = F.interpolate(planes, mode={"nearest_exact": "nearest-exact"}.get(mode, mode), **kw)[:, :n]
            return y.reshape(*lead, y.shape[-2], y.shape[-1])
        if op == "conv_transpose2d":
            x = xs[0]
            k = _pair(a["kernel"], "kernel")
            g = _int(a.get("groups", "1"), "groups")
            f = _int(a["filters"], "filters")
            w = self.param(L.params["weight"], [x.shape[1], f // g] + k)
            b = self.param(L.params["bias"], [f]) if "bias" in L.params else None
            y = F.conv_transpose2d(x, w, b, stride=_pair(a.get("stride", "1"), "stride"),
                                   padding=_pair(a.get("padding", "0"), "padding"),
                                   output_padding=_pair(a.get("output_padding", "0"), "output_padding"),
                                   groups=g, dilation=_pair(a.get("dilation", "1"), "dilation"))
            return self._act(y, a.get("activation"))
        if op == "adaptive_avgpool2d":
            return F.adaptive_avg_pool2d(xs[0], _pair(a["size"], "size"))
        if op == "group_norm":
            x = xs[0]
            c = [x.shape[1]]
            w = self.param(L.params["weight"], c) if "weight" in L.params else None
            b = self.param(L.params["bias"], c) if "bias" in L.params else None
            return F.group_norm(x, _int(a["groups"], "groups"), w, b, eps=_float(a.get("eps", "1e-5"), "eps"))
        if op == "prelu":
            x = xs[0]
            key = L.params["weight"]
            if key in self.weights and list(self.weights[key].shape) == [1]:
                w = self.param(key, [1])
            else:
                w = self.param(key, [x.shape[1]])
            return F.prelu(x, w)
        if op in ("reduce_sum", "reduce_max", "reduce_min"):
            x = xs[0]
            axes = [p % x.dim() for p in _ints(a["axes"], "axes")]
            if 0 in axes and self.batch is not None:
                raise ModelError("%s over the batch axis" % op)
            keep = _bool(a.get("keepdims", "true"), "keepdims")
            f = {"reduce_sum": torch.sum, "reduce_max": torch.amax, "reduce_min": torch.amin}[op]
            return f(x, dim=axes, keepdim=keep)
        return None

    def _pads(self, p, x, k, s, d):
        if isinstance(p, list):
            v = _ints(p, "padding")
        elif p == "valid":
            v = [0]
        elif p == "same":
            res = []
            for i in range(2):
                n = x.shape[2 + i]
                keff = (k[i] - 1) * d[i] + 1
                out = -(-n // s[i])
                tot = max((out - 1) * s[i] + keff - n, 0)
                res.append((tot // 2, tot - tot // 2))
            return res[0][0], res[1][0], res[0][1], res[1][1]
        else:
            v = [_int(p, "padding")]
        if len(v) == 1:
            return v[0], v[0], v[0], v[0]
        if len(v) == 2:
            return v[0], v[1], v[0], v[1]
        if len(v) == 4:
            return tuple(v)
        raise ModelError("padding: 1, 2 or 4 entries")

    def _act(self, y, act):
        if act is None:
            return y
        if isinstance(act, dict):
            act = dict(act)
            op = act.pop("op")
            return self._unary(op, act, y)
        return self._unary(act, {}, y)

    def _unary(self, op, a, x):
        if op not in UNARY:
            raise ModelError("%s is not a one-input elementwise op" % op)
        for k in a:
            if k not in OP_ATTRS[op]:
                raise ModelError("activation %s: unknown key %s" % (op, k))
        if op == "relu":
            return F.relu(x)
        if op == "relu6":
            return F.relu6(x)
        if op == "sigmoid":
            return torch.sigmoid(x)
        if op == "tanh":
            return torch.tanh(x)
        if op == "silu":
            return F.silu(x)
        if op == "hardswish":
            return F.hardswish(x)
        if op == "hardsigmoid":
            al = _float(a.get("alpha", "0.16666666666666666"), "alpha")
            be = _float(a.get("beta", "0.5"), "beta")
            if al == 1.0 / 6.0 and be == 0.5:
                return F.hardsigmoid(x)
            return torch.clamp(al * x + be, 0.0, 1.0)
        if op == "exp":
            return torch.exp(x)
        if op == "sqrt":
            return torch.sqrt(x)
        if op == "neg":
            return -x
        if op == "erf":
            return torch.erf(x)
        if op == "abs":
            return torch.abs(x)
        if op == "log":
            return torch.log(x)
        if op == "softplus":
            return F.softplus(x)
        if op == "gelu":
            return F.gelu(x, approximate=a.get("approximate", "none"))
        if op == "leaky_relu":
            return F.leaky_relu(x, _float(a.get("alpha", "0.01"), "alpha"))
        if op == "elu":
            return F.elu(x, _float(a.get("alpha", "1.0"), "alpha"))
        if op == "clip":
            lo = _float(a["min"], "min") if "min" in a else None
            hi = _float(a["max"], "max") if "max" in a else None
            if lo is None and hi is None:
                raise ModelError("clip needs min or max")
            return torch.clamp(x, lo, hi)
        raise ModelError(op)


def main(argv):
    import argparse
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--input", action="append", default=[])
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    m = Model(args.model)
    feeds = {}
    given = dict(s.split("=", 1) for s in args.input)
    for n, dims in m.inputs:
        if n in given:
            feeds[n] = np.load(given[n])
        else:
            shp = [args.batch if d is None else d for d in dims]
            feeds[n] = np.random.default_rng(0).standard_normal(shp)
    def trace(L, v):
        if not given:
            print("%-40s %-15s %s" % (L.name, L.op, list(v.shape)))

    outs = m.run(feeds, trace)
    keys = {key for L in m.layers for key in L.params.values()}
    print("model %s: %d layers (after block expansion), %d parameter tensors" %
          (m.name, len(m.layers), len(keys)))
    for name, o in zip(m.outputs, outs):
        print("output %s: %s" % (name, list(o.shape)))
        if given:
            print(o.numpy())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
