"""kiln benchmark: kiln against ONNX Runtime and PyTorch on the example models.

    bench/run.sh [--quick] [--models a,b] [--threads 1,2] [--out FILE]
                 [--precision f32,bf16,f16,int8,auto] [...]

See docs/performance.md for what is measured and how. This script only
orchestrates: every figure comes from a separate timer process
(bench/kiln_timer.c, bench/ort_timer.mjs, bench/torch_timer.py,
bench/sgemm_timer.c, bench/machine_timer.c) that prints JSON;
bench/kiln_quant.py writes the calibration and held-out data and the ONNX
Runtime int8 model for --precision.
Standard library only, so that it runs (kiln alone) without PyTorch.
"""

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, ".."))

# name, YAML (relative to the repository), throughput batch
MODELS = [
    ("mlp", "examples/mlp/mlp.yaml", 32),
    ("lenet", "examples/lenet/lenet.yaml", 32),
    ("resnet20", "examples/resnet20/resnet20.yaml", 32),
    ("mobilenetv2", "examples/mobilenetv2/mobilenetv2.yaml", 32),
    ("resnet18", "examples/resnet18/resnet18.yaml", 32),
    ("transformer", "examples/transformer/transformer.yaml", 32),
    ("dense4096", "bench/models/dense4096.yaml", 256),
]
PEERS = ["ort", "torch_eager", "torch_torchscript"]
LABEL = {"kiln": "kiln", "ort": "ONNX Runtime", "torch_eager": "PyTorch eager",
         "torch_torchscript": "TorchScript", "ort_int8": "ONNX Runtime int8", "torch_int8": "PyTorch int8",
         "torch_bf16": "PyTorch bf16"}
TOL = 1e-3
# Reduced precision (--precision): kiln's precisions besides f32, and the
# peers each one brings (docs/performance.md, "Reduced precision").
PRECISIONS = ["f32", "bf16", "f16", "int8", "auto"]
for _p in PRECISIONS[1:]:
    LABEL["kiln_" + _p] = "kiln " + _p
PEERS_FOR = {"int8": ["ort_int8", "torch_int8"], "bf16": ["torch_bf16"]}
# A reduced-precision run is timed when its outputs are within this of the
# float64 reference: it catches garbage (NaN, a wrong layout), not rounding;
# the accuracy columns give the real figures, on held-out data.
TOL_REDUCED = 0.25


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def run(cmd, env=None, timeout=None, cwd=None):
    """(returncode, stdout, stderr, seconds); returncode None on timeout."""
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
        return p.returncode, p.stdout, p.stderr, time.perf_counter() - t0
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        return None, out, "timed out after %d s" % timeout, time.perf_counter() - t0
    except OSError as e:
        return 127, "", str(e), time.perf_counter() - t0


_HZ = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_snapshot():
    """(wall s, CPU-seconds all processes have used on this machine (steal
    included), CPU-seconds used by this process and its finished children)."""
    busy = None
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        # user nice system idle iowait irq softirq steal ...
        busy = (v[0] + v[1] + v[2] + v[5] + v[6] + (v[7] if len(v) > 7 else 0)) / _HZ
    except (OSError, ValueError, IndexError):
        pass
    t = os.times()
    return time.perf_counter(), busy, t.user + t.system + t.children_user + t.children_system


def others_cpu(a, b):
    """Average number of cores used by other processes between two snapshots."""
    if a[1] is None or b[1] is None or b[0] - a[0] < 0.05:
        return None
    return max(0.0, ((b[1] - a[1]) - (b[2] - a[2])) / (b[0] - a[0]))


def run_measured(cmd, env=None, timeout=None):
    """run() plus the other processes' CPU use meanwhile (cores)."""
    a = cpu_snapshot()
    rc, out, err, dt = run(cmd, env=env, timeout=timeout)
    return rc, out, err, dt, others_cpu(a, cpu_snapshot())


def wait_quiet(limit, threshold=0.25):
    """Waits (at most `limit` s) for a 0.5 s window in which other processes
    use less than `threshold` cores. Returns the seconds waited."""
    if limit <= 0:
        return 0.0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < limit:
        a = cpu_snapshot()
        time.sleep(0.5)
        o = others_cpu(a, cpu_snapshot())
        if o is None or o < threshold:
            break
    return time.perf_counter() - t0


def json_lines(text):
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
    return out


def first_line(s, n=160):
    for line in s.splitlines():
        if line.strip():
            return line.strip()[:n]
    return ""


def thread_env(t):
    env = dict(os.environ)
    for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[k] = str(t)
    env.pop("OMP_PROC_BIND", None)
    return env


# --------------------------------------------------------------------------
# setup


def build_kiln(args):
    """Builds kiln and libkiln_rt (Release). Returns a dict describing them."""
    bdir = os.path.abspath(args.build_dir)
    info = {"build_dir": bdir, "kiln": os.path.join(bdir, "compiler", "kiln"),
            "rt_dir": os.path.join(bdir, "runtime"), "note": None}
    if not args.no_build:
        log("building kiln (Release) in %s" % bdir)
        if not os.path.exists(os.path.join(bdir, "CMakeCache.txt")):
            rc, out, err, _ = run(["cmake", "-S", ROOT, "-B", bdir, "-DCMAKE_BUILD_TYPE=Release"])
            if rc != 0:
                info["note"] = "cmake configure failed: " + first_line(err or out)
        if info["note"] is None:
            rc, out, err, dt = run(["cmake", "--build", bdir, "--target", "kiln", "kiln_rt_shared",
                                    "-j", str(os.cpu_count() or 2)])
            if rc != 0:
                lines = [l for l in (out + err).splitlines() if "error" in l.lower()]
                info["note"] = "build failed: " + (lines[0][:200] if lines else first_line(err or out))
            else:
                log("  built in %.1f s" % dt)
    info["ok"] = os.access(info["kiln"], os.X_OK)
    if info["note"] and info["ok"]:
        info["note"] += " (using the kiln binary of an earlier build)"
    if not info["ok"]:
        info["note"] = info["note"] or "no kiln binary at %s" % info["kiln"]
        return info
    rc, out, err, _ = run([info["kiln"], "compile", "--help"])
    text = out + err
    info["has_compile"] = "usage: kiln compile" in text
    info["emit_so"] = bool(re.search(r"--emit [^\n]*\bso\b", text))
    if not info["has_compile"]:
        info["note"] = "this kiln has no `compile` command"
    return info


def build_tools(work, kiln):
    """Compiles the C timers. Returns {tool: path or None}, {tool: reason}."""
    bindir = os.path.join(work, "bin")
    os.makedirs(bindir, exist_ok=True)
    cc = os.environ.get("CC", "cc")
    paths, why = {}, {}

    def cc_build(name, srcs, flags):
        exe = os.path.join(bindir, name)
        rc, out, err, _ = run([cc, "-O2", "-std=gnu11", "-o", exe] + srcs + flags)
        if rc == 0:
            paths[name] = exe
        else:
            paths[name] = None
            why[name] = "%s does not build: %s" % (name, first_line(err))

    cc_build("machine_timer", [os.path.join(HERE, "machine_timer.c")], ["-march=native", "-pthread"])
    cc_build("sgemm_timer", [os.path.join(HERE, "sgemm_timer.c")], ["-lopenblas", "-lm"])
    if kiln.get("ok"):
        rt = kiln["rt_dir"]
        cc_build("kiln_timer", [os.path.join(HERE, "kiln_timer.c")],
                 ["-I", os.path.join(ROOT, "runtime", "include"), "-L", rt, "-Wl,-rpath," + rt,
                  "-lkiln_rt_blas", "-lkiln_rt", "-ldl", "-lm"])
    return paths, why


def python_with_torch():
    for py in ("/usr/bin/python3", sys.executable, "python3"):
        rc, out, err, _ = run([py, "-c", "import torch, numpy, yaml; print(torch.__version__)"])
        if rc == 0:
            return py, out.strip(), None
    return None, None, "PyTorch (python3-torch, numpy, yaml) not found"


def setup_ort(args):
    node = shutil.which("node")
    if not node:
        return None, None, "node not found"
    mod = os.path.join(HERE, "node_modules", "onnxruntime-node")
    if not os.path.isdir(mod) and not args.no_install:
        npm = shutil.which("npm")
        if npm:
            log("installing onnxruntime-node into bench/node_modules (CPU only)")
            env = dict(os.environ, ONNXRUNTIME_NODE_INSTALL="skip")
            rc, out, err, _ = run([npm, "install", "--no-audit", "--no-fund"], env=env, cwd=HERE, timeout=600)
            if rc != 0:
                return None, None, "npm install failed: " + first_line(err)
    if not os.path.isdir(mod):
        return None, None, "onnxruntime-node not installed (ONNXRUNTIME_NODE_INSTALL=skip npm install in bench/)"
    try:
        with open(os.path.join(mod, "package.json")) as f:
            ver = json.load(f).get("version")
    except (OSError, ValueError):
        ver = None
    return node, ver, None


# The ISA extensions that matter for float32 inference, in the order the
# report lists them (names as in /proc/cpuinfo).
ISA_FLAGS = ["avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx_vnni", "avx512_bf16",
             "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8"]

# Intel family-6 server models (and the microarchitecture the label names).
INTEL_MODELS = {63: "Haswell", 79: "Broadwell", 86: "Broadwell", 85: "Skylake-SP", 106: "Ice Lake-SP",
                108: "Ice Lake-SP", 143: "Sapphire Rapids", 207: "Emerald Rapids", 173: "Granite Rapids",
                174: "Granite Rapids", 175: "Sierra Forest"}


def host_label(vendor, family, model, flags, name=""):
    """A short name for the CPU, from its vendor, family and model, so that a
    figure can say which machine it came from: "AMD Zen 3", "Intel Xeon
    (Sapphire Rapids class)", or "VENDOR family F model M" when unknown."""
    if vendor == "AuthenticAMD" and family in (23, 25, 26):
        if family == 23:
            return "AMD Zen 2" if model >= 0x30 else "AMD Zen"
        if family == 26:
            return "AMD Zen 5"
        zen4 = 0x10 <= model <= 0x1f or 0x60 <= model <= 0x7f or 0xa0 <= model <= 0xaf or "avx512f" in flags
        return "AMD Zen 4" if zen4 else "AMD Zen 3"
    if vendor == "GenuineIntel" and family == 6 and model in INTEL_MODELS:
        arch = INTEL_MODELS[model]
        if model == 85:  # one model number for three generations
            arch = "Cooper Lake" if "avx512_bf16" in flags else ("Cascade Lake" if "avx512_vnni" in flags else arch)
        return "Intel %s(%s class)" % ("Xeon " if "xeon" in name.lower() else "", arch)
    return "%s family %s model %s" % (vendor or "unknown vendor", family, model)


def cache_sizes():
    """{"L1d": bytes, "L2": bytes, "L3": bytes} of CPU 0, from sysfs."""
    out = {}
    base = "/sys/devices/system/cpu/cpu0/cache"
    try:
        entries = sorted(os.listdir(base))
    except OSError:
        return out
    for e in entries:
        if not e.startswith("index"):
            continue
        try:
            vals = {}
            for k in ("level", "type", "size"):
                with open(os.path.join(base, e, k)) as f:
                    vals[k] = f.read().strip()
        except OSError:
            continue
        m = re.match(r"(\d+)([KMG]?)$", vals["size"])
        if not m or vals["type"] == "Instruction":
            continue
        size = int(m.group(1)) * {"": 1, "K": 1024, "M": 1024 ** 2, "G": 1024 ** 3}[m.group(2)]
        out["L1d" if vals["level"] == "1" else "L" + vals["level"]] = size
    return out


def machine_info():
    info = {"platform": platform.platform(), "cpus": os.cpu_count()}
    try:
        with open("/proc/cpuinfo") as f:
            txt = f.read()
        m = re.search(r"model name\s*:\s*(.*)", txt)
        info["cpu"] = m.group(1).strip() if m else platform.processor()
        ven = re.search(r"vendor_id\s*:\s*(\S+)", txt)
        fam = re.search(r"cpu family\s*:\s*(\d+)", txt)
        mod = re.search(r"\nmodel\s*:\s*(\d+)", txt)
        info["vendor"] = ven.group(1) if ven else None
        if fam and mod:
            info["cpu"] += " (family %s model %s)" % (fam.group(1), mod.group(1))
            info["family"], info["model"] = int(fam.group(1)), int(mod.group(1))
        flags = re.search(r"flags\s*:\s*(.*)", txt)
        fl = set(flags.group(1).split()) if flags else set()
        info["isa"] = "avx512f" if "avx512f" in fl else ("avx2+fma" if "avx2" in fl and "fma" in fl else "other")
        info["isa_extensions"] = [x for x in ISA_FLAGS if x in fl]
        info["hypervisor"] = "hypervisor" in fl
        info["host"] = host_label(info["vendor"], info.get("family"), info.get("model"), fl, info["cpu"])
    except OSError:
        info["cpu"] = platform.processor()
    info["caches"] = cache_sizes()
    try:
        with open("/proc/meminfo") as f:
            m = re.search(r"MemTotal:\s*(\d+)", f.read())
            info["mem_gib"] = round(int(m.group(1)) / 1048576, 1)
    except (OSError, AttributeError):
        pass
    try:
        with open("/proc/loadavg") as f:
            info["loadavg_start"] = f.read().split()[:3]
    except OSError:
        pass
    return info


def kiln_host_cpu(kiln, work):
    """The CPU kiln compiles for on this host, from the target line of
    `kiln compile` on a one-layer model: {"kiln_cpu": "sapphirerapids (the
    host's)", "kiln_target": "x86_64-pc-linux-gnu, cpu ..., avx512 (16 x
    f32), caches ..."}, or {} when kiln cannot compile."""
    if not kiln.get("ok") or not kiln.get("has_compile"):
        return {}
    d = os.path.join(work, "host")
    os.makedirs(d, exist_ok=True)
    yaml_path = os.path.join(d, "probe.yaml")
    with open(yaml_path, "w") as f:
        f.write("kiln: 1\nname: probe\ninit: {random: 1}\ninputs:\n  - {name: x, shape: [batch, 16]}\n"
                "outputs: [y]\nlayers:\n  - {name: y, op: dense, units: 16}\n")
    rc, out, err, _ = run([kiln["kiln"], "compile", yaml_path, "-o", os.path.join(d, "probe.o"), "--emit", "obj"],
                          timeout=300)
    t = parse_compile_output(out + err).get("target") if rc == 0 else None
    if not t:
        return {"kiln_cpu_error": first_line(err or out) or "no target line"}
    m = re.search(r"cpu ([^,]+)", t)
    return {"kiln_target": t, "kiln_cpu": m.group(1) if m else None}


# OpenBLAS cores whose kernels predate AVX: what OpenBLAS (DYNAMIC_ARCH)
# falls back to for a CPU id it does not know (0.3.21 on Sapphire Rapids
# and later: Prescott), at several times the sgemm time of the right core.
OPENBLAS_OLD_CORES = {"katmai", "coppermine", "northwood", "prescott", "banias", "atom", "core2", "penryn",
                      "dunnington", "nehalem", "opteron", "opteron_sse3", "barcelona", "bobcat", "nano", "athlon",
                      "generic", "unknown"}


def openblas_info(tool, env):
    """{"core", "config"} of OpenBLAS in that environment (sgemm_timer --info)."""
    if not tool:
        return None
    rc, out, err, _ = run([tool, "--info"], env=env, timeout=60)
    j = json_lines(out)
    return j[0] if rc == 0 and j else None


def openblas_core_for(mach):
    """The OpenBLAS core for this CPU's vector ISA, from its flags: AVX-512
    (Cooperlake with BF16, else SkylakeX), AVX2+FMA (Zen on AMD, else
    Haswell), or None."""
    isa = set(mach.get("isa_extensions", []))
    if "avx512f" in isa:
        return "Cooperlake" if "avx512_bf16" in isa else "SkylakeX", (
            "the CPU has avx512f and avx512_bf16" if "avx512_bf16" in isa else "the CPU has avx512f")
    if "avx2" in isa and "fma" in isa:
        return "Zen" if mach.get("vendor") == "AuthenticAMD" else "Haswell", "the CPU has avx2 and fma"
    return None, "the CPU has neither AVX-512 nor AVX2+FMA"


def choose_openblas_core(mode, tool, mach):
    """Decides OPENBLAS_CORETYPE for every process the bench starts.
    mode: "auto" (replace a pre-AVX fallback by the core of the CPU's ISA),
    "keep" (leave OpenBLAS's choice), or a core name (set it). Returns the
    JSON record: own_core (OpenBLAS's pick from the CPU id), env_core (set in
    the bench's environment), set (what the bench sets, or None), core (what
    OpenBLAS then runs), config, reason (one sentence for the report)."""
    preset = os.environ.get("OPENBLAS_CORETYPE") or None
    clean = dict(os.environ)
    clean.pop("OPENBLAS_CORETYPE", None)
    own = openblas_info(tool, clean)
    rec = {"mode": mode, "own_core": own and own.get("core"), "env_core": preset, "set": None}
    own_name = rec["own_core"] or "an unknown core"
    # Every process inherits the variable: kiln's BLAS path, the sgemm timer
    # and PyTorch call OpenBLAS; ONNX Runtime has kernels of its own.
    if mode == "keep":
        rec["reason"] = ("the bench left OpenBLAS's own pick, %s" % own_name if not preset
                         else "the bench kept OPENBLAS_CORETYPE=%s from its environment (OpenBLAS's own pick is %s)"
                         % (preset, own_name))
    elif mode != "auto":
        rec["set"] = mode
        rec["reason"] = ("the bench set OPENBLAS_CORETYPE=%s for every process it starts (OpenBLAS's own pick is %s)"
                         % (mode, own_name))
    elif preset:
        rec["reason"] = ("the bench kept OPENBLAS_CORETYPE=%s from its environment (OpenBLAS's own pick is %s)"
                         % (preset, own_name))
    elif own is None:
        rec["reason"] = "the bench could not ask OpenBLAS which core it picks (no sgemm_timer), so it set nothing"
    else:
        want, why = openblas_core_for(mach)
        if (own.get("core") or "unknown").lower() not in OPENBLAS_OLD_CORES:
            rec["reason"] = "OpenBLAS picked %s, a core with AVX kernels, so the bench left it" % own["core"]
        elif want is None:
            rec["reason"] = ("OpenBLAS picked %s, a core without AVX kernels, and %s, so the bench left it"
                             % (own["core"], why))
        else:
            rec["set"] = want
            rec["reason"] = ("OpenBLAS picked %s, a core without AVX kernels (its fallback for a CPU it does not "
                             "know), and %s, so the bench set OPENBLAS_CORETYPE=%s for every process it starts "
                             "(--openblas-core keep would leave OpenBLAS's pick)" % (own["core"], why, want))
    env = dict(os.environ)
    if rec["set"]:
        env["OPENBLAS_CORETYPE"] = rec["set"]
    now = openblas_info(tool, env) if rec["set"] or preset else own
    rec["core"] = now and now.get("core")
    rec["config"] = now and now.get("config")
    if rec["set"] and rec["core"] and rec["core"].lower() != rec["set"].lower():
        rec["reason"] += "; OpenBLAS does not know %s and runs %s instead" % (rec["set"], rec["core"])
    return rec


def git_rev():
    rc, out, _, _ = run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"])
    if rc != 0:
        return None
    rev = out.strip()
    rc, out, _, _ = run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"])
    if rc == 0 and out.strip():
        rev += " + uncommitted changes"
    return rev


# --------------------------------------------------------------------------
# sizes from `kiln compile` output and the object


_UNITS = {"B": 1, "KiB": 1024, "MiB": 1024 ** 2, "GiB": 1024 ** 3, "KB": 1000, "MB": 1e6, "GB": 1e9}


def parse_bytes(s):
    m = re.match(r"\s*([\d.]+)\s*(B|KiB|MiB|GiB|KB|MB|GB)\b", s)
    return float(m.group(1)) * _UNITS[m.group(2)] if m else None


def parse_compile_output(text):
    r = {}
    # "target    x86_64-pc-linux-gnu, cpu sapphirerapids (the host's), avx512 (16 x f32), caches ..."
    m = re.search(r"target\s+(\S+), cpu (\S+)( \([^)\n]*\))?, ([^\n]*)", text)
    if m:
        r["target"] = "%s, cpu %s%s, %s" % (m.group(1), m.group(2).rstrip(","), m.group(3) or "", m.group(4).strip())
    m = re.search(r"weights ([\d.]+ ?[KMG]?i?B)", text)
    if m:
        r["weights_reported"] = m.group(1)
    m = re.search(r"workspace ([^\n]*)", text)
    if m:
        r["workspace_reported"] = m.group(1).strip()
    # "scratch   X + batch x Y of it: ...": kernels' scratch inside the workspace
    m = re.search(r"scratch\s+([\d.]+ ?[KMG]?i?B) \+ batch x ([\d.]+ ?[KMG]?i?B)", text)
    if m:
        r["scratch_b1_bytes"] = (parse_bytes(m.group(1)) or 0) + (parse_bytes(m.group(2)) or 0)
    m = re.search(r"lower bound[^\d\n]*([\d.]+ ?[KMG]?i?B)([^\n]*)", text, re.I)
    if m:
        r["lower_bound_reported"] = m.group(0).strip()
        r["lower_bound_bytes"] = parse_bytes(m.group(1))
        # "... + batch x 12 KiB" after it: a per-batch lower bound
        m2 = re.search(r"batch\s*x\s*([\d.]+ ?[KMG]?i?B)", m.group(2))
        if m2:
            r["lower_bound_per_batch_bytes"] = parse_bytes(m2.group(1))
    return r


def dump_memory_plan(kiln, model):
    """The memory planner's figures from `kiln dump --after PASS` (graph line
    `memory fixed N batch N lower_bound N`, bytes at batch 1), if this kiln
    has them."""
    for p in ("schedule", "memory_plan"):
        rc, out, err, _ = run([kiln, "dump", model, "--after", p], timeout=300)
        if rc != 0:
            continue
        m = re.search(r"memory fixed (\d+) batch (\d+) lower_bound (\d+)", out)
        if m:
            return {"plan_fixed_bytes": int(m.group(1)), "plan_batch_bytes": int(m.group(2)),
                    "lower_bound_bytes": int(m.group(3)),
                    "lower_bound_reported": "%s (kiln dump --after %s)" % (fmt_bytes(int(m.group(3))), p)}
        return {"lower_bound_note": "`kiln dump --after %s` prints no memory plan for this model" % p}
    return {}


def object_sections(path):
    """{text, rodata, data, total} bytes of an object, from `size -A`."""
    rc, out, err, _ = run(["size", "-A", path])
    if rc != 0:
        return None
    r = {"text": 0, "rodata": 0, "data": 0, "total": 0}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) < 2 or not parts[1].isdigit():
            continue
        name, size = parts[0], int(parts[1])
        if name == "Total":
            r["total"] = size
        elif name.startswith(".text"):
            r["text"] += size
        elif name.startswith(".rodata") or name.startswith(".lrodata"):
            r["rodata"] += size
        elif name.startswith(".data") or name.startswith(".ldata"):
            r["data"] += size
    return r


# --------------------------------------------------------------------------
# reduced precision: what a compile did, and accuracy on held-out data


def kernel_counts(so_path):
    """{"f32": n, "bf16": n, ...}: kiln kernels in an object or library by
    the precision their name starts with (kiln.bf16_dense_..., from nm)."""
    rc, out, err, _ = run(["nm", so_path])
    if rc != 0:
        return None
    counts = {}
    for line in out.splitlines():
        m = re.search(r"\bkiln\.([a-z0-9]+)_", line)
        if m:
            counts[m.group(1)] = counts.get(m.group(1), 0) + 1
    return counts


def precision_status(p, text, counts):
    """(ok, why): whether a `kiln compile --precision p` really computes in
    p: not when it warns that p is not implemented, nor when no kernel of
    the object is named after p (int8 compiles f32 until its kernels exist;
    real int8 kernels are named int8_...). auto: ok when it compiled."""
    m = re.search(r"warning: (precision %s is not implemented[^;\n]*)" % re.escape(p), text)
    if m:
        return False, "`kiln compile --precision %s` warns \"%s\" and computes those layers in f32" % (
            p, m.group(1).strip())
    if p == "auto" or counts is None:
        return True, None
    if not counts.get(p):
        return False, "no %s kernel in the object (kernels: %s)" % (
            p, ", ".join("%d %s" % (n, k) for k, n in sorted(counts.items())) or "none")
    return True, None


def read_f32(path):
    """A raw little-endian float32 file as an array('f'), or None."""
    import array
    a = array.array("f")
    try:
        with open(path, "rb") as f:
            a.frombytes(f.read())
    except OSError:
        return None
    if sys.byteorder != "little":
        a.byteswap()
    return a


def accuracy(outs, refs, n, row=None):
    """Top-1 agreement (argmax of the first output over its last axis, of
    length `row`: per sample for a classifier, per sample and position for
    a sequence output) and max relative error (max |y - ref| / max |ref|,
    the largest over the outputs) of the output files `outs` against
    `refs`, n samples each. Standard library only."""
    res = {"samples": n}
    worst = 0.0
    for j, (o, rf) in enumerate(zip(outs, refs)):
        y, r = read_f32(o), read_f32(rf)
        if y is None or r is None or len(y) != len(r) or not len(r):
            return {"error": "output %d: missing or of the wrong size" % j}
        scale = max(abs(v) for v in r)
        diff = 0.0
        for a, b in zip(y, r):
            d = abs(a - b)
            if not d <= diff:
                diff = d if d == d else float("inf")
        e = diff / max(scale, 1e-30)
        worst = max(worst, e)
        if j == 0:
            k = row if row and len(r) % row == 0 else len(r) // n
            rows = len(r) // k
            agree = 0
            for i in range(rows):
                ys, rs = y[i * k:(i + 1) * k], r[i * k:(i + 1) * k]
                agree += max(range(k), key=ys.__getitem__) == max(range(k), key=rs.__getitem__)
            res["top1"] = agree / rows
            res["classes"] = k
            res["rows"] = rows
    res["max_rel_err"] = worst if worst != float("inf") else 1e300
    return res


# --------------------------------------------------------------------------
# the run


class Bench:
    def __init__(self, args):
        self.args = args
        self.work = os.path.abspath(args.work)
        os.makedirs(self.work, exist_ok=True)
        q = 0.5 if args.quick else 1.0
        self.timing = {"min_time": 0.5 * q, "min_iters": max(3, int(10 * q)), "max_time": 5.0 * q,
                       "warmup_time": 0.2 * q}
        self.timeout = 900
        self.res = {"meta": {}, "machine": {}, "models": {}, "notes": []}

    def timing_args(self):
        t = self.timing
        return ["--min-time", str(t["min_time"]), "--min-iters", str(t["min_iters"]),
                "--max-time", str(t["max_time"]), "--warmup-time", str(t["warmup_time"])]

    # ---------------------------------------------------------------- setup
    def setup(self):
        a = self.args
        meta = self.res["meta"]
        meta["date"] = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
        meta["machine"] = machine_info()
        meta["kiln_rev"] = git_rev()
        meta["quick"] = a.quick
        meta["rounds"] = a.rounds
        meta["timing"] = self.timing
        meta["threads"] = self.threads
        meta["tolerance"] = TOL
        meta["precisions"] = self.precisions
        meta["tolerance_reduced"] = TOL_REDUCED
        meta["auto_tolerance"] = a.auto_tolerance
        self.kiln = build_kiln(a)
        meta["kiln"] = {k: v for k, v in self.kiln.items()}
        meta["machine"].update(kiln_host_cpu(self.kiln, self.work))
        self.tools, why = build_tools(self.work, self.kiln)
        meta["tools_missing"] = why
        # Before any runtime starts: every process inherits the core, so
        # kiln's BLAS path, sgemm and PyTorch run the same OpenBLAS kernels.
        ob = choose_openblas_core(a.openblas_core, self.tools.get("sgemm_timer"), meta["machine"])
        meta["openblas"] = ob
        if ob["set"]:
            os.environ["OPENBLAS_CORETYPE"] = ob["set"]
        log("host: %s; kiln compiles for cpu %s" % (meta["machine"].get("host"), meta["machine"].get("kiln_cpu")))
        log("OpenBLAS core (--openblas-core %s): %s" % (a.openblas_core, ob["reason"]))
        if a.skip_torch:
            self.py, ver, self.torch_why = None, None, "skipped (--skip torch)"
        else:
            self.py, ver, self.torch_why = python_with_torch()
        meta["torch"] = ver
        meta["torch_missing"] = self.torch_why
        if a.skip_ort:
            self.node, ver, self.ort_why = None, None, "skipped (--skip ort)"
        elif not self.py:
            self.node, ver, self.ort_why = None, None, "needs PyTorch for the ONNX export"
        else:
            self.node, ver, self.ort_why = setup_ort(a)
        meta["onnxruntime"] = ver
        meta["ort_missing"] = self.ort_why
        if self.kiln.get("note"):
            log("kiln: " + self.kiln["note"])

    # ---------------------------------------------------------------- machine
    def machine(self):
        m = self.res["machine"]
        mt = self.tools.get("machine_timer")
        if mt:
            for t in self.threads:
                self.quiet()
                rc, out, err, _, oth = run_measured([mt, "fma", "--threads", str(t), "--seconds", "0.3"], timeout=120)
                j = json_lines(out)
                m.setdefault("fma", {})[str(t)] = j[0] if j else {"error": first_line(err)}
                m["fma"][str(t)]["others_cpu"] = oth
                bw = self.bandwidth(t, 512, "start")
                bw64 = self.bandwidth(t, 64, "start")
                log("machine, %d thread(s): FMA peak %s GFLOP/s, read bandwidth %s GB/s (512 MiB), %s GB/s "
                    "(64 MiB re-read)" % (t, m["fma"][str(t)].get("gflops"), bw.get("gb_per_s"), bw64.get("gb_per_s")))
        if self.tools.get("sgemm_timer"):
            for t in self.threads:
                self.sgemm_cores(t)

    def sgemm_cores(self, t):
        """OpenBLAS sgemm at 256 x 4096 x 4096 with the core every runtime
        runs, and, when that is not OpenBLAS's own pick, with its own pick
        too: what the core choice is worth on this machine."""
        ob = self.res["meta"]["openblas"]
        envs = [("run", thread_env(t))]
        if ob.get("own_core") and ob.get("core") != ob.get("own_core"):
            env = thread_env(t)
            env.pop("OPENBLAS_CORETYPE", None)
            envs.append(("own", env))
        for key, env in envs:
            self.quiet()
            rc, out, err, _, oth = run_measured([self.tools["sgemm_timer"], "--m", "256", "--n", "4096", "--k", "4096",
                                                 "--threads", str(t)] + self.timing_args(), env=env,
                                                timeout=self.timeout)
            j = json_lines(out)
            j = j[0] if j else {"error": first_line(err) or "exit %s" % rc}
            j["others_cpu"] = oth
            self.res["machine"].setdefault("sgemm_core", {}).setdefault(key, {})[str(t)] = j
            if "gflops" in j:
                log("  %-18s M=256  T=%d  %.1f GFLOP/s with core %s%s" % (
                    "OpenBLAS sgemm", t, j["gflops"], j.get("core"), " (OpenBLAS's own pick, not used)"
                    if key == "own" else ""))

    def bandwidth(self, t, mib, where):
        """One read-bandwidth measurement, appended to machine.bandwidth{mib}[T]."""
        self.quiet()
        reps = (10 if mib <= 64 else 5) // (2 if self.args.quick else 1)
        rc, out, err, _, oth = run_measured([self.tools["machine_timer"], "bandwidth", "--threads", str(t), "--mib",
                                             str(mib), "--reps", str(reps)], timeout=300)
        j = json_lines(out)
        j = j[0] if j else {"error": first_line(err)}
        j.update({"others_cpu": oth, "where": where})
        key = "bandwidth" if mib == 512 else "bandwidth%d" % mib
        self.res["machine"].setdefault(key, {}).setdefault(str(t), []).append(j)
        return j

    def dense_bounds(self, r, t, bmax):
        """OpenBLAS sgemm on the dense layer's shapes and the read bandwidth,
        measured right beside kiln's dense layer (same conditions)."""
        st = self.tools.get("sgemm_timer")
        if st:
            for mm in (1, bmax):
                self.quiet()
                rc, out, err, dt, oth = run_measured([st, "--m", str(mm), "--n", "4096", "--k", "4096", "--threads",
                                                      str(t)] + self.timing_args(), env=thread_env(t),
                                                     timeout=self.timeout)
                j = json_lines(out)
                j = j[0] if j else {"error": first_line(err) or "exit %s" % rc}
                j["others_cpu"] = oth
                self.res["machine"].setdefault("sgemm", {})["%d/%d" % (mm, t)] = j
                if "gflops" in j:
                    log("  %-18s M=%-4d T=%d  %.4g ms, %.1f GFLOP/s" % ("OpenBLAS sgemm", mm, t, j["median_s"] * 1e3,
                                                                      j["gflops"]))
        if self.tools.get("machine_timer"):
            for mib in (512, 64):
                j = self.bandwidth(t, mib, "dense4096")
                log("  %-18s        T=%d  %s GB/s (%d MiB)" % ("read bandwidth", t, j.get("gb_per_s"), mib))

    def ort_overhead(self):
        """Per-call floor of session.run() through onnxruntime-node."""
        if not self.node:
            return
        path = os.path.join(self.work, "identity.onnx")
        if not os.path.exists(path):
            code = ("import onnx, onnx.helper as h\n"
                    "x = h.make_tensor_value_info('x', onnx.TensorProto.FLOAT, [1])\n"
                    "y = h.make_tensor_value_info('y', onnx.TensorProto.FLOAT, [1])\n"
                    "g = h.make_graph([h.make_node('Identity', ['x'], ['y'])], 'identity', [x], [y])\n"
                    "m = h.make_model(g, opset_imports=[h.make_opsetid('', 13)])\n"
                    "m.ir_version = 8\n"
                    "onnx.save(m, %r)\n" % path)
            rc, out, err, _ = run([self.py, "-c", code])
            if rc != 0:
                return
        for t in self.threads:
            rc, out, err, _, oth = run_measured([self.node, os.path.join(HERE, "ort_timer.mjs"), "--overhead",
                                                 "--model", path, "--threads", str(t)] + self.timing_args(),
                                                env=thread_env(t), timeout=300)
            j = json_lines(out)
            if j and j[0].get("valid"):
                j[0]["others_cpu"] = oth
                self.res["machine"].setdefault("ort_overhead", {})[str(t)] = j[0]

    # ---------------------------------------------------------------- one model
    def model(self, name, yaml_rel, bmax):
        a = self.args
        yaml_path = yaml_rel if os.path.isabs(yaml_rel) else os.path.join(ROOT, yaml_rel)
        r = {"yaml": os.path.relpath(yaml_path, ROOT), "batches": [1, bmax], "runs": [], "notes": {}}
        self.res["models"][name] = r
        d = os.path.join(self.work, name)
        os.makedirs(d, exist_ok=True)
        log("== %s" % name)

        # 1. weights, inputs, references, ONNX (cached)
        man = None
        if self.py:
            t0 = time.perf_counter()
            rc, out, err, dt = run([self.py, os.path.join(HERE, "kiln_torch.py"), yaml_path, d,
                                    "--batches", "1,%d" % bmax], timeout=1800)
            if rc == 0:
                with open(os.path.join(d, "manifest.json")) as f:
                    man = json.load(f)
                r["prepare_s"] = round(dt, 2)
                r["params"] = man["params"]
                r["opset"] = man.get("opset")
                r["module_err"] = {b: e["module_err"] for b, e in man["batches"].items()}
                for line in err.splitlines():
                    if "max error" in line:
                        log(line)
            else:
                why = "preparing the model failed: " + (first_line(err.splitlines()[-1]) if err.strip() else "?")
                r["notes"]["prepare"] = why
                log("  " + why)
        kiln_yaml = os.path.join(d, man["yaml"]) if man else yaml_path
        if man and not man.get("batched"):
            r["batches"] = [1]

        # 2. kiln compile
        so = None
        kname = man["name"] if man else name
        if self.kiln.get("ok") and self.kiln.get("has_compile"):
            kiln = self.kiln["kiln"]
            obj = os.path.join(d, kname + ".o")
            self.quiet()
            cmd = [kiln, "compile", kiln_yaml, "-o", obj, "--header", os.path.join(d, kname + ".h"), "--emit", "obj",
                   a.opt]
            rc, out, err, dt, oth = run_measured(cmd, timeout=self.timeout)
            # The median of three compiles: a single one moves by 20-30% on the
            # shared machine (cold page cache for the weights, a busy core).
            times = [dt]
            while rc == 0 and len(times) < 3:
                self.quiet()
                rc_n, _, _, dt_n, oth_n = run_measured(cmd, timeout=self.timeout)
                if rc_n != 0:
                    break
                times.append(dt_n)
                oth = max(oth, oth_n) if oth is not None and oth_n is not None else oth
            dt = sorted(times)[len(times) // 2]
            comp = {"ok": rc == 0, "seconds": round(dt, 3), "runs_s": [round(t, 3) for t in times], "opt": a.opt,
                    "others_cpu": oth}
            if rc == 0:
                comp.update(parse_compile_output(out + err))
                comp["sections"] = object_sections(obj)
                log("  kiln compile %s: %.2f s; %s" % (a.opt, dt, "; ".join(
                    l.strip() for l in (out + err).splitlines()[1:] if l.strip())))
                if self.kiln.get("emit_so"):
                    sop = os.path.join(d, kname + ".so")
                    rc2, out2, err2, dt2 = run([kiln, "compile", kiln_yaml, "-o", sop, "--emit", "so", a.opt],
                                               timeout=self.timeout)
                    comp["so_seconds"] = round(dt2, 3)
                    if rc2 == 0:
                        so = ("so", sop)
                    else:
                        comp["so_error"] = first_line(err2 or out2)
                if so is None and self.tools.get("kiln_timer") is not None:
                    # link the timer with the object instead
                    exe = os.path.join(d, "kiln_timer_" + kname)
                    rt = self.kiln["rt_dir"]
                    rc3, out3, err3, _ = run([os.environ.get("CC", "cc"), "-O2", "-rdynamic", "-o", exe,
                                              os.path.join(HERE, "kiln_timer.c"), obj,
                                              "-I", os.path.join(ROOT, "runtime", "include"), "-L", rt,
                                              "-Wl,-rpath," + rt, "-lkiln_rt_blas", "-lkiln_rt", "-ldl", "-lm"])
                    if rc3 == 0:
                        so = ("exe", exe)
                    else:
                        comp["link_error"] = first_line(err3)
                if "lower_bound_bytes" not in comp:
                    comp.update(dump_memory_plan(kiln, kiln_yaml))
            else:
                comp["error"] = first_line(err or out, 300)
                r["notes"]["kiln"] = "kiln compile failed: " + comp["error"]
                log("  " + r["notes"]["kiln"])
            r["compile"] = comp
        elif not self.kiln.get("ok") or not self.kiln.get("has_compile"):
            r["notes"]["kiln"] = self.kiln.get("note") or "kiln unavailable"
        if so is None and "kiln" not in r["notes"]:
            if self.tools.get("kiln_timer") is None:
                r["notes"]["kiln"] = self.res["meta"]["tools_missing"].get("kiln_timer", "no kiln timer")
            else:
                c = r.get("compile", {})
                r["notes"]["kiln"] = "no loadable model: " + (c.get("so_error") or c.get("link_error") or "?")

        # 2b. reduced precision: data, kiln builds, the ONNX Runtime int8 model
        reduced = self.reduced(r, d, man, kiln_yaml, kname, so) if self.precisions[1:] else {}

        # 3. timings
        for t in self.threads:
            env = thread_env(t)
            for b, rnd in [(b, k) for b in r["batches"] for k in range(a.rounds)]:
                # kiln and ONNX Runtime alternate for --rounds rounds; each
                # keeps its best round (record), so a burst of load on the
                # shared machine during one of them does not decide a ratio.
                if so:
                    cmd = ([so[1]] if so[0] == "exe" else [self.tools["kiln_timer"], "--so", so[1]]) + [
                        "--name", kname, "--batch", str(b), "--threads", str(t), "--tol", str(TOL)]
                    if man:
                        e = man["batches"][str(b)]
                        cmd += ["--inputs", ",".join(os.path.join(d, f) for f in e["inputs"]),
                                "--refs", ",".join(os.path.join(d, f) for f in e["refs"])]
                    self.quiet()
                    self.record(r, "kiln", b, t, run_measured(cmd + self.timing_args(), env=env, timeout=self.timeout))
                if man and self.node:
                    e = man["batches"][str(b)]
                    shapes = {s["name"]: ([b] + s["shape"][1:] if man["batched"] else s["shape"]) for s in man["inputs"]}
                    cmd = [self.node, os.path.join(HERE, "ort_timer.mjs"), "--model", os.path.join(d, man["onnx"]),
                           "--batch", str(b), "--threads", str(t), "--tol", str(TOL),
                           "--inputs", ",".join("%s=%s" % (s["name"], os.path.join(d, f))
                                                for s, f in zip(man["inputs"], e["inputs"])),
                           "--refs", ",".join("%s=%s" % (s["name"], os.path.join(d, f))
                                              for s, f in zip(man["outputs"], e["refs"])),
                           "--shapes", json.dumps(shapes)]
                    self.quiet()
                    self.record(r, "ort", b, t, run_measured(cmd + self.timing_args(), env=env, timeout=self.timeout))
                for rt, cmd in self.reduced_cmds(reduced, man, d, kname, b, t):
                    self.quiet()
                    self.record(r, rt, b, t, run_measured(cmd + self.timing_args(), env=env, timeout=self.timeout))
            if name == "dense4096":
                self.dense_bounds(r, t, bmax)
            if man and self.py:
                kinds = ["eager", "torchscript"] + [k[len("torch_"):] for k in reduced.get("peers", [])
                                                    if k.startswith("torch_")]
                cmd = [self.py, os.path.join(HERE, "torch_timer.py"), d, "--threads", str(t),
                       "--batches", ",".join(map(str, r["batches"])), "--tol", str(TOL),
                       "--kinds", ",".join(kinds), "--tol-reduced", str(TOL_REDUCED)] + self.timing_args()
                if len(kinds) > 2 and t == self.threads[0]:
                    cmd.append("--heldout")
                self.quiet()
                rc, out, err, dt, oth = run_measured(cmd, env=env, timeout=self.timeout * 2)
                js = json_lines(out)
                for j in js:
                    self.record(r, j["runtime"], j["batch"], t, (0, json.dumps(j), "", 0, oth))
                if not js or rc != 0:
                    why = "torch timer failed (%s): %s" % ("timeout" if rc is None else "exit %s" % rc,
                                                          first_line(err.splitlines()[-1] if err.strip() else ""))
                    for kind in ["torch_" + k for k in kinds]:
                        for b in r["batches"]:
                            if not self.find(r, kind, b, t):
                                r["runs"].append({"runtime": kind, "batch": b, "threads": t, "valid": False,
                                                  "error": why})

        if reduced.get("quant"):
            self.heldout(r, reduced, man, d, kname, so)

    # ---------------------------------------------------------------- reduced precision
    def reduced(self, r, d, man, kiln_yaml, kname, so):
        """Calibration and held-out data, kiln compiled in each reduced
        precision, and the ONNX Runtime int8 model. Returns what the timing
        loop needs: {"so": {P: path}, "quant": quant.json or None,
        "ort_int8": path or None, "peers": [runtime, ...]}."""
        a = self.args
        out = {"so": {}, "quant": None, "ort_int8": None, "peers": []}
        r["precision"] = {}
        for p in self.precisions[1:]:
            for peer in PEERS_FOR.get(p, []):
                if peer not in out["peers"]:
                    out["peers"].append(peer)
        # the data (numpy; PyTorch for the f32 model's held-out outputs)
        if man and man.get("batched") and self.py:
            rc, o, err, dt = run([self.py, os.path.join(HERE, "kiln_quant.py"), "data", d], timeout=1800)
            if rc == 0:
                with open(os.path.join(d, "quant.json")) as f:
                    out["quant"] = json.load(f)
            else:
                r["notes"]["quant"] = "calibration data failed: " + first_line(err.splitlines()[-1] if err.strip() else o)
        else:
            r["notes"]["quant"] = ("no calibration or held-out data: " +
                                   ("the model has fixed shapes" if man and not man.get("batched")
                                    else self.torch_why or "PyTorch missing"))
        if "quant" in r["notes"]:
            log("  " + r["notes"]["quant"])
        calib = os.path.join(d, out["quant"]["calib"]["safetensors"]) if out["quant"] else "random"
        # kiln in each precision
        kiln = self.kiln.get("kiln")
        for p in self.precisions[1:]:
            info = {}
            r["precision"][p] = info
            if not (self.kiln.get("ok") and self.kiln.get("has_compile")):
                info["error"] = self.kiln.get("note") or "kiln unavailable"
                continue
            if not self.kiln.get("emit_so"):
                info["error"] = "this kiln cannot --emit so"
                continue
            sop = os.path.join(d, "%s.%s.so" % (kname, p))
            cmd = [kiln, "compile", kiln_yaml, "-o", sop, "--emit", "so", a.opt, "--precision", p]
            if p in ("int8", "auto"):
                cmd += ["--calibration", calib]
                info["calibration"] = os.path.basename(calib)
            if p == "auto":
                cmd += ["--tolerance", str(a.auto_tolerance)]
            self.quiet()
            rc, o, err, dt, oth = run_measured(cmd, timeout=self.timeout)
            info.update({"seconds": round(dt, 3), "others_cpu": oth, "command": " ".join(
                os.path.relpath(c, ROOT) if c.startswith(ROOT) else c for c in cmd[1:])})
            if rc != 0:
                info["error"] = "kiln compile --precision %s failed: %s" % (p, first_line(err or o, 300))
                log("  " + info["error"])
                continue
            text = o + err
            info["warnings"] = [l.strip() for l in text.splitlines() if "warning:" in l][:5]
            m = re.search(r"(?m)^\s*precision\s+(.*)$", text)
            if m:
                info["report"] = m.group(1).strip()
            info["kernels"] = kernel_counts(sop)
            ok, why = precision_status(p, text, info["kernels"])
            info["implemented"] = ok
            if not ok:
                info["not_implemented"] = why
                log("  kiln %s: n/a, %s" % (p, why))
                continue
            out["so"][p] = sop
            log("  kiln compile --precision %s: %.2f s; kernels %s" % (p, dt, info["kernels"]))
        # the ONNX Runtime int8 model (QDQ), from the same calibration data
        if "ort_int8" in out["peers"]:
            r["ort_int8"] = info = {}
            if not self.node:
                info["error"] = "ONNX Runtime: " + (self.ort_why or "not available")
            elif not out["quant"]:
                info["error"] = r["notes"].get("quant", "no calibration data")
            else:
                info.update(self.qdq_model(d, man, out["quant"]))
            if "error" in info:
                log("  ONNX Runtime int8: " + info["error"])
            else:
                out["ort_int8"] = os.path.join(d, info["file"])
                log("  ONNX Runtime int8 model: %s (%d Conv, %d Gemm, %d MatMul quantized, %d activations)" % (
                    info["file"], info["Conv"], info["Gemm"], info["MatMul"], info["activations"]))
        return out

    def qdq_model(self, d, man, q):
        """bench/kiln_quant.py augment -> ort_timer --ranges on the
        calibration samples -> kiln_quant.py qdq. Returns its summary or
        {"error": why}."""
        qs = os.path.join(HERE, "kiln_quant.py")
        rc, o, err, _ = run([self.py, qs, "augment", d], timeout=600)
        js = json_lines(o)
        if rc != 0 or not js:
            return {"error": "augmenting the ONNX model failed: " + first_line(err.splitlines()[-1] if err.strip() else o)}
        n = q["calib"]["n"]
        shapes = {s["name"]: [n] + s["shape"][1:] for s in man["inputs"]}
        ranges = os.path.join(d, "ranges.json")
        rc, o, err, _ = run([self.node, os.path.join(HERE, "ort_timer.mjs"), "--model", os.path.join(d, js[0]["augmented"]),
                             "--batch", str(n), "--threads", str(self.threads[-1]),
                             "--inputs", ",".join("%s=%s" % (s["name"], os.path.join(d, f))
                                                  for s, f in zip(man["inputs"], q["calib"]["inputs"])),
                             "--shapes", json.dumps(shapes), "--ranges", ranges], timeout=self.timeout)
        if rc != 0:
            return {"error": "calibration run of the augmented model failed: " + first_line(o or err)}
        rc, o, err, _ = run([self.py, qs, "qdq", d, "--ranges", ranges], timeout=600)
        js = json_lines(o)
        if rc != 0 or not js:
            return {"error": "building the QDQ model failed: " + first_line(err.splitlines()[-1] if err.strip() else o)}
        return js[0]

    def kiln_cmd(self, so, kname, b, t, tol):
        return ([so[1]] if so[0] == "exe" else [self.tools["kiln_timer"], "--so", so[1]]) + [
            "--name", kname, "--batch", str(b), "--threads", str(t), "--tol", str(tol)]

    def ort_cmd(self, model, man, d, b, t, tol, inputs, refs, shapes):
        return [self.node, os.path.join(HERE, "ort_timer.mjs"), "--model", model, "--batch", str(b),
                "--threads", str(t), "--tol", str(tol),
                "--inputs", ",".join("%s=%s" % (s["name"], os.path.join(d, f)) for s, f in zip(man["inputs"], inputs)),
                "--refs", ",".join("%s=%s" % (s["name"], os.path.join(d, f)) for s, f in zip(man["outputs"], refs)),
                "--shapes", json.dumps(shapes)]

    def reduced_cmds(self, reduced, man, d, kname, b, t):
        """[(runtime, timer command)] of one round's reduced-precision runs."""
        cmds = []
        for p, sop in reduced.get("so", {}).items():
            if self.tools.get("kiln_timer") is None:
                continue
            cmd = self.kiln_cmd(("so", sop), kname, b, t, TOL_REDUCED)
            if man:
                e = man["batches"][str(b)]
                cmd += ["--inputs", ",".join(os.path.join(d, f) for f in e["inputs"]),
                        "--refs", ",".join(os.path.join(d, f) for f in e["refs"])]
            cmds.append(("kiln_" + p, cmd))
        if reduced.get("ort_int8"):
            e = man["batches"][str(b)]
            shapes = {s["name"]: [b] + s["shape"][1:] for s in man["inputs"]}
            cmds.append(("ort_int8", self.ort_cmd(reduced["ort_int8"], man, d, b, t, TOL_REDUCED, e["inputs"],
                                                  e["refs"], shapes)))
        return cmds

    def heldout(self, r, reduced, man, d, kname, so):
        """Every build's outputs on the held-out samples, against the f32
        model's (the float32 PyTorch module's, heldout.ref*.bin); kiln's
        reduced precisions also against kiln f32's."""
        q = reduced["quant"]
        n = q["heldout"]["n"]
        refs = [os.path.join(d, f) for f in q["heldout"]["refs"]]
        ins = [os.path.join(d, f) for f in q["heldout"]["inputs"]]
        acc = r["accuracy"] = {"reference": "the float32 PyTorch module on %d held-out samples (seed %d)" % (
            n, q["heldout"]["seed"])}
        t = self.threads[0]
        env = thread_env(t)
        outs = {}
        builds = ([("kiln", so)] if so else []) + [("kiln_" + p, ("so", sp)) for p, sp in reduced["so"].items()]
        for rt, lib in builds:
            if self.tools.get("kiln_timer") is None:
                break
            prefix = os.path.join(d, "heldout." + rt)
            rc, o, err, _ = run(self.kiln_cmd(lib, kname, n, t, 1e30) + [
                "--inputs", ",".join(ins), "--refs", ",".join(refs), "--save", prefix], env=env, timeout=self.timeout)
            js = json_lines(o)
            if rc == 0 and js and js[-1].get("saved"):
                outs[rt] = ["%s.out%d.bin" % (prefix, j) for j in range(len(refs))]
            else:
                acc[rt] = {"error": first_line((js[-1].get("error") if js else "") or err or "exit %s" % rc)}
        if reduced.get("ort_int8"):
            prefix = os.path.join(d, "heldout.ort_int8")
            shapes = {s["name"]: [n] + s["shape"][1:] for s in man["inputs"]}
            rc, o, err, _ = run(self.ort_cmd(reduced["ort_int8"], man, d, n, t, 1e30, q["heldout"]["inputs"],
                                             q["heldout"]["refs"], shapes) + ["--save", prefix],
                                env=env, timeout=self.timeout)
            js = json_lines(o)
            if rc == 0 and js and js[-1].get("saved"):
                outs["ort_int8"] = ["%s.out%d.bin" % (prefix, j) for j in range(len(refs))]
            else:
                acc["ort_int8"] = {"error": first_line((js[-1].get("error") if js else "") or err or "exit %s" % rc)}
        for rt in ("torch_int8", "torch_bf16"):
            fs = [os.path.join(d, "heldout.%s.out%d.bin" % (rt, j)) for j in range(len(refs))]
            if rt in reduced["peers"] and all(os.path.exists(f) for f in fs):
                outs[rt] = fs
        row = man["outputs"][0]["shape"][-1] if man["outputs"][0]["shape"] else None
        for rt, fs in outs.items():
            acc[rt] = accuracy(fs, refs, n, row)
            if rt.startswith("kiln_") and "kiln" in outs:
                acc[rt]["vs_kiln_f32"] = accuracy(fs, outs["kiln"], n, row)
            x = acc[rt]
            if "top1" in x:
                log("  held-out accuracy %-18s top-1 agreement %.4f, max rel. error %.3g" % (
                    LABEL.get(rt, rt), x["top1"], x["max_rel_err"]))

    @staticmethod
    def find(r, runtime, b, t):
        for x in r["runs"]:
            if x.get("runtime") == runtime and x.get("batch") == b and x.get("threads") == t:
                return x
        return None

    def quiet(self):
        w = wait_quiet(self.args.wait_quiet)
        if w >= self.args.wait_quiet > 0:
            log("  (still busy after waiting %.0f s; measuring anyway)" % w)

    def record(self, r, runtime, b, t, result):
        """Adds a timer's result to r["runs"]. A second round of the same
        runtime, batch and threads keeps the faster valid median; all the
        rounds' medians stay in round_medians_s."""
        rc, out, err, dt, oth = result
        js = json_lines(out)
        if js:
            j = js[-1]
        else:
            j = {"valid": False, "error": "timed out" if rc is None else
                 "exit %s: %s" % (rc, first_line(err) or "no output")}
        if rc is None:
            j = {"valid": False, "error": "timed out after %d s" % self.timeout}
        elif rc < 0:
            j = {"valid": False, "error": "crashed (signal %d)" % -rc}
        j.update({"runtime": runtime, "batch": b, "threads": t, "others_cpu": oth})
        prev = self.find(r, runtime, b, t)
        if prev is not None and prev.get("valid") and "median_s" in prev:
            rounds = prev.get("round_medians_s", [prev["median_s"]])
            if not j.get("valid"):
                prev.setdefault("round_errors", []).append(j.get("error") or "invalid")
            if j.get("valid") and "median_s" in j:
                rounds = rounds + [j["median_s"]]
                if j["median_s"] < prev["median_s"]:
                    r["runs"].remove(prev)
                    r["runs"].append(j)
                    prev = j
            prev["round_medians_s"] = rounds
        else:
            if prev is not None:
                r["runs"].remove(prev)
            if j.get("valid") and "median_s" in j:
                j["round_medians_s"] = [j["median_s"]]
            r["runs"].append(j)
        if j.get("valid"):
            msg = "median %.4g ms, p90 %.4g ms, %.4g items/s, max error %.2g (%d runs)%s" % (
                j["median_s"] * 1e3, j["p90_s"] * 1e3, j["items_per_s"], j.get("max_err", 0), j["iters"],
                "; other processes used %.1f cores" % oth if oth is not None and oth >= 0.1 else "")
        elif "max_err" in j:
            msg = "INVALID: max error %.3g > %g, not timed" % (j["max_err"], TOL)
        else:
            msg = "failed: %s" % j.get("error")
        log("  %-18s b%-4d T=%d  %s" % (LABEL.get(runtime, runtime), b, t, msg))

    # ---------------------------------------------------------------- all
    def go(self):
        a = self.args
        self.threads = [int(x) for x in a.threads.split(",")]
        self.precisions = ["f32"] + [p for p in a.precision_list if p != "f32"]
        names = [x.strip() for x in a.models.split(",")] if a.models else [m[0] for m in MODELS]
        known = {m[0]: m for m in MODELS}
        self.models = []
        for n in names:
            if n in known:
                self.models.append(known[n])
            elif n.endswith(".yaml") and os.path.exists(n):
                self.models.append((os.path.splitext(os.path.basename(n))[0], os.path.abspath(n), 32))
            else:
                sys.exit("unknown model %r (known: %s, or a path to a .yaml)" % (n, ", ".join(known)))
        t0 = time.time()
        self.setup()
        self.machine()
        self.ort_overhead()
        for m in self.models:
            self.model(*m)
        self.res["meta"]["wall_s"] = round(time.time() - t0, 1)
        try:
            with open("/proc/loadavg") as f:
                self.res["meta"]["machine"]["loadavg_end"] = f.read().split()[:3]
        except OSError:
            pass
        md = report(self.res, self.models)
        out = a.out
        os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
        with open(out, "w") as f:
            f.write(md)
        jpath = os.path.splitext(out)[0] + ".json"
        with open(jpath, "w") as f:
            json.dump(self.res, f, indent=1, sort_keys=True)
        print(md)
        log("wrote %s and %s (%.0f s)" % (out, jpath, self.res["meta"]["wall_s"]))


# --------------------------------------------------------------------------
# the table


def fmt(x, digits=3):
    if x is None:
        return "–"
    if x == 0:
        return "0"
    if abs(x) >= 10 ** digits:
        return "%d" % round(x)
    return "%.*g" % (digits, x)


def fmt_bytes(n):
    if n is None:
        return "–"
    for unit, f in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= f:
            return "%s %s" % (fmt(n / f), unit)
    return "%d B" % n


def ratio(x):
    return "–" if x is None else "%.2fx" % x


class Notes:
    def __init__(self):
        self.items = []

    def ref(self, text):
        if text not in self.items:
            self.items.append(text)
        return "[%d]" % (self.items.index(text) + 1)


def report(res, models):
    meta = res["meta"]
    mach = meta["machine"]
    notes = Notes()
    threads = meta["threads"]
    lines = []
    A = lines.append
    A("# kiln benchmark results")
    A("")
    lines.extend(host_section(res))
    A("")
    A("## Results")
    A("")
    k = meta["kiln"]
    targets = sorted({m.get("compile", {}).get("target") for m in res["models"].values()} - {None})
    A("- kiln: %s%s%s" % (meta.get("kiln_rev") or "?", "; " + k["note"] if k.get("note") else "",
                          "; code for " + ", ".join(targets) if targets else ""))
    sg = res["machine"].get("sgemm", {})
    cfg = (meta.get("openblas") or {}).get("config") or next(
        (v.get("config") for v in sg.values() if v.get("config")), None)
    A("- peers: ONNX Runtime %s (onnxruntime-node, CPU EP, optimization level all, opset %s); PyTorch %s; %s" % (
        meta.get("onnxruntime") or "n/a (%s)" % meta.get("ort_missing"),
        next((m.get("opset") for m in res["models"].values() if m.get("opset")), "–"),
        meta.get("torch") or "n/a (%s)" % meta.get("torch_missing"), cfg or "OpenBLAS: " + meta.get("tools_missing", {}).get(
            "sgemm_timer", "sgemm measured with the dense4096 model only")))
    t = meta["timing"]
    A("- method: same weights and inputs for every runtime; outputs checked against a float64 PyTorch "
      "reference (max |y - ref| / max |ref| <= %g) before timing; warm-up >= %g s and >= 2 calls, then "
      ">= %d calls and >= %g s (at most %g s once 3 calls are done), each call timed alone; "
      "kiln and ONNX Runtime alternate in %d rounds per figure, the faster round's median counts; "
      "T = threads (one pool of T threads per runtime)" % (
          meta["tolerance"], t["warmup_time"], t["min_iters"], t["min_time"], t["max_time"], meta.get("rounds", 1)))
    A("- ratios: peer time / kiln time (throughput: kiln items/s / peer items/s): > 1 means kiln is faster; "
      "\"kiln / bound\": kiln against OpenBLAS sgemm or the measured read bandwidth (same direction); "
      "\"others' CPU\": cores used by other processes while the row was measured (the largest over its cells): "
      "a row with T threads and more than %d - T busy cores elsewhere was measured on a contended machine"
      % (mach.get("cpus") or 0))
    A("")
    hdr = ["model", "figure", "T", "kiln", "ONNX Runtime", "PyTorch eager", "TorchScript", "OpenBLAS / machine",
           "kiln vs ORT", "vs eager", "vs TorchScript", "kiln / bound", "others' CPU"]
    A("| " + " | ".join(hdr) + " |")
    A("|" + "|".join(["---"] * 3 + ["---:"] * (len(hdr) - 3)) + "|")

    def row(model, fig, t, cells, bound="", r=("", "", ""), rb="", oth=None):
        o = ""
        if isinstance(oth, (int, float)):
            o = "%.1f" % oth
        A("| " + " | ".join([model, fig, str(t)] + cells + [bound] + list(r) + [rb, o]) + " |")

    # machine rows
    m = res["machine"]
    for tt in threads:
        f = m.get("fma", {}).get(str(tt), {})
        row("machine", "FMA peak, registers only (GFLOP/s)", tt, ["", "", "", ""],
            fmt(f.get("gflops")) if "gflops" in f else notes.ref("FMA microbenchmark: " + str(f.get("error", "not run"))),
            oth=f.get("others_cpu"))
    for key, label in (("bandwidth", "read bandwidth, 512 MiB, best of run (GB/s)"),
                       ("bandwidth64", "read bandwidth, 64 MiB re-read, best of run (GB/s)")):
        for tt in threads:
            f = best_bw(m, key, tt)
            row("machine", label, tt, ["", "", "", ""],
                fmt(f.get("gb_per_s")) if "gb_per_s" in f else notes.ref(
                    "bandwidth: " + str(f.get("error", "not run"))), oth=f.get("others_cpu"))
    for tt in threads:
        f = m.get("ort_overhead", {}).get(str(tt))
        if f:
            row("machine", "ORT per-call floor, Identity of 1 float (ms)", tt,
                ["", fmt(f["median_s"] * 1e3), "", ""], oth=f.get("others_cpu"))

    def cell(model, r, runtime, b, t, what):
        """(text, value) for one runtime's figure."""
        x = Bench.find(r, runtime, b, t)
        if x is not None and x.get("others_cpu") is not None:
            busy.append(x["others_cpu"])
        if runtime == "kiln" and "kiln" in r["notes"] and x is None:
            return "n/a " + notes.ref(r["notes"]["kiln"]), None
        if x is None:
            if runtime == "ort":
                why = meta.get("ort_missing") or r["notes"].get("prepare", "not run")
                return "n/a " + notes.ref("ONNX Runtime: " + why), None
            if runtime.startswith("torch"):
                why = meta.get("torch_missing") or r["notes"].get("prepare", "not run")
                return "n/a " + notes.ref("PyTorch: " + why), None
            return "–", None
        if not x.get("valid"):
            if "max_err" in x:
                return "INVALID (err %.2g)" % x["max_err"], None
            return "n/a " + notes.ref("%s %s b%d T=%d: %s" % (LABEL[runtime], model, b, t, x.get("error"))), None
        if what == "median":
            v = x["median_s"] * 1e3
        elif what == "p90":
            v = x["p90_s"] * 1e3
        elif what == "ips":
            v = x["items_per_s"]
        elif what == "gflops":
            v = x["items_per_s"] * 2 * 4096 * 4096 / 1e9
        elif what == "gbs":
            v = 4096 * 4097 * 4 / x["median_s"] / 1e9
        else:
            v = None
        txt = fmt(v)
        if runtime == "kiln" and x.get("checked") is False:
            txt += " " + notes.ref("kiln outputs not checked (no PyTorch reference); inputs are a fixed pattern")
        return txt, v

    for name, _, bmax in models:
        r = res["models"].get(name)
        if r is None:
            continue
        bs = r["batches"]
        is_dense = name == "dense4096"
        figs = [("b1 latency, median (ms)", 1, "median", True), ("b1 latency, p90 (ms)", 1, "p90", True)]
        if bmax in bs and bmax != 1:
            figs.append(("b%d throughput (items/s)" % bmax, bmax, "ips", False))
        if is_dense:
            figs.append(("b1 weight streaming (GB/s)", 1, "gbs", False))
            if bmax in bs:
                figs.append(("b%d GFLOP/s" % bmax, bmax, "gflops", False))
        for fig, b, what, lower_better in figs:
            for tt in threads:
                cells, vals = [], {}
                busy = []
                for rt in ["kiln"] + PEERS:
                    txt, v = cell(name, r, rt, b, tt, what)
                    cells.append(txt)
                    vals[rt] = v
                rs = []
                for rt in PEERS:
                    kv, pv = vals["kiln"], vals[rt]
                    if kv and pv:
                        rs.append(ratio(pv / kv if lower_better else kv / pv))
                    else:
                        rs.append("–")
                bound, rb = "", ""
                if is_dense:
                    bv = None
                    if what in ("median", "p90", "ips", "gflops"):
                        s = m.get("sgemm", {}).get("%d/%d" % (b, tt))
                        if s and s.get("others_cpu") is not None:
                            busy.append(s["others_cpu"])
                        if s and "median_s" in s:
                            bv = {"median": s["median_s"] * 1e3, "p90": s["p90_s"] * 1e3,
                                  "ips": b / s["median_s"], "gflops": s["gflops"]}[what]
                    elif what == "gbs":
                        bw = best_bw(m, "bandwidth", tt)
                        bv = bw.get("gb_per_s")
                        if bw.get("others_cpu") is not None:
                            busy.append(bw["others_cpu"])
                    if bv:
                        bound = fmt(bv)
                        kv = vals["kiln"]
                        if kv:
                            rb = ratio(bv / kv if lower_better else kv / bv)
                row(name, fig, tt, cells, bound, rs, rb, max(busy) if busy else None)
        # errors
        errs = []
        for rt in ["kiln"] + PEERS:
            parts = []
            for b in bs:
                x = Bench.find(r, rt, b, threads[0])
                parts.append("%.1g" % x["max_err"] if x and "max_err" in x and x.get("checked") is not False else "–")
            errs.append(" / ".join(parts))
        row(name, "max error vs float64, b%s" % " / b".join(map(str, bs)), threads[0], errs)
        c = r.get("compile")
        if c and c.get("ok"):
            row(name, "kiln compile %s (s)" % c.get("opt", ""), "", [fmt(c["seconds"]), "", "", ""],
                oth=c.get("others_cpu"))
            sec = c.get("sections") or {}
            row(name, "object: code (.text) / weights+consts (.rodata)", "",
                ["%s / %s" % (fmt_bytes(sec.get("text")), fmt_bytes(sec.get("rodata"))), "", "", ""])
            x1 = Bench.find(r, "kiln", 1, threads[0])
            xb = Bench.find(r, "kiln", bmax, threads[0]) if bmax in bs else None
            ws = []
            for x in (x1, xb):
                if x and "workspace_bytes" in x:
                    ws.append(fmt_bytes(x["workspace_bytes"]))
            lb = c.get("lower_bound_reported")
            txt = " / ".join(ws) if ws else (c.get("workspace_reported") or "–")
            txt += "; lower bound b1: " + (lb if lb else "n/a " + notes.ref(c.get(
                "lower_bound_note", "neither `kiln compile` nor `kiln dump --after schedule` reports a workspace "
                "lower bound")))
            lb1 = lower_bound_b1(c)
            rb = ""
            scratch = c.get("scratch_b1_bytes") or 0
            if scratch:
                txt += "; of which kernel scratch (Winograd): %s" % fmt_bytes(scratch)
            if lb1 and x1 and "workspace_bytes" in x1:
                rb = "%.2fx" % ((x1["workspace_bytes"] - scratch) / lb1)
            if "plan_batch_bytes" in c:
                txt += "; planner: %s" % fmt_bytes(c["plan_fixed_bytes"] + c["plan_batch_bytes"])
            row(name, "workspace b1 / b%d" % bmax if xb else "workspace", "", [txt, "", "", ""],
                rb=rb and "b1 / bound " + rb)
        elif c:
            row(name, "kiln compile", "", ["failed " + notes.ref(r["notes"].get("kiln", "?")), "", "", ""])
    A("")
    if len(meta.get("precisions", ["f32"])) > 1:
        lines.extend(precision_section(res, models, notes))
    if notes.items:
        A("Notes:")
        A("")
        for i, n in enumerate(notes.items):
            A("%d. %s" % (i + 1, n.replace("|", "\\|")))
        A("")
    A("## Issue-4 targets, as measured in this run")
    A("")
    for line in targets_summary(res, models, threads):
        A("- " + line)
    A("")
    return "\n".join(lines)


def precision_rows(precisions):
    """[(runtime, label, the runtime whose f32 it is compared with)] of the
    reduced-precision table."""
    rows = [("kiln", "kiln f32", None)]
    rows += [("kiln_" + p, "kiln " + p, "kiln") for p in precisions if p != "f32"]
    rows.append(("ort", "ONNX Runtime f32", None))
    if "int8" in precisions:
        rows.append(("ort_int8", "ONNX Runtime int8 (QDQ)", "ort"))
    rows.append(("torch_torchscript", "TorchScript f32", None))
    if "int8" in precisions:
        rows.append(("torch_int8", "PyTorch int8 (FX)", "torch_torchscript"))
    if "bf16" in precisions:
        rows.append(("torch_bf16", "PyTorch bf16 (autocast)", "torch_torchscript"))
    return rows


def precision_section(res, models, notes):
    """The second table: each runtime in each precision, its time, its
    speed-up over the same runtime in f32, and its accuracy on the held-out
    samples."""
    meta = res["meta"]
    threads = meta["threads"]
    precs = meta["precisions"]
    out = ["## Reduced precision", ""]
    out.append("- precisions: %s; kiln compiled with `--precision P` (int8 and auto with `--calibration` the 64 "
               "calibration samples, auto with `--tolerance %g`); peers: ONNX Runtime int8 (a QDQ model built by "
               "bench/kiln_quant.py from the same calibration samples), PyTorch int8 (FX post-training static "
               "quantization on the same samples), PyTorch bf16 (autocast, traced and frozen)" % (
                   ", ".join(precs), meta.get("auto_tolerance", 0.01)))
    out.append("- timed like f32 (same rounds: kiln and ONNX Runtime builds alternate), once their outputs are within "
               "%g of the float64 reference (a check against garbage, not a measure of accuracy)" %
               meta.get("tolerance_reduced", TOL_REDUCED))
    out.append("- speed-up: the same runtime's f32 time / this time (throughput: this / f32); > 1 is faster than f32")
    out.append("- accuracy, on 256 held-out samples (not the calibration ones), against the f32 model (the float32 "
               "PyTorch module, which every f32 runtime matches within 1e-6): top-1 agreement = the fraction of "
               "samples (of samples and positions, for an output with more than one row of scores per sample: "
               "the transformer's 32 tokens) whose argmax over the first output's last axis is the f32 model's; "
               "max rel. error = max |y - y_f32| / "
               "max |y_f32| over all outputs")
    out.append("")
    hdr = ["model", "runtime", "T", "b1 latency, median (ms)", "speed-up", "throughput (items/s)", "speed-up",
           "top-1 agreement", "max rel. error", "others' CPU"]
    out.append("| " + " | ".join(hdr) + " |")
    out.append("|" + "|".join(["---"] * 3 + ["---:"] * (len(hdr) - 3)) + "|")
    for name, _, bmax in models:
        r = res["models"].get(name)
        if r is None:
            continue
        bs = r["batches"]
        acc = r.get("accuracy", {})
        pinfo = r.get("precision", {})

        def missing(rt):
            """Why a runtime has no figure for this model, or None."""
            if rt.startswith("kiln_"):
                i = pinfo.get(rt[5:], {})
                if i.get("not_implemented"):
                    return "n/a (not implemented) " + notes.ref(i["not_implemented"])
                if i.get("error"):
                    return "n/a " + notes.ref("kiln %s, %s: %s" % (rt[5:], name, i["error"]))
            if rt.startswith("ort") and meta.get("ort_missing"):
                return "n/a " + notes.ref("ONNX Runtime: " + meta["ort_missing"])
            if rt == "ort_int8" and (r.get("ort_int8") or {}).get("error"):
                return "n/a " + notes.ref("ONNX Runtime int8, %s: %s" % (name, r["ort_int8"]["error"]))
            if rt.startswith("torch") and meta.get("torch_missing"):
                return "n/a " + notes.ref("PyTorch: " + meta["torch_missing"])
            return None

        for tt in threads:
            for rt, label, base in precision_rows(precs):
                why = missing(rt)
                busy = []
                cells = []
                for b in (1, bmax if bmax in bs and bmax != 1 else None):
                    if b is None:
                        cells += ["–", ""]
                        continue
                    x = Bench.find(r, rt, b, tt)
                    if x is not None and x.get("others_cpu") is not None:
                        busy.append(x["others_cpu"])
                    if why:
                        cells += [why, ""]
                        continue
                    if x is None:
                        cells += ["–", ""]
                        continue
                    if not x.get("valid"):
                        cells += ["INVALID (err %.2g)" % x["max_err"] if "max_err" in x else "n/a " + notes.ref(
                            "%s %s b%d T=%d: %s" % (label, name, b, tt, x.get("error"))), ""]
                        continue
                    v = x["median_s"] * 1e3 if b == 1 else x["items_per_s"]
                    sp = ""
                    y = Bench.find(r, base, b, tt) if base else None
                    if y and y.get("valid") and "median_s" in y:
                        sp = ratio(y["median_s"] / x["median_s"])
                    cells += [fmt(v), sp]
                a = acc.get(rt) if tt == threads[0] else None
                if a and "top1" in a:
                    ac = ["%.4f" % a["top1"], "%.2g" % a["max_rel_err"]]
                elif a and "error" in a:
                    ac = ["n/a " + notes.ref("held-out run of %s, %s: %s" % (label, name, a["error"])), ""]
                elif why and tt == threads[0]:
                    ac = ["n/a", "n/a"]
                else:
                    ac = ["", ""]
                lab = label
                if rt == "kiln_auto" and pinfo.get("auto", {}).get("report"):
                    lab += " " + notes.ref("kiln auto, %s: the compile report's precision line: %s" % (
                        name, pinfo["auto"]["report"]))
                out.append("| " + " | ".join([name, lab, str(tt)] + cells + ac + [
                    "%.1f" % max(busy) if busy else ""]) + " |")
        if "quant" in r.get("notes", {}):
            out.append("| %s | (all) | | %s | | | | | | |" % (name, "n/a " + notes.ref(r["notes"]["quant"])))
    out.append("")
    out.append("Throughput is at batch %s (the main table's batch)." % "/".join(
        sorted({str(m[2]) for m in models if m[0] in res["models"]})))
    out.append("")
    return out


HOST_KIND = {"avx512f": "AVX-512", "avx2+fma": "AVX2"}


def host_section(res):
    """The report's opening: which machine this is and what it can do, every
    figure from this run (machine_info, kiln's target line, the machine and
    sgemm timers, the OpenBLAS core choice); "not recorded" where the run
    (or an older JSON given to --render) has no such figure."""
    meta, m = res["meta"], res["machine"]
    mach = meta["machine"]
    threads = meta["threads"]
    nr = "not recorded"
    out = ["## Host", ""]
    kind = HOST_KIND.get(mach.get("isa"), mach.get("isa") or nr)
    out.append("- host: %s; host kind %s (docs/performance.md keeps one table per host kind)" % (
        mach.get("host") or nr, kind))
    out.append("- CPU: %s; %s CPUs%s; %s GiB RAM; OS %s" % (
        mach.get("cpu") or nr, mach.get("cpus"), ", virtual machine" if mach.get("hypervisor") else "",
        mach.get("mem_gib"), mach.get("platform") or ""))
    isa = mach.get("isa_extensions")
    out.append("- ISA extensions: %s" % (", ".join(isa) if isa else ("none of " + ", ".join(ISA_FLAGS)
                                                                      if isa is not None else nr)))
    c = mach.get("caches")
    out.append("- caches (CPU 0, from sysfs): %s" % (
        ", ".join("%s %s" % (lv, fmt_bytes(c[lv])) for lv in ("L1d", "L2", "L3") if lv in c) if c else nr))
    if mach.get("kiln_cpu"):
        out.append("- kiln compiles for: cpu %s; the target line of `kiln compile`: %s" % (
            mach["kiln_cpu"], mach.get("kiln_target")))
    else:
        out.append("- kiln compiles for: %s" % (mach.get("kiln_cpu_error") or nr))

    def per_thread(get, unit):
        parts = []
        for t in threads:
            v = get(t)
            parts.append("%d thread%s %s" % (t, "" if t == 1 else "s", "%s %s" % (fmt(v), unit)
                                             if isinstance(v, (int, float)) else nr))
        return ", ".join(parts)

    out.append("- FMA peak, registers only: " + per_thread(lambda t: m.get("fma", {}).get(str(t), {}).get("gflops"),
                                                           "GFLOP/s"))
    out.append("- read bandwidth, best of run: 512 MiB: %s; 64 MiB re-read: %s" % (
        per_thread(lambda t: best_bw(m, "bandwidth", t).get("gb_per_s"), "GB/s"),
        per_thread(lambda t: best_bw(m, "bandwidth64", t).get("gb_per_s"), "GB/s")))
    ob = meta.get("openblas")
    if ob:
        out.append("- OpenBLAS core: %s (--openblas-core %s; OpenBLAS's own pick: %s): %s" % (
            ob.get("core") or nr, ob.get("mode"), ob.get("own_core") or nr, ob.get("reason")))
        sc = m.get("sgemm_core", {})
        parts = []
        for t in threads:
            run_ = sc.get("run", {}).get(str(t), {})
            own = sc.get("own", {}).get(str(t))
            txt = "T=%d: %s" % (t, "%s GFLOP/s with %s" % (fmt(run_["gflops"]), run_.get("core"))
                                if "gflops" in run_ else run_.get("error", nr))
            if own is not None:
                txt += ", %s" % ("%s GFLOP/s with %s (OpenBLAS's own pick, not used)" % (
                    fmt(own["gflops"]), own.get("core")) if "gflops" in own else own.get("error", nr))
            parts.append(txt)
        out.append("- OpenBLAS sgemm 256 x 4096 x 4096: %s" % "; ".join(parts))
    else:
        out.append("- OpenBLAS core: " + nr)
    out.append("- date: %s; commit: %s; run took %s s%s" % (
        meta.get("date"), meta.get("kiln_rev") or nr, meta.get("wall_s"), " (--quick)" if meta.get("quick") else ""))
    out.append("- load average %s at start, %s at end (shared machine: compare figures of the same run only)" % (
        " ".join(mach.get("loadavg_start", [])) or nr, " ".join(mach.get("loadavg_end", [])) or nr))
    return out


def best_bw(m, key, t):
    """The best read-bandwidth measurement of the run for T threads ({} if none)."""
    v = m.get(key, {}).get(str(t), [])
    if isinstance(v, dict):
        v = [v]
    ok = [x for x in v if "gb_per_s" in x]
    if ok:
        return max(ok, key=lambda x: x["gb_per_s"])
    return v[0] if v else {}


def lower_bound_b1(c):
    """The workspace lower bound at batch 1 in bytes, or None."""
    if not c.get("lower_bound_bytes"):
        return None
    return c["lower_bound_bytes"] + (c.get("lower_bound_per_batch_bytes") or 0)


def targets_summary(res, models, threads):
    out = []
    M = res["models"]
    m = res["machine"]

    def get(name, rt, b, t):
        r = M.get(name)
        x = Bench.find(r, rt, b, t) if r else None
        return x if x and x.get("valid") else None

    def verdict(ok):
        return "met" if ok is True else ("not met" if ok is False else "n/a")

    # dense GEMM
    if "dense4096" in M:
        parts, oks = [], []
        for t in threads:
            x = get("dense4096", "kiln", 256, t)
            s = m.get("sgemm", {}).get("256/%d" % t)
            if x and s and "gflops" in s:
                g = x["items_per_s"] * 2 * 4096 ** 2 / 1e9
                parts.append("T=%d: %.1f vs %.1f GFLOP/s" % (t, g, s["gflops"]))
                oks.append(g >= s["gflops"])
        out.append("4096x4096 dense at batch 256 >= OpenBLAS sgemm: %s (%s)" % (
            verdict(all(oks) if oks else None), "; ".join(parts) or "no data"))
        parts, oks = [], []
        for t in threads:
            x = get("dense4096", "kiln", 1, t)
            bw = best_bw(m, "bandwidth", t).get("gb_per_s")
            bw64 = best_bw(m, "bandwidth64", t).get("gb_per_s")
            if x and bw:
                g = 4096 * 4097 * 4 / x["median_s"] / 1e9
                parts.append("T=%d: %.1f GB/s = %.0f%% of %.1f GB/s%s" % (
                    t, g, 100 * g / bw, bw, " (%.0f%% of the 64 MiB re-read figure, %.1f GB/s)" % (100 * g / bw64, bw64)
                    if bw64 else ""))
                oks.append(g >= 0.9 * bw)
        out.append(">= 90%% of memory bandwidth (512 MiB read) at batch 1: %s (%s)" % (
            verdict(all(oks) if oks else None), "; ".join(parts) or "no data"))
    # latency vs ORT
    slower, small, have = [], [], False
    for name, _, _ in models:
        for t in threads:
            k, o = get(name, "kiln", 1, t), get(name, "ort", 1, t)
            if k and o:
                have = True
                sp = o["median_s"] / k["median_s"]
                if sp <= 1:
                    slower.append("%s T=%d (%.2fx)" % (name, t, sp))
                if name in ("mlp", "lenet", "resnet20") and sp < 2:
                    small.append("%s T=%d (%.2fx)" % (name, t, sp))
    out.append("batch-1 latency faster than ONNX Runtime everywhere: %s%s" % (
        verdict(not slower if have else None), "; slower on " + ", ".join(slower) if slower else ""))
    out.append(">= 2x ONNX Runtime at batch 1 on MLP, LeNet, ResNet-20: %s%s" % (
        verdict(not small if have else None), "; below 2x: " + ", ".join(small) if small else ""))
    behind, have = [], False
    for name, _, bmax in models:
        for t in threads:
            k = get(name, "kiln", bmax, t)
            for rt in PEERS:
                p = get(name, rt, bmax, t)
                if k and p:
                    have = True
                    sp = k["items_per_s"] / p["items_per_s"]
                    if sp <= 1:
                        behind.append("%s vs %s T=%d (%.2fx)" % (name, LABEL[rt], t, sp))
    out.append("batch-32 throughput (256 for the dense layer) ahead of ONNX Runtime and PyTorch everywhere: %s%s" % (
        verdict(not behind if have else None), "; behind: " + ", ".join(behind) if behind else ""))
    c = M.get("resnet18", {}).get("compile")
    if c and c.get("ok"):
        out.append("ResNet-18 compile < 3 s at %s: %s (%.2f s)" % (c.get("opt"), verdict(c["seconds"] < 3), c["seconds"]))
    else:
        out.append("ResNet-18 compile < 3 s: n/a")
    lbs = []
    for name, _, bmax in models:
        c = M.get(name, {}).get("compile") or {}
        x = get(name, "kiln", 1, threads[0])
        lb1 = lower_bound_b1(c)
        if lb1 and x and "workspace_bytes" in x:
            lbs.append((name, (x["workspace_bytes"] - (c.get("scratch_b1_bytes") or 0)) / lb1))
    if lbs:
        bad = ["%s %.2fx" % (n, q) for n, q in lbs if q > 1.1]
        out.append("workspace of the compiled model (values, without kernel scratch) <= 1.1x lower bound (batch 1): %s (%s)" % (
            verdict(not bad), ", ".join("%s %.2fx" % (n, q) for n, q in lbs)))
    else:
        out.append("workspace <= 1.1x lower bound: n/a (kiln compile does not report the lower bound yet)")
    return out


def main():
    ap = argparse.ArgumentParser(description="kiln vs ONNX Runtime vs PyTorch (docs/performance.md)")
    ap.add_argument("--quick", action="store_true", help="half the timing budget")
    ap.add_argument("--rounds", type=int, default=2,
                    help="alternating rounds of kiln and ONNX Runtime per figure; the best round counts (default 2)")
    ap.add_argument("--models", help="comma-separated: %s, or paths to .yaml files" % ",".join(m[0] for m in MODELS))
    ap.add_argument("--threads", default="1,2", help="thread counts (default 1,2)")
    ap.add_argument("--out", default=os.path.join(HERE, "results", "latest.md"),
                    help="markdown table (default bench/results/latest.md; raw figures in the .json beside it)")
    ap.add_argument("--work", default=os.path.join(ROOT, "build", "bench"),
                    help="work directory: weights, ONNX files, compiled models (default build/bench)")
    ap.add_argument("--build-dir", default=os.path.join(ROOT, "build", "release"))
    ap.add_argument("--no-build", action="store_true", help="use the kiln already built in --build-dir")
    ap.add_argument("--no-install", action="store_true", help="do not npm install onnxruntime-node when missing")
    ap.add_argument("--wait-quiet", type=float, default=0, metavar="S",
                    help="before each measurement, wait up to S seconds for other processes to go quiet")
    ap.add_argument("--skip", default="", help="comma-separated: torch, ort")
    ap.add_argument("-O", dest="opt", default="-O2", help="kiln optimization flag (default -O2)")
    ap.add_argument("--openblas-core", default="auto", metavar="auto|keep|NAME",
                    help="OPENBLAS_CORETYPE for every process the bench starts: auto (default) replaces a "
                         "pre-AVX core that OpenBLAS falls back to on a CPU it does not know with the core of "
                         "the CPU's vector ISA; keep leaves OpenBLAS's choice (or the variable already set); "
                         "a name (SkylakeX, Cooperlake, Haswell, Zen, ...) sets that core")
    ap.add_argument("--precision", default="f32", metavar="LIST",
                    help="kiln precisions to measure, comma-separated from %s (default f32); bf16 adds PyTorch "
                         "bf16, int8 adds ONNX Runtime int8 and PyTorch int8 (docs/performance.md, "
                         "\"Reduced precision\")" % ",".join(PRECISIONS))
    ap.add_argument("--auto-tolerance", type=float, default=0.01, metavar="X",
                    help="--tolerance of kiln's --precision auto (maxrel on the calibration data, default 0.01)")
    ap.add_argument("--render", metavar="JSON", help="only re-render the table of an earlier run's JSON (to --out)")
    args = ap.parse_args()
    args.precision_list = [p.strip() for p in args.precision.split(",") if p.strip()]
    bad = [p for p in args.precision_list if p not in PRECISIONS]
    if bad or not args.precision_list:
        ap.error("--precision expects a list of %s, got %r" % (",".join(PRECISIONS), args.precision))
    if args.rounds < 1:
        ap.error("--rounds expects a count >= 1, got %d" % args.rounds)
    if args.render:
        with open(args.render) as f:
            res = json.load(f)
        known = {m[0]: m for m in MODELS}
        models = [known.get(n) or (n, r["yaml"], r["batches"][-1]) for n, r in res["models"].items()]
        md = report(res, models)
        with open(args.out, "w") as f:
            f.write(md)
        print(md)
        return
    skip = set(s.strip() for s in args.skip.split(",") if s.strip())
    args.skip_torch = "torch" in skip
    args.skip_ort = "ort" in skip
    if args.openblas_core.lower() in ("auto", "keep"):
        args.openblas_core = args.openblas_core.lower()
    elif not re.match(r"[A-Za-z][A-Za-z0-9_]*$", args.openblas_core):
        ap.error("--openblas-core expects auto, keep or an OpenBLAS core name (SkylakeX, Haswell, ...), got %r"
                 % args.openblas_core)
    if not args.opt.startswith("-O"):
        args.opt = "-O" + args.opt
    Bench(args).go()


if __name__ == "__main__":
    main()
