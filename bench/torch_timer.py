"""torch_timer: times one prepared model with PyTorch, eager and TorchScript.

    python3 bench/torch_timer.py DIR --threads T [--batches 1,32] [--tol 1e-3]
        [--min-time S] [--min-iters K] [--max-time S] [--warmup-time S]

DIR is a model directory written by kiln_torch.prepare(). One process per
thread count: torch.set_num_threads(T) and torch.set_num_interop_threads(1)
are set once, first thing (the caller also sets OMP_NUM_THREADS=T so that
the OpenMP pool has T threads). For every batch:

  - eager: the float32 module, called under torch.inference_mode();
  - TorchScript: torch.jit.freeze(torch.jit.trace(module.eval(), example)),
    traced with that batch's inputs, called under torch.inference_mode()
    (two extra warm-up calls for the profiling executor).

Each is run once and its outputs compared with the float64 reference (max
|y - ref| / max |ref|); only within the tolerance is it timed. Prints one JSON
object per line.
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

    for b in batches:
        entry = man["batches"][str(b)]
        xs = [torch.from_numpy(load(fn, [b] + spec["shape"][1:] if man["batched"] else spec["shape"]))
              for fn, spec in zip(entry["inputs"], man["inputs"])]
        refs = [load(fn, [b] + spec["shape"][1:] if man["batched"] else spec["shape"])
                for fn, spec in zip(entry["refs"], man["outputs"])]
        kinds = ["eager", "torchscript"] if not args.only else [args.only]
        for kind in kinds:
            res = {"runtime": "torch_" + kind, "model": man["name"], "batch": b, "threads": args.threads}
            res.update(info)
            try:
                t0 = time.perf_counter()
                if kind == "eager":
                    fn = module
                else:
                    with torch.no_grad():
                        fn = torch.jit.freeze(torch.jit.trace(module.eval(), tuple(xs)))
                res["create_s"] = time.perf_counter() - t0
                res.update(time_fn(fn, xs, refs, args, extra_warmup=2 if kind == "torchscript" else 0,
                                   batch=b, torch=torch, rel_err=kiln_torch.rel_err))
            except Exception as e:  # report, keep going
                res.update({"valid": False, "error": "%s: %s" % (type(e).__name__, str(e).splitlines()[0][:300])})
            print(json.dumps(res), flush=True)


def time_fn(fn, xs, refs, args, extra_warmup, batch, torch, rel_err):
    res = {}
    with torch.inference_mode():
        t0 = time.perf_counter()
        out = fn(*xs)
        t_warm = time.perf_counter() - t0
        res["first_s"] = t_warm
        outs = out if isinstance(out, tuple) else (out,)
        err = max(rel_err(o.numpy(), r) for o, r in zip(outs, refs)) if len(outs) == len(refs) else math.inf
        res["max_err"] = err if math.isfinite(err) else 1e300
        if not err <= args.tol:
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
