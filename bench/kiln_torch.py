"""The benchmark's PyTorch side: one model description, one set of weights.

From a kiln model (YAML) this module

  - reads the layers with tools/kiln_ref.py (the project's independent PyTorch
    reading of the format) and infers every value's shape by running it once;
  - generates the weights with a fixed seed (Kaiming-uniform dense/conv
    weights, small biases, batch-norm scales and running statistics away
    from 0/1 so that folding them is actually exercised) and saves them as
    safetensors under the parameter keys the YAML reads;
  - writes a derived YAML next to them (`weights:` instead of `init:`);
  - builds a float32 torch.nn.Module whose forward() is straight-line
    Python generated from the layer list (what a hand-written module would
    do: one torch call per layer, attributes resolved in advance), with the
    same weights registered as buffers;
  - computes the float64 reference outputs with kiln_ref;
  - exports the module to ONNX (dynamic batch).

Every runtime of the benchmark is checked against the float64 reference on
the same inputs before it is timed.
"""

import hashlib
import json
import math
import os
import re
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import kiln_ref  # noqa: E402
from kiln_ref import _bool, _float, _int, _ints, _pair  # noqa: E402

ONNX_OPSET = 17


# --------------------------------------------------------------------------
# weights


def _gen_param(g, op, role, key, shape):
    """One parameter as float32, from generator g."""
    shape = list(shape)

    def u(lo, hi):
        return (torch.rand(shape, generator=g, dtype=torch.float64) * (hi - lo) + lo).float().numpy()

    if op == "batchnorm":
        if role == "weight" or role == "running_var":
            return u(0.5, 1.5)
        return u(-0.1, 0.1)  # bias, running_mean
    if op == "layernorm":
        return u(0.5, 1.5) if role == "weight" else u(-0.1, 0.1)
    if role == "bias":
        return u(-0.1, 0.1)
    if role == "weight" and len(shape) >= 2:
        fan_in = int(np.prod(shape[1:]))
        a = math.sqrt(3.0 / fan_in)  # variance 1/fan_in
        return u(-a, a)
    return u(-1.0, 1.0)


class _Capture(kiln_ref.Model):
    """kiln_ref.Model that generates every parameter (ignoring any weights
    file and init) and records shapes of all values."""

    def __init__(self, path, seed):
        super().__init__(path)
        self.weights = {}
        self.gen = torch.Generator().manual_seed(seed)
        self.generated = {}
        self.roles = {}
        for L in self.layers:
            for role, key in L.params.items():
                self.roles.setdefault(key, (L.op, role))

    def param(self, key, shape):
        self.used_keys.add(key)
        if key not in self.generated:
            if shape is None:
                raise kiln_ref.ModelError("constant %s: the benchmark cannot generate it" % key)
            op, role = self.roles[key]
            self.generated[key] = _gen_param(self.gen, op, role, key, shape)
        a = self.generated[key]
        if shape is not None and list(a.shape) != list(shape):
            raise kiln_ref.ModelError("param %s: shape %s, layer needs %s" % (key, list(a.shape), shape))
        return torch.from_numpy(a.astype(np.float64))


def derived_yaml_text(text, weights_file):
    """The model text with `weights: FILE` instead of `init:` / `weights:`."""
    text2, n = re.subn(r"(?m)^(init|weights):.*$", "", text)
    lines = text2.split("\n")
    # put `weights:` right after the `name:` line
    for i, line in enumerate(lines):
        if re.match(r"^name:", line):
            lines.insert(i + 1, "weights: %s" % weights_file)
            break
    else:
        raise ValueError("no top-level name: line")
    return "\n".join(lines)


# --------------------------------------------------------------------------
# float32 torch module generated from the layer list

_UNARY_EXPR = {
    "relu": "F.relu({x})",
    "relu6": "F.relu6({x})",
    "sigmoid": "torch.sigmoid({x})",
    "tanh": "torch.tanh({x})",
    "silu": "F.silu({x})",
    "hardswish": "F.hardswish({x})",
    "hardsigmoid": "F.hardsigmoid({x})",
    "exp": "torch.exp({x})",
    "sqrt": "torch.sqrt({x})",
    "neg": "torch.neg({x})",
}


def _unary(op, a, x):
    if op in _UNARY_EXPR:
        return _UNARY_EXPR[op].format(x=x)
    if op == "gelu":
        return "F.gelu(%s, approximate=%r)" % (x, str(a.get("approximate", "none")))
    if op == "leaky_relu":
        return "F.leaky_relu(%s, %r)" % (x, _float(a.get("alpha", "0.01"), "alpha"))
    if op == "elu":
        return "F.elu(%s, %r)" % (x, _float(a.get("alpha", "1.0"), "alpha"))
    if op == "clip":
        lo = _float(a["min"], "min") if "min" in a else None
        hi = _float(a["max"], "max") if "max" in a else None
        return "torch.clamp(%s, %r, %r)" % (x, lo, hi)
    raise ValueError("unary op %s" % op)


def _act(expr, act):
    if act is None:
        return expr
    if isinstance(act, dict):
        act = dict(act)
        op = act.pop("op")
        return _unary(op, act, expr)
    return _unary(act, {}, expr)


class GeneratedModule(nn.Module):
    """forward(*inputs) -> output or tuple of outputs, float32."""

    def __init__(self, source, params, n_outputs):
        super().__init__()
        self._names = []
        for i, t in enumerate(params):
            self.register_buffer("p%d" % i, t)
            self._names.append("p%d" % i)
        self.source = source
        scope = {"torch": torch, "F": F}
        exec(compile(source, "<kiln model>", "exec"), scope)
        self._fn = scope["forward"]
        self.n_outputs = n_outputs

    def forward(self, *xs):
        return self._fn(self, *xs)


def build_module(model, shapes):
    """model: kiln_ref.Model with weights loaded (float32 values used);
    shapes: {value name: shape with batch 1}. Returns GeneratedModule."""
    params = []
    pindex = {}

    def P(key):
        if key not in pindex:
            pindex[key] = len(params)
            params.append(torch.from_numpy(np.ascontiguousarray(model.weights[key], dtype=np.float32)))
        return "self.p%d" % pindex[key]

    var = {}
    in_names = []
    for i, (n, _) in enumerate(model.inputs):
        var[n] = "x%d" % i
        in_names.append("x%d" % i)
    lines = ["def forward(self, %s):" % ", ".join(in_names)]
    nvar = [0]

    def emit(name, expr):
        v = "v%d" % nvar[0]
        nvar[0] += 1
        lines.append("    %s = %s" % (v, expr))
        var[name] = v

    for L in model.layers:
        a, op = L.attrs, L.op
        xs = [var[o] for o in L.operands]
        ishape = [shapes[o] for o in L.operands]
        if op in ("identity", "dropout"):
            var[L.name] = xs[0]
            continue
        if op == "dense":
            b = P(L.params["bias"]) if "bias" in L.params else "None"
            emit(L.name, _act("F.linear(%s, %s, %s)" % (xs[0], P(L.params["weight"]), b), a.get("activation")))
        elif op == "conv2d":
            k = _pair(a["kernel"], "kernel")
            s = _pair(a.get("stride", "1"), "stride")
            d = _pair(a.get("dilation", "1"), "dilation")
            g = _int(a.get("groups", "1"), "groups")
            t, l, bo, r = _pads(a.get("padding", "0"), ishape[0], k, s, d)
            x = xs[0]
            if t != bo or l != r:
                x = "F.pad(%s, (%d, %d, %d, %d))" % (x, l, r, t, bo)
                t = l = 0
            b = P(L.params["bias"]) if "bias" in L.params else "None"
            e = "F.conv2d(%s, %s, %s, (%d, %d), (%d, %d), (%d, %d), %d)" % (
                x, P(L.params["weight"]), b, s[0], s[1], t, l, d[0], d[1], g)
            emit(L.name, _act(e, a.get("activation")))
        elif op in ("maxpool2d", "avgpool2d"):
            k = _pair(a["kernel"], "kernel")
            s = _pair(a.get("stride", a["kernel"]), "stride")
            d = _pair(a.get("dilation", "1"), "dilation")
            ceil = _bool(a.get("ceil_mode", "false"), "ceil_mode")
            t, l, bo, r = _pads(a.get("padding", "0"), ishape[0], k, s, d)
            sym = t == bo and l == r and 2 * t <= k[0] and 2 * l <= k[1]
            if op == "maxpool2d":
                if sym:
                    e = "F.max_pool2d(%s, %r, %r, %r, %r, ceil_mode=%r)" % (xs[0], tuple(k), tuple(s), (t, l), tuple(d), ceil)
                elif ceil:
                    raise ValueError("asymmetric padding with ceil_mode")
                else:
                    e = "F.max_pool2d(F.pad(%s, (%d, %d, %d, %d), value=float('-inf')), %r, %r, 0, %r)" % (
                        xs[0], l, r, t, bo, tuple(k), tuple(s), tuple(d))
            else:
                cip = _bool(a.get("count_include_pad", "true"), "count_include_pad")
                if sym:
                    e = "F.avg_pool2d(%s, %r, %r, %r, ceil_mode=%r, count_include_pad=%r)" % (
                        xs[0], tuple(k), tuple(s), (t, l), ceil, cip)
                elif ceil or not cip:
                    raise ValueError("asymmetric avgpool padding: not modelled by the benchmark")
                else:
                    e = "F.avg_pool2d(F.pad(%s, (%d, %d, %d, %d)), %r, %r, 0)" % (xs[0], l, r, t, bo, tuple(k), tuple(s))
            emit(L.name, e)
        elif op == "global_avgpool":
            emit(L.name, "F.adaptive_avg_pool2d(%s, 1)" % xs[0])
        elif op == "batchnorm":
            p = L.params
            emit(L.name, "F.batch_norm(%s, %s, %s, %s, %s, False, 0.0, %r)" % (
                xs[0], P(p["running_mean"]), P(p["running_var"]), P(p["weight"]), P(p["bias"]),
                _float(a.get("eps", "1e-5"), "eps")))
        elif op == "layernorm":
            c = ishape[0][-1]
            w = P(L.params["weight"]) if "weight" in L.params else "None"
            b = P(L.params["bias"]) if "bias" in L.params else "None"
            emit(L.name, "F.layer_norm(%s, (%d,), %s, %s, %r)" % (xs[0], c, w, b, _float(a.get("eps", "1e-5"), "eps")))
        elif op in kiln_ref.UNARY:
            emit(L.name, _unary(op, a, xs[0]))
        elif op in ("softmax", "log_softmax"):
            emit(L.name, "F.%s(%s, %d)" % (op, xs[0], _int(a.get("axis", "-1"), "axis")))
        elif op in kiln_ref.BINARY:
            if "scalar" in a:
                sv = repr(_float(a["scalar"], "scalar"))
                rev = _bool(a.get("reverse", "false"), "reverse")
                lhs, rhs = (sv, xs[0]) if rev else (xs[0], sv)
                sym = {"add": "+", "sub": "-", "mul": "*", "div": "/"}
                if op in sym:
                    e = "(%s %s %s)" % (lhs, sym[op], rhs)
                else:
                    e = "torch.clamp(%s, %s=%s)" % (xs[0], "min" if op == "max" else "max", sv)
            else:
                e = "torch.%s(%s, %s)" % ({"max": "maximum", "min": "minimum"}.get(op, op), xs[0], xs[1])
            emit(L.name, e)
        elif op == "matmul":
            y = xs[1]
            if _bool(a.get("transpose_b", "false"), "transpose_b"):
                y = "%s.transpose(-1, -2)" % y
            emit(L.name, "torch.matmul(%s, %s)" % (xs[0], y))
        elif op == "concat":
            emit(L.name, "torch.cat([%s], %d)" % (", ".join(xs), _int(a.get("axis", "1"), "axis")))
        elif op == "flatten":
            ax = _int(a.get("axis", "1"), "axis") % len(ishape[0])
            emit(L.name, "torch.flatten(%s, %d)" % (xs[0], ax))
        elif op == "reshape":
            shp = _ints(a["shape"], "shape")
            ent = []
            for i, v in enumerate(shp):
                if i == 0:
                    ent.append("%s.shape[0]" % xs[0])
                elif v == 0:
                    ent.append(str(ishape[0][i]))
                else:
                    ent.append(str(v))
            emit(L.name, "%s.reshape(%s)" % (xs[0], ", ".join(ent)))
        elif op == "transpose":
            perm = [p % len(ishape[0]) for p in _ints(a["perm"], "perm")]
            emit(L.name, "%s.permute(%s)" % (xs[0], ", ".join(map(str, perm))))
        elif op == "mean":
            axes = [p % len(ishape[0]) for p in _ints(a["axes"], "axes")]
            emit(L.name, "%s.mean(dim=%r, keepdim=%r)" % (xs[0], tuple(axes), _bool(a.get("keepdims", "true"), "keepdims")))
        elif op == "pad":
            t, l, b, r = _ints(a["pads"], "pads")
            emit(L.name, "F.pad(%s, (%d, %d, %d, %d), value=%r)" % (xs[0], l, r, t, b, _float(a.get("value", "0"), "value")))
        elif op == "constant":
            emit(L.name, P(L.params["value"]))
        else:
            raise ValueError("op %s not handled by the benchmark" % op)
    outs = [var[o] for o in model.outputs]
    lines.append("    return %s" % (outs[0] if len(outs) == 1 else "(%s,)" % ", ".join(outs)))
    return GeneratedModule("\n".join(lines) + "\n", params, len(outs))


def _pads(p, shape, k, s, d):
    """kiln_ref's padding rule on a static shape."""
    class _X:
        pass
    x = _X()
    x.shape = shape
    return kiln_ref.Model._pads(None, p, x, k, s, d)


# --------------------------------------------------------------------------
# preparation of one model


def _digest(*parts):
    h = hashlib.sha256()
    for p in parts:
        h.update(p if isinstance(p, bytes) else str(p).encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def prepare(yaml_path, out_dir, batches, seed=None, log=print):
    """Writes, under out_dir: NAME.safetensors, NAME.yaml (derived), NAME.onnx,
    b{N}.in{i}.bin, b{N}.ref{j}.bin (raw little-endian float32) and
    manifest.json, which it returns. Skips the work when the manifest is
    up to date."""
    with open(yaml_path) as f:
        text = f.read()
    mine = []
    for fn in ("kiln_torch.py",):
        with open(os.path.join(HERE, fn), "rb") as f:
            mine.append(f.read())
    with open(os.path.join(ROOT, "tools", "kiln_ref.py"), "rb") as f:
        mine.append(f.read())
    stamp = _digest(text, sorted(batches), seed, torch.__version__, *mine)
    man_path = os.path.join(out_dir, "manifest.json")
    if os.path.exists(man_path):
        with open(man_path) as f:
            man = json.load(f)
        if man.get("stamp") == stamp and all(os.path.exists(os.path.join(out_dir, p)) for p in man["files"]):
            return man
    os.makedirs(out_dir, exist_ok=True)

    if seed is None:
        m = re.search(r"(?m)^init:\s*\{\s*random:\s*(\d+)\s*\}", text)
        seed = int(m.group(1)) if m else 0
    torch.manual_seed(seed)

    # 1. shapes + weights
    cap = _Capture(yaml_path, seed)
    shapes = {}
    for n, dims in cap.inputs:
        shapes[n] = [1 if d is None else d for d in dims]
    feeds1 = {n: np.zeros(s, np.float32) for n, s in shapes.items()}

    def trace(L, v):
        shapes[L.name] = list(v.shape)
    with torch.no_grad():
        cap.run(feeds1, trace)
    name = cap.name
    wfile = name + ".safetensors"
    kiln_ref.save_safetensors(os.path.join(out_dir, wfile), cap.generated)
    ytext = derived_yaml_text(text, wfile)
    yfile = name + ".yaml"
    with open(os.path.join(out_dir, yfile), "w") as f:
        f.write(ytext)
    nparams = sum(int(np.prod(a.shape)) for a in cap.generated.values())

    # 2. the derived model, as every runtime will read it
    model = kiln_ref.Model(os.path.join(out_dir, yfile))
    if cap.batch_name is None:
        batches = [1]
    module = build_module(model, shapes).eval()

    # 3. inputs and float64 reference outputs
    files = [wfile, yfile]
    bmax = max(batches)
    rng = np.random.default_rng(seed + 12345)
    big = {n: rng.standard_normal([bmax] + list(s[1:])).astype(np.float32) for n, s in shapes.items()
           if n in dict(model.inputs)}
    man = {"name": name, "source": os.path.abspath(yaml_path), "yaml": yfile, "weights": wfile,
           "params": nparams, "batched": cap.batch_name is not None,
           "inputs": [{"name": n, "shape": shapes[n]} for n, _ in model.inputs],
           "outputs": [{"name": o, "shape": shapes[o]} for o in model.outputs],
           "shapes": shapes, "batches": {}}
    for b in sorted(batches):
        entry = {"inputs": [], "refs": []}
        feeds = {}
        for i, (n, _) in enumerate(model.inputs):
            x = np.ascontiguousarray(big[n][:b])
            feeds[n] = x
            fn = "b%d.in%d.bin" % (b, i)
            x.astype("<f4").tofile(os.path.join(out_dir, fn))
            entry["inputs"].append(fn)
            files.append(fn)
        with torch.no_grad():
            refs = model.run(feeds)
        for j, r in enumerate(refs):
            fn = "b%d.ref%d.bin" % (b, j)
            r.numpy().astype("<f4").tofile(os.path.join(out_dir, fn))
            entry["refs"].append(fn)
            files.append(fn)
        # the float32 module must agree with the reference (checks this file)
        with torch.no_grad():
            got = module(*[torch.from_numpy(feeds[n]) for n, _ in model.inputs])
        got = got if isinstance(got, tuple) else (got,)
        entry["module_err"] = max(rel_err(g.numpy(), r.numpy()) for g, r in zip(got, refs))
        man["batches"][str(b)] = entry
        log("  %s batch %d: float32 module vs float64 reference: max error %.3g" % (name, b, entry["module_err"]))

    # 4. ONNX
    ofile = name + ".onnx"
    export_onnx(module, model, shapes, os.path.join(out_dir, ofile))
    files.append(ofile)
    man["onnx"] = ofile
    man["opset"] = ONNX_OPSET
    man["files"] = files
    man["stamp"] = stamp
    with open(man_path, "w") as f:
        json.dump(man, f, indent=1)
    with open(os.path.join(out_dir, "forward.py"), "w") as f:
        f.write(module.source)
    return man


def rel_err(got, want):
    """max |got - want| / max |want| (inf for NaN or a shape mismatch)."""
    got = np.asarray(got, np.float64)
    want = np.asarray(want, np.float64)
    if got.shape != want.shape or not np.all(np.isfinite(got)):
        return math.inf
    scale = float(np.max(np.abs(want))) if want.size else 0.0
    diff = float(np.max(np.abs(got - want))) if want.size else 0.0
    return diff / max(scale, 1e-30)


def export_onnx(module, model, shapes, path):
    names_in = [n for n, _ in model.inputs]
    names_out = list(model.outputs)
    ex = tuple(torch.zeros([1] + list(shapes[n][1:])) for n in names_in)
    dyn = {}
    if model.batch_name is not None:
        for n in names_in + names_out:
            dyn[n] = {0: "batch"}
    with torch.no_grad():
        torch.onnx.export(module, ex, path, input_names=names_in, output_names=names_out,
                          dynamic_axes=dyn or None, opset_version=ONNX_OPSET, do_constant_folding=True)


def load_module(out_dir):
    """The float32 module of a prepared model directory, and its manifest."""
    with open(os.path.join(out_dir, "manifest.json")) as f:
        man = json.load(f)
    model = kiln_ref.Model(os.path.join(out_dir, man["yaml"]))
    return build_module(model, man["shapes"]).eval(), man


def _main(argv):
    import argparse
    ap = argparse.ArgumentParser(description="prepare one model for the benchmark")
    ap.add_argument("yaml")
    ap.add_argument("out_dir")
    ap.add_argument("--batches", default="1,32")
    ap.add_argument("--threads", type=int, default=0)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads or os.cpu_count() or 1)
    import warnings
    warnings.filterwarnings("ignore")
    man = prepare(a.yaml, a.out_dir, [int(b) for b in a.batches.split(",")],
                  log=lambda s: print(s, file=sys.stderr, flush=True))
    print(json.dumps({k: man[k] for k in ("name", "params", "batched", "opset")}))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
