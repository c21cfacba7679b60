"""torch_timer: times one prepared model with PyTorch: eager, TorchScript,
and in reduced precision int8 and bf16.

    python3 bench/torch_timer.py DIR --threads T [--batches 1,32] [--tol 1e-3]
        [--kinds eager,torchscript,int8,bf16] [--tol-reduced 0.25] [--heldout]
        [--min-time S] [--min-iters K] [--max-time S] [--warmup-time S]

DIR is a model directory written by kiln_torch.prepare(). One process per
thread count: torch.set_num_threads(T) and torch.set_num_interop_threads(1)
are set once, first thing (the caller also sets OMP_NUM_THREADS=T so that
the OpenMP pool has T threads). For every batch:

  - eager: the float32 module, called under torch.inference_mode();
  - TorchScript: torch.jit.freeze(torch.jit.trace(module.eval(), example)),
    traced with that batch's inputs, called under torch.inference_mode()
    (two extra warm-up calls for the profiling executor).

  - int8: FX graph mode post-training static quantization
    (torch.ao.quantization.quantize_fx prepare_fx / convert_fx) with the
    default qconfig mapping of the first quantized engine this PyTorch has
    of onednn, x86, fbgemm (recorded as "qengine"), calibrated on the 64
    samples of DIR/calib.in*.bin (bench/kiln_quant.py data), then traced and
    frozen like TorchScript (the FX module itself if that fails: "int8_mode");
  - bf16: torch.jit.freeze(torch.jit.trace(module)) traced under
    torch.autocast("cpu", dtype=torch.bfloat16) and called under it.

Each is run once and its outputs compared with the float64 reference (max
|y - ref| / max |ref|); only within the tolerance (--tol-reduced for int8
and bf16) is it timed. With --heldout, the int8 and bf16 builds of the
largest batch also run the 256 held-out samples (DIR/heldout.in*.bin, in
chunks of that batch) and write the outputs to DIR/heldout.torch_KIND.out<j>.bin
for bench.py's accuracy columns. Prints one JSON object per line.
"""

import argparse
import json
import math
import os
import sys
import time
import warnings


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--batches", default="")
    ap.add_argument("--tol", type=float, default=1e-3)
    ap.add_argument("--min-time", type=float, default=0.5)
    ap.add_argument("--min-iters", type=int, default=10)
    ap.add_argument("--max-time", type=float, default=5.0)
    ap.add_argument("--warmup-time", type=float, default=0.2)
    ap.add_argument("--only", choices=["eager", "torchscript"])
    ap.add_argument("--kinds", default="eager,torchscript")
    ap.add_argument("--tol-reduced", type=float, default=0.25)
    ap.add_argument("--heldout", action="store_true")
    args = ap.parse_args()

    import torch
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    import numpy as np
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import kiln_torch
    warnings.filterwarnings("ignore")

    module, man = kiln_torch.load_module(args.dir)
    batches = [int(b) for b in args.batches.split(",")] if args.batches else sorted(int(b) for b in man["batches"])
    info = {"torch": torch.__version__, "threads_seen": torch.get_num_threads(),
            "interop_threads": torch.get_num_interop_threads()}

    def load(fn, shape):
        return np.fromfile(os.path.join(args.dir, fn), dtype="<f4").reshape(shape)

    quant = {}

    for b in batches:
        entry = man["batches"][str(b)]
        xs = [torch.from_numpy(load(fn, [b] + spec["shape"][1:] if man["batched"] else spec["shape"]))
              for fn, spec in zip(entry["inputs"], man["inputs"])]
        refs = [load(fn, [b] + spec["shape"][1:] if man["batched"] else spec["shape"])
                for fn, spec in zip(entry["refs"], man["outputs"])]
        kinds = [args.only] if args.only else [k.strip() for k in args.kinds.split(",") if k.strip()]
        for kind in kinds:
            res = {"runtime": "torch_" + kind, "model": man["name"], "batch": b, "threads": args.threads}
            res.update(info)
            ctx = None
            try:
                t0 = time.perf_counter()
                if kind == "eager":
                    fn = module
                elif kind == "torchscript":
                    with torch.no_grad():
                        fn = torch.jit.freeze(torch.jit.trace(module.eval(), tuple(xs)))
                elif kind == "int8":
                    if quant.get("error"):
                        raise RuntimeError(quant["error"])
                    if "gm" not in quant:
                        quant.update(quantize_int8(torch, module, man, args.dir, load))
                    res.update({k: quant[k] for k in ("qengine", "quantize_s", "calib_samples")})
                    fn, res["int8_mode"] = quant["gm"], "fx"
                    try:
                        with torch.no_grad():
                            fn = torch.jit.freeze(torch.jit.trace(quant["gm"], tuple(xs)))
                        res["int8_mode"] = "fx, traced and frozen"
                    except Exception as e:  # the FX module still runs
                        res["trace_error"] = "%s: %s" % (type(e).__name__, str(e).splitlines()[0][:200])
                elif kind == "bf16":
                    ctx = lambda: torch.autocast("cpu", dtype=torch.bfloat16)  # noqa: E731
                    torch._C._jit_set_autocast_mode(False)  # the trace records the casts itself
                    with torch.no_grad(), ctx():
                        fn = torch.jit.freeze(torch.jit.trace(module.eval(), tuple(xs)))
                else:
                    raise ValueError("unknown kind %s" % kind)
                res["create_s"] = time.perf_counter() - t0
                reduced = kind in ("int8", "bf16")
                res.update(time_fn(fn, xs, refs, args, extra_warmup=0 if kind == "eager" else 2,
                                   batch=b, torch=torch, rel_err=kiln_torch.rel_err, ctx=ctx,
                                   tol=args.tol_reduced if reduced else args.tol))
                if reduced and args.heldout and b == max(batches):
                    res["heldout_saved"] = run_heldout(torch, np, fn, ctx, man, args.dir, load, b, "torch_" + kind)
            except Exception as e:  # report, keep going
                res.update({"valid": False, "error": "%s: %s" % (type(e).__name__, str(e).splitlines()[0][:300])})
            print(json.dumps(res), flush=True)


class _Null:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


class _Wrap:
    """A module with one named argument per input, around the generated
    module (FX cannot trace its forward(*xs) on Python 3.11 with this torch)."""

    @staticmethod
    def make(torch, module, n):
        names = ", ".join("x%d" % i for i in range(n))
        scope = {}
        exec("def forward(self, %s):\n    return self.inner._fn(self.inner, %s)\n" % (names, names), scope)
        cls = type("Fixed", (torch.nn.Module,), {"forward": scope["forward"]})
        w = cls()
        w.inner = module
        return w.eval()


def quantize_int8(torch, module, man, d, load):
    """FX post-training static quantization, calibrated on DIR/calib.in*.bin."""
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx
    engines = torch.backends.quantized.supported_engines
    engine = next((e for e in ("onednn", "x86", "fbgemm") if e in engines), None)
    if engine is None:
        return {"error": "no onednn, x86 or fbgemm quantized engine in this PyTorch (has %s)" % ", ".join(engines)}
    torch.backends.quantized.engine = engine
    with open(os.path.join(d, "quant.json")) as f:
        q = json.load(f)
    n = q["calib"]["n"]
    cal = [torch.from_numpy(load(fn, [n] + spec["shape"][1:])) for fn, spec in zip(q["calib"]["inputs"], man["inputs"])]
    t0 = time.perf_counter()
    w = _Wrap.make(torch, module, len(cal))
    prepared = prepare_fx(w, get_default_qconfig_mapping(engine), tuple(x[:1] for x in cal))
    with torch.no_grad():
        for s in range(0, n, 16):
            prepared(*[x[s:s + 16] for x in cal])
    gm = convert_fx(prepared)
    return {"gm": gm, "qengine": engine, "quantize_s": time.perf_counter() - t0, "calib_samples": n}


def run_heldout(torch, np, fn, ctx, man, d, load, chunk, tag):
    """Runs the held-out samples through fn in chunks; writes the outputs."""
    with open(os.path.join(d, "quant.json")) as f:
        q = json.load(f)
    n = q["heldout"]["n"]
    xs = [torch.from_numpy(load(fn_, [n] + spec["shape"][1:])) for fn_, spec in zip(q["heldout"]["inputs"], man["inputs"])]
    outs = []
    with torch.inference_mode(), (ctx() if ctx else _Null()):
        for s in range(0, n, chunk):
            y = fn(*[x[s:s + chunk] for x in xs])
            outs.append(y if isinstance(y, tuple) else (y,))
    files = []
    for j in range(len(outs[0])):
        y = torch.cat([o[j].float() for o in outs]).numpy()
        p = os.path.join(d, "heldout.%s.out%d.bin" % (tag, j))
        y.astype("<f4").tofile(p)
        files.append(os.path.basename(p))
    return files


def time_fn(fn, xs, refs, args, extra_warmup, batch, torch, rel_err, ctx=None, tol=None):
    res = {}
    tol = args.tol if tol is None else tol
    with torch.inference_mode(), (ctx() if ctx else _Null()):
        t0 = time.perf_counter()
        out = fn(*xs)
        t_warm = time.perf_counter() - t0
        res["first_s"] = t_warm
        outs = out if isinstance(out, tuple) else (out,)
        err = max(rel_err(o.float().numpy(), r) for o, r in zip(outs, refs)) if len(outs) == len(refs) else math.inf
        res["max_err"] = err if math.isfinite(err) else 1e300
        if not err <= tol:
            res["valid"] = False
            return res
        warm = 1
        while warm < 2 + extra_warmup or t_warm < args.warmup_time:
            t0 = time.perf_counter()
            fn(*xs)
            t_warm += time.perf_counter() - t0
            warm += 1
            if t_warm > args.max_time and warm >= 2 + extra_warmup:
                break
        est = t_warm / warm
        n = max(args.min_iters, math.ceil(args.min_time / max(est, 1e-9)))
        n = min(n, 1000000)
        ts = []
        total = 0.0
        pc = time.perf_counter
        while len(ts) < n:
            t0 = pc()
            fn(*xs)
            dt = pc() - t0
            ts.append(dt)
            total += dt
            if total >= args.max_time and len(ts) >= 3:
                break
    ts.sort()
    k = len(ts)
    med = ts[k // 2] if k % 2 else 0.5 * (ts[k // 2 - 1] + ts[k // 2])
    res.update({"valid": True, "warmup": warm, "iters": k, "median_s": med,
                "p90_s": ts[max(0, math.ceil(0.9 * k) - 1)], "min_s": ts[0], "mean_s": total / k,
                "items_per_s": batch / med})
    return res


if __name__ == "__main__":
    main()
