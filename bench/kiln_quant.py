"""The benchmark's reduced-precision side: calibration data, held-out data,
and the int8 QDQ ONNX model for ONNX Runtime.

    python3 bench/kiln_quant.py data DIR [--calib 64] [--heldout 256]
    python3 bench/kiln_quant.py augment DIR
    python3 bench/kiln_quant.py qdq DIR --ranges RANGES.json

DIR is a model directory written by kiln_torch.prepare() (manifest.json).

data (numpy; PyTorch for the reference outputs): deterministic
standard-normal samples of every model input, from seeds fixed per model
(the model's seed + 7001 for calibration, + 7002 for held-out), so that
every run and every runtime sees the same ones:

  - calib.safetensors: one F32 tensor per model input, named as the input,
    first axis = the 64 samples (kiln's --calibration format,
    docs/precision.md "Calibration"); calib.in<i>.bin the same as raw
    float32 (for PyTorch's and ONNX Runtime's calibration);
  - heldout.in<i>.bin: 256 held-out samples per input (raw float32), and
    heldout.ref<j>.bin: the float32 PyTorch module's outputs on them, the
    "f32 model" the accuracy columns compare with;
  - quant.json: what was written, and the stamp that caches it.

augment and qdq (only the onnx and numpy packages): build the int8 model
for ONNX Runtime from the float32 ONNX file, the way ONNX Runtime's own
static quantization does it, as a QDQ graph:

  - augment writes NAME.aug.onnx: the float model with every activation
    that the QDQ graph quantizes (the non-constant inputs and the outputs of
    Conv, Gemm and MatMul) added as a graph output, and prints their names.
    bench.py runs it with ONNX Runtime on the 64 calibration samples
    (ort_timer.mjs --ranges) to get each one's min and max;
  - qdq writes NAME.int8.onnx: weights (Conv's W, Gemm's B, a MatMul's
    constant operand) int8 symmetric per output channel
    (DequantizeLinear on an int8 initializer, axis = the output channel);
    biases of Conv and Gemm int32 with scale = input scale x weight scale
    (what QLinearConv and QGemm take); activations uint8 asymmetric per
    tensor from the calibration min/max (widened to include 0), one
    QuantizeLinear -> DequantizeLinear pair per tensor, read by every
    consumer. ONNX Runtime's graph optimizer fuses DQ -> Conv -> Q into
    QLinearConv, DQ -> Gemm -> Q into QGemm and DQ -> MatMul -> Q into
    QLinearMatMul. A Conv/Gemm/MatMul output that is a graph output stays
    float.
"""

import hashlib
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, ".."))

N_CALIB = 64
N_HELDOUT = 256
QUANT_OPS = ("Conv", "Gemm", "MatMul")


def load_manifest(d):
    with open(os.path.join(d, "manifest.json")) as f:
        return json.load(f)


# --------------------------------------------------------------------------
# calibration and held-out data


def _seed(man):
    src = man.get("source", "")
    try:
        import re
        with open(src) as f:
            m = re.search(r"(?m)^init:\s*\{\s*random:\s*(\d+)\s*\}", f.read())
        return int(m.group(1)) if m else 0
    except OSError:
        return 0


def data(d, n_calib, n_heldout, log):
    man = load_manifest(d)
    if not man.get("batched"):
        raise SystemExit("model %s has fixed shapes: no calibration/held-out batches" % man["name"])
    with open(__file__, "rb") as f:
        me = f.read()
    stamp = hashlib.sha256(b"\0".join([man["stamp"].encode(), str((n_calib, n_heldout)).encode(), me])).hexdigest()[:16]
    qpath = os.path.join(d, "quant.json")
    if os.path.exists(qpath):
        with open(qpath) as f:
            q = json.load(f)
        if q.get("stamp") == stamp and all(os.path.exists(os.path.join(d, p)) for p in q["files"]):
            return q
    seed = _seed(man)
    q = {"stamp": stamp, "seed": seed, "calib": {"n": n_calib, "seed": seed + 7001, "inputs": []},
         "heldout": {"n": n_heldout, "seed": seed + 7002, "inputs": [], "refs": []}, "files": []}
    calib = {}
    for part, n in (("calib", n_calib), ("heldout", n_heldout)):
        rng = np.random.default_rng(q[part]["seed"])
        for i, spec in enumerate(man["inputs"]):
            x = rng.standard_normal([n] + spec["shape"][1:]).astype(np.float32)
            fn = "%s.in%d.bin" % (part, i)
            x.astype("<f4").tofile(os.path.join(d, fn))
            q[part]["inputs"].append(fn)
            q["files"].append(fn)
            if part == "calib":
                calib[spec["name"]] = x
            else:
                q.setdefault("_heldout", []).append(x)
    sys.path.insert(0, HERE)
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    import kiln_ref
    kiln_ref.save_safetensors(os.path.join(d, "calib.safetensors"), calib)
    q["calib"]["safetensors"] = "calib.safetensors"
    q["files"].append("calib.safetensors")
    # the f32 model's outputs on the held-out samples
    import torch
    import kiln_torch
    module, _ = kiln_torch.load_module(d)
    xs = [torch.from_numpy(x) for x in q.pop("_heldout")]
    outs = []
    with torch.no_grad():
        for s in range(0, n_heldout, 32):
            y = module(*[x[s:s + 32] for x in xs])
            outs.append(y if isinstance(y, tuple) else (y,))
    for j in range(len(outs[0])):
        y = torch.cat([o[j] for o in outs]).numpy()
        fn = "heldout.ref%d.bin" % j
        y.astype("<f4").tofile(os.path.join(d, fn))
        q["heldout"]["refs"].append(fn)
        q["files"].append(fn)
    with open(qpath, "w") as f:
        json.dump(q, f, indent=1)
    log("  %s: %d calibration and %d held-out samples written" % (man["name"], n_calib, n_heldout))
    return q


# --------------------------------------------------------------------------
# the QDQ model


def _activations(g):
    """Names of the tensors the QDQ graph quantizes, in graph order."""
    inits = {t.name for t in g.initializer}
    consts = {o for n in g.node if n.op_type == "Constant" for o in n.output}
    outs = {o.name for o in g.output}
    names = []
    for n in g.node:
        if n.op_type not in QUANT_OPS:
            continue
        ins = n.input[:1] if n.op_type in ("Conv", "Gemm") else n.input[:2]
        for t in ins:
            if t and t not in inits and t not in consts and t not in names:
                names.append(t)
        for t in n.output[:1]:
            if t not in outs and t not in names:
                names.append(t)
    return names


def augment(d):
    import onnx
    from onnx import helper, TensorProto
    man = load_manifest(d)
    m = onnx.load(os.path.join(d, man["onnx"]))
    names = _activations(m.graph)
    have = {o.name for o in m.graph.output}
    for t in names:
        if t not in have:
            m.graph.output.append(helper.make_tensor_value_info(t, TensorProto.FLOAT, None))
    path = os.path.join(d, man["name"] + ".aug.onnx")
    onnx.save(m, path)
    print(json.dumps({"augmented": os.path.basename(path), "tensors": names}))


def _uint8_params(lo, hi):
    lo, hi = min(0.0, float(lo)), max(0.0, float(hi))
    scale = (hi - lo) / 255.0
    if not scale > 0:
        return 1.0, 0
    zp = int(round(-lo / scale))
    return scale, max(0, min(255, zp))


def qdq(d, ranges_path):
    import onnx
    from onnx import helper, numpy_helper, TensorProto
    man = load_manifest(d)
    m = onnx.load(os.path.join(d, man["onnx"]))
    g = m.graph
    with open(ranges_path) as f:
        ranges = json.load(f)
    inits = {t.name: t for t in g.initializer}
    acts = [t for t in _activations(g) if t in ranges]
    missing = [t for t in _activations(g) if t not in ranges]
    if missing:
        raise SystemExit("no calibration range for %s" % ", ".join(missing[:5]))
    new_inits = []
    act_scale = {}
    qnodes_for = {}  # tensor -> [Q, DQ] nodes to insert after its producer
    for t in acts:
        s, zp = _uint8_params(ranges[t]["min"], ranges[t]["max"])
        act_scale[t] = s
        sn, zn = t + "_scale", t + "_zero_point"
        new_inits += [numpy_helper.from_array(np.array(s, np.float32), sn),
                      numpy_helper.from_array(np.array(zp, np.uint8), zn)]
        qnodes_for[t] = [helper.make_node("QuantizeLinear", [t, sn, zn], [t + "_quantized"], name=t + "_QuantizeLinear"),
                         helper.make_node("DequantizeLinear", [t + "_quantized", sn, zn], [t + "_dequantized"],
                                          name=t + "_DequantizeLinear")]
    # weights and biases
    wnodes = []
    removed = set()
    counts = {"Conv": 0, "Gemm": 0, "MatMul": 0, "weights": 0, "biases": 0}
    for n in g.node:
        if n.op_type not in QUANT_OPS:
            continue
        counts[n.op_type] += 1
        if n.op_type == "MatMul":
            widx, axis = 1, None
            if n.input[1] in inits:
                axis = len(inits[n.input[1]].dims) - 1  # B is [K, N]: N is the output channel
        elif n.op_type == "Gemm":
            tb = next((a.i for a in n.attribute if a.name == "transB"), 0)
            widx, axis = 1, 0 if tb else 1
        else:
            widx, axis = 1, 0
        wname = n.input[widx]
        if wname not in inits or axis is None:
            continue
        w = numpy_helper.to_array(inits[wname]).astype(np.float32)
        red = tuple(i for i in range(w.ndim) if i != axis)
        amax = np.max(np.abs(w), axis=red) if red else np.abs(w)
        ws = np.where(amax > 0, amax / 127.0, 1.0).astype(np.float32)
        shp = [1] * w.ndim
        shp[axis] = -1
        wq = np.clip(np.round(w / ws.reshape(shp)), -127, 127).astype(np.int8)
        base = "%s_%s" % (wname, n.name or n.output[0])
        new_inits += [numpy_helper.from_array(wq, base + "_quantized"),
                      numpy_helper.from_array(ws, base + "_scale"),
                      numpy_helper.from_array(np.zeros(ws.shape, np.int8), base + "_zero_point")]
        wnodes.append(helper.make_node("DequantizeLinear", [base + "_quantized", base + "_scale", base + "_zero_point"],
                                       [base + "_dequantized"], name=base + "_DequantizeLinear", axis=axis))
        n.input[widx] = base + "_dequantized"
        removed.add(wname)
        counts["weights"] += 1
        # bias: int32, scale = input scale x weight scale
        alpha_beta_ok = all(a.f == 1.0 for a in n.attribute if a.name in ("alpha", "beta"))
        if n.op_type in ("Conv", "Gemm") and len(n.input) > 2 and n.input[2] in inits and alpha_beta_ok \
                and n.input[0] in act_scale:
            b = numpy_helper.to_array(inits[n.input[2]]).astype(np.float64)
            if b.ndim == 1 and b.shape[0] == ws.shape[0]:
                bs = (act_scale[n.input[0]] * ws.astype(np.float64)).astype(np.float32)
                bq = np.clip(np.round(b / np.where(bs > 0, bs, 1)), -2 ** 31, 2 ** 31 - 1).astype(np.int32)
                bb = "%s_%s" % (n.input[2], n.name or n.output[0])
                new_inits += [numpy_helper.from_array(bq, bb + "_quantized"),
                              numpy_helper.from_array(bs, bb + "_scale"),
                              numpy_helper.from_array(np.zeros(bs.shape, np.int32), bb + "_zero_point")]
                wnodes.append(helper.make_node("DequantizeLinear", [bb + "_quantized", bb + "_scale",
                                                                    bb + "_zero_point"], [bb + "_dequantized"],
                                               name=bb + "_DequantizeLinear", axis=0))
                removed.add(n.input[2])
                n.input[2] = bb + "_dequantized"
                counts["biases"] += 1
    # every consumer of a quantized activation reads its dequantized copy
    for n in g.node:
        for i, t in enumerate(n.input):
            if t in qnodes_for:
                n.input[i] = t + "_dequantized"
    # topological order: Q/DQ of graph inputs first, weight DQs, then each
    # node followed by the Q/DQ of its outputs
    order = []
    gin = {i.name for i in g.input}
    for t in acts:
        if t in gin:
            order += qnodes_for[t]
    order += wnodes
    for n in g.node:
        order.append(n)
        for t in n.output:
            if t in qnodes_for and t not in gin:
                order += qnodes_for[t]
    still_used = {t for n in order for t in n.input}
    keep = [t for t in g.initializer if t.name not in removed or t.name in still_used]
    del g.node[:]
    g.node.extend(order)
    del g.initializer[:]
    g.initializer.extend(keep + new_inits)
    onnx.checker.check_model(m)
    path = os.path.join(d, man["name"] + ".int8.onnx")
    onnx.save(m, path)
    counts["activations"] = len(acts)
    counts["file"] = os.path.basename(path)
    print(json.dumps(counts))


def main(argv):
    import argparse
    ap = argparse.ArgumentParser(description="calibration data and the int8 QDQ model of one prepared model")
    ap.add_argument("cmd", choices=["data", "augment", "qdq"])
    ap.add_argument("dir")
    ap.add_argument("--calib", type=int, default=N_CALIB)
    ap.add_argument("--heldout", type=int, default=N_HELDOUT)
    ap.add_argument("--ranges")
    a = ap.parse_args(argv)
    if a.cmd == "data":
        import torch
        torch.set_num_threads(os.cpu_count() or 1)
        q = data(a.dir, a.calib, a.heldout, lambda s: print(s, file=sys.stderr, flush=True))
        print(json.dumps({k: q[k] for k in ("calib", "heldout")}))
    elif a.cmd == "augment":
        augment(a.dir)
    else:
        if not a.ranges:
            ap.error("qdq needs --ranges")
        qdq(a.dir, a.ranges)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
