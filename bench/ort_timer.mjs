// ort_timer: times one ONNX model with ONNX Runtime (onnxruntime-node, CPU).
//
//   node bench/ort_timer.mjs --model M.onnx --batch N --threads T
//        --inputs name=a.bin[,name=b.bin] --refs name=y.bin[,...] [--shapes JSON]
//        [--tol 1e-3] [--min-time S] [--min-iters K] [--max-time S] [--warmup-time S]
//
// Session: CPU execution provider, graphOptimizationLevel 'all',
// intraOpNumThreads T, interOpNumThreads 1, executionMode 'sequential'.
// Inputs are raw little-endian float32 files; --shapes gives each input's
// shape ({"name": [dims]}). Runs once, compares every output with its
// reference (max |y - ref| / max |ref|), and only when all are within the
// tolerance times warm-up runs and then K runs of session.run(), each timed
// on its own (the time includes the JS/N-API call and the output tensors'
// allocation: what a Node.js application pays). Prints one JSON object.
//
// --overhead: instead, time an Identity model given by --model on a 1-float
// input (the binding's per-call overhead).
// --save PREFIX: after the check run, write output k (in the session's
// order) to PREFIX.out<k>.bin (raw float32) and stop without timing.
// --ranges FILE: after the first run, write {output name: {min, max}} of
// every float output to FILE (the int8 model's calibration, run on the
// augmented model of bench/kiln_quant.py) and stop.
import fs from 'node:fs';
import { performance } from 'node:perf_hooks';

function fail(msg) {
  console.log(JSON.stringify({ runtime: 'ort', valid: false, error: String(msg) }));
  process.exit(1);
}

let ort;
try {
  ort = await import('onnxruntime-node');
} catch (e) {
  fail('onnxruntime-node not installed: ' + e.message);
}

const opt = {
  model: null, batch: 1, threads: 1, inputs: '', refs: '', shapes: '{}', tol: 1e-3,
  'min-time': 0.5, 'min-iters': 10, 'max-time': 5, 'warmup-time': 0.2, overhead: false,
  save: null, ranges: null,
};
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  const k = argv[i].replace(/^--/, '');
  if (!(k in opt)) fail('unknown option ' + argv[i]);
  if (k === 'overhead') { opt.overhead = true; continue; }
  opt[k] = argv[++i];
}
for (const k of ['batch', 'threads', 'tol', 'min-time', 'min-iters', 'max-time', 'warmup-time']) opt[k] = Number(opt[k]);

function readFloats(path) {
  const buf = fs.readFileSync(path);
  const out = new Float32Array(buf.length / 4);
  new Uint8Array(out.buffer).set(buf);
  return out;
}

function pairs(s) {
  return s ? s.split(',').map((p) => { const i = p.indexOf('='); return [p.slice(0, i), p.slice(i + 1)]; }) : [];
}

const so = {
  executionProviders: ['cpu'],
  graphOptimizationLevel: 'all',
  intraOpNumThreads: opt.threads,
  interOpNumThreads: 1,
  executionMode: 'sequential',
};

let session;
const t0 = performance.now();
try {
  session = await ort.InferenceSession.create(opt.model, so);
} catch (e) {
  fail('session: ' + e.message);
}
const createS = (performance.now() - t0) / 1e3;

const shapes = JSON.parse(opt.shapes);
const feeds = {};
if (opt.overhead) {
  feeds[session.inputNames[0]] = new ort.Tensor('float32', new Float32Array(1), [1]);
} else {
  for (const [name, file] of pairs(opt.inputs)) {
    const data = readFloats(file);
    const shape = shapes[name];
    if (!shape) fail('no shape for input ' + name);
    if (shape.reduce((a, b) => a * b, 1) !== data.length) fail(file + ': size does not match shape ' + shape);
    feeds[name] = new ort.Tensor('float32', data, shape);
  }
}

const run = () => session.run(feeds);

const result = { runtime: 'ort', version: ort.env.versions ? ort.env.versions.node : undefined,
  batch: opt.batch, threads: opt.threads, create_s: createS };
let t1 = performance.now();
let out;
try {
  out = await run();
} catch (e) {
  fail('run: ' + e.message);
}
let tWarm = (performance.now() - t1) / 1e3;
result.first_s = tWarm;

let maxErr = 0;
if (!opt.overhead) {
  for (const [name, file] of pairs(opt.refs)) {
    const ref = readFloats(file);
    const y = out[name];
    if (!y) fail('no output named ' + name + ' (have ' + Object.keys(out) + ')');
    let e;
    if (y.data.length !== ref.length) {
      e = Infinity;
    } else {
      let scale = 0, diff = 0;
      for (let i = 0; i < ref.length; i++) {
        const r = ref[i], v = y.data[i];
        scale = Math.max(scale, Math.abs(r));
        if (!Number.isFinite(v)) diff = Infinity;
        else diff = Math.max(diff, Math.abs(v - r));
      }
      e = diff / Math.max(scale, 1e-30);
    }
    if (!(e <= maxErr)) maxErr = e;
  }
}
result.max_err = Number.isFinite(maxErr) ? maxErr : 1e300;
if (opt.ranges) {
  const r = {};
  for (const name of session.outputNames) {
    const d = out[name].data;
    let lo = Infinity, hi = -Infinity, bad = 0;
    for (let i = 0; i < d.length; i++) {
      const v = d[i];
      if (!Number.isFinite(v)) { bad++; continue; }
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    r[name] = { min: Number.isFinite(lo) ? lo : 0, max: Number.isFinite(hi) ? hi : 0, nonfinite: bad };
  }
  fs.writeFileSync(opt.ranges, JSON.stringify(r));
  result.ranges = Object.keys(r).length;
  result.valid = true;
  console.log(JSON.stringify(result));
  process.exit(0);
}
if (opt.save) {
  session.outputNames.forEach((name, k) => {
    const d = out[name].data;
    fs.writeFileSync(opt.save + '.out' + k + '.bin', Buffer.from(d.buffer, d.byteOffset, d.byteLength));
  });
  result.saved = true;
  result.valid = maxErr <= opt.tol;
  console.log(JSON.stringify(result));
  process.exit(0);
}
if (!(maxErr <= opt.tol)) {
  result.valid = false;
  console.log(JSON.stringify(result));
  process.exit(0);
}

let warm = 1;
while (warm < 2 || tWarm < opt['warmup-time']) {
  t1 = performance.now();
  await run();
  tWarm += (performance.now() - t1) / 1e3;
  warm++;
  if (tWarm > opt['max-time']) break;
}
const est = tWarm / warm;
let n = Math.max(opt['min-iters'], Math.ceil(opt['min-time'] / Math.max(est, 1e-9)));
n = Math.min(n, 1000000);
const ts = [];
let total = 0;
while (ts.length < n) {
  t1 = performance.now();
  await run();
  const dt = (performance.now() - t1) / 1e3;
  ts.push(dt);
  total += dt;
  if (total >= opt['max-time'] && ts.length >= 3) break;
}
ts.sort((a, b) => a - b);
const k = ts.length;
const med = k % 2 ? ts[(k - 1) / 2] : 0.5 * (ts[k / 2 - 1] + ts[k / 2]);
Object.assign(result, {
  valid: true, warmup: warm, iters: k, median_s: med, p90_s: ts[Math.max(0, Math.ceil(0.9 * k) - 1)],
  min_s: ts[0], mean_s: total / k, items_per_s: opt.batch / med,
});
console.log(JSON.stringify(result));
