#!/usr/bin/python3
"""Train a small CNN on rendered digits and export it as a kiln example.

Everything is made here, nothing is downloaded: digits 0-9 are drawn from a
small built-in stroke font (polylines in a unit box, several variants per
digit), with random control-point jitter, a random affine transform
(rotation, shear, scale, translation), random stroke thickness, intensity and
noise, and rasterized with anti-aliasing to 28x28 (white on black, [0, 1]).

A LeNet-like network (conv 5x5 -> batch norm -> relu -> maxpool,
conv 5x5 -> relu -> maxpool, dense 64 -> dense 10) is trained with torch on
2 CPU threads at most and written as

    examples/digits/digits.yaml           the model (FORMAT.md)
    examples/digits/digits.safetensors    its state_dict (names = layer names)
    examples/digits/samples/digit_<k>.npy one rendered test input per digit k
                                          (float32 [1, 1, 28, 28])
    examples/digits/expected.txt          torch's predicted class per sample

The export is checked by reading the YAML and weights back with
tools/kiln_ref.py and comparing with torch.

    /usr/bin/python3 tools/train_digits.py [--out examples/digits] [--epochs 6]

Deterministic: fixed seeds, one torch thread.
"""

import argparse
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kiln_ref  # noqa: E402

SIZE = 28

# --------------------------------------------------------------------------
# The stroke font. Coordinates: x in [0, 0.6], y in [0, 1], y pointing down.


def _arc(cx, cy, rx, ry, t0, t1, n=12):
    """Points of an elliptical arc, angles in degrees, math convention (y up
    on screen: a point is (cx + rx cos t, cy - ry sin t))."""
    ts = np.radians(np.linspace(t0, t1, n))
    return [(cx + rx * math.cos(t), cy - ry * math.sin(t)) for t in ts]


FONT = {
    0: [
        [_arc(0.3, 0.5, 0.28, 0.48, 90, 450, 20)],
        [_arc(0.3, 0.5, 0.24, 0.48, 100, 460, 20)],
    ],
    1: [
        [[(0.12, 0.22), (0.32, 0.0), (0.32, 1.0)]],
        [[(0.3, 0.0), (0.3, 1.0)]],
        [[(0.12, 0.2), (0.32, 0.0), (0.32, 1.0)], [(0.12, 1.0), (0.52, 1.0)]],
    ],
    2: [
        [_arc(0.3, 0.28, 0.27, 0.26, 160, -35, 12) + [(0.02, 1.0), (0.6, 1.0)]],
        [_arc(0.3, 0.3, 0.26, 0.28, 150, -10, 10) + [(0.35, 0.65), (0.02, 1.0), (0.6, 0.98)]],
    ],
    3: [
        [_arc(0.3, 0.26, 0.25, 0.24, 150, -90, 12), _arc(0.3, 0.74, 0.28, 0.26, 90, -150, 12)],
        [[(0.03, 0.0), (0.57, 0.0), (0.25, 0.42)] + _arc(0.3, 0.72, 0.28, 0.28, 100, -150, 12)],
    ],
    4: [
        [[(0.45, 1.0), (0.45, 0.0), (0.0, 0.68), (0.6, 0.68)]],
        [[(0.1, 0.0), (0.02, 0.6), (0.6, 0.6)], [(0.45, 0.3), (0.45, 1.0)]],
    ],
    5: [
        [[(0.56, 0.0), (0.1, 0.0), (0.06, 0.45)] + _arc(0.3, 0.7, 0.27, 0.29, 140, -150, 14)],
        [[(0.56, 0.02), (0.12, 0.0)], [(0.12, 0.0), (0.08, 0.42)] + _arc(0.28, 0.7, 0.28, 0.28, 150, -160, 14)],
    ],
    6: [
        [[(0.5, 0.0), (0.25, 0.2), (0.08, 0.5)] + _arc(0.3, 0.73, 0.23, 0.26, 180, 540, 18)],
        [_arc(0.55, 0.75, 0.5, 0.75, 100, 180, 6) + _arc(0.3, 0.73, 0.25, 0.25, 180, 540, 18)],
    ],
    7: [
        [[(0.0, 0.0), (0.6, 0.0), (0.2, 1.0)]],
        [[(0.0, 0.05), (0.0, 0.0), (0.6, 0.0), (0.25, 1.0)], [(0.15, 0.5), (0.52, 0.5)]],
    ],
    8: [
        [_arc(0.3, 0.25, 0.22, 0.24, 270, 630, 16), _arc(0.3, 0.74, 0.27, 0.26, 90, 450, 16)],
        [_arc(0.3, 0.26, 0.24, 0.25, 0, 360, 16), _arc(0.3, 0.74, 0.25, 0.25, 90, 450, 16)],
    ],
    9: [
        [_arc(0.3, 0.3, 0.25, 0.28, 0, 360, 18) + [(0.55, 0.3), (0.42, 1.0)]],
        [_arc(0.3, 0.28, 0.26, 0.27, -10, 360, 18) + [(0.56, 0.35), (0.54, 1.0)]],
    ],
}


def render(digit, rng):
    """One 28x28 float32 image of `digit`, drawn with random style."""
    variants = FONT[digit]
    strokes = variants[rng.integers(len(variants))]
    # random affine: unit box (centred) -> pixels
    angle = math.radians(rng.uniform(-14, 14))
    shear = rng.uniform(-0.3, 0.3)
    height = rng.uniform(16.5, 21.5)
    sx = height * rng.uniform(0.8, 1.2)
    sy = height
    a = np.array([[sx, shear * sy], [0.0, sy]])
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    m = rot @ a
    centre = np.array([14.0, 14.0]) + rng.uniform(-1.8, 1.8, size=2)
    wobble = rng.uniform(0.0, 0.035)
    segs = []
    for s in strokes:
        p = np.array(s, dtype=np.float64)
        p = p + rng.normal(0.0, wobble, size=p.shape)
        p = p - np.array([0.3, 0.5])
        q = p @ m.T + centre
        segs.append(np.stack([q[:-1], q[1:]], axis=1))
    segs = np.concatenate(segs)  # [S, 2 (ends), 2 (x, y)]
    ys, xs = np.mgrid[0:SIZE, 0:SIZE]
    pix = np.stack([xs.ravel() + 0.5, ys.ravel() + 0.5], axis=1)  # [P, 2]
    a0 = segs[None, :, 0, :]
    d = segs[None, :, 1, :] - a0
    w = pix[:, None, :] - a0
    dd = np.maximum((d * d).sum(-1), 1e-9)
    t = np.clip((w * d).sum(-1) / dd, 0.0, 1.0)
    dist = np.sqrt(((w - t[..., None] * d) ** 2).sum(-1)).min(axis=1)
    radius = rng.uniform(0.9, 2.0)
    img = np.clip(radius + 0.5 - dist, 0.0, 1.0) * rng.uniform(0.75, 1.0)
    img = img + rng.normal(0.0, rng.uniform(0.0, 0.08), size=img.shape)
    return np.clip(img, 0.0, 1.0).reshape(SIZE, SIZE).astype(np.float32)


def make_set(n, seed):
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 10
    rng.shuffle(labels)
    x = np.stack([render(int(k), rng) for k in labels])[:, None]
    return x, labels.astype(np.int64)


# --------------------------------------------------------------------------
# The network: module names are the YAML layer names.

class Digits(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 5, padding=2, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 64)
        self.drop = nn.Dropout(0.2)
        self.logits = nn.Linear(64, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = self.drop(F.relu(self.fc1(x.flatten(1))))
        return self.logits(x)


YAML = """\
# A LeNet-like digit classifier trained by tools/train_digits.py on digits it
# renders itself (a stroke font with random jitter, affine transform,
# thickness and noise). Input: one 28x28 grey image, white digit on black,
# values in [0, 1]. Outputs: logits and class probabilities.
#
#   kiln run examples/digits/digits.yaml --interp \\
#       --input image=examples/digits/samples/digit_3.npy --output /tmp/out
#
# Held-out accuracy on rendered digits: {acc:.2f}% ({n} images).
kiln: 1
name: digits
description: "LeNet-like digit classifier trained on rendered digits, {acc:.2f}% held-out accuracy"
weights: digits.safetensors
inputs:
  - {{name: image, shape: [batch, 1, 28, 28]}}
outputs: [logits, probs]
layers:
  - {{name: conv1,  op: conv2d, filters: 8, kernel: 5, padding: 2, bias: false}}
  - {{name: bn1,    op: batchnorm}}
  - {{name: relu1,  op: relu}}
  - {{name: pool1,  op: maxpool2d, kernel: 2}}
  - {{name: conv2,  op: conv2d, filters: 16, kernel: 5, activation: relu}}
  - {{name: pool2,  op: maxpool2d, kernel: 2}}
  - {{name: flat,   op: flatten}}
  - {{name: fc1,    op: dense, units: 64, activation: relu}}
  - {{name: drop,   op: dropout}}
  - {{name: logits, op: dense, units: 10}}
  - {{name: probs,  op: softmax, axis: -1}}
"""


def main():
    ap = argparse.ArgumentParser(description="train the digits example")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                  "..", "examples", "digits"))
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--train", type=int, default=24000)
    ap.add_argument("--test", type=int, default=4000)
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(1234)
    out = os.path.normpath(args.out)

    t0 = time.time()
    xtr, ytr = make_set(args.train, seed=1)
    xte, yte = make_set(args.test, seed=2)
    print("rendered %d + %d digits in %.1fs" % (len(xtr), len(xte), time.time() - t0))

    net = Digits()
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    steps = args.epochs * (len(xtr) // 64)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=4e-3, total_steps=steps)
    xtr_t, ytr_t = torch.from_numpy(xtr), torch.from_numpy(ytr)
    gen = torch.Generator().manual_seed(99)
    for epoch in range(args.epochs):
        net.train()
        perm = torch.randperm(len(xtr), generator=gen)
        total = 0.0
        for i in range(0, len(xtr) - 63, 64):
            idx = perm[i:i + 64]
            loss = F.cross_entropy(net(xtr_t[idx]), ytr_t[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item()
        acc = evaluate(net, xte, yte)
        print("epoch %d  loss %.4f  held-out accuracy %.2f%%  (%.0fs)" %
              (epoch + 1, total / (len(xtr) // 64), acc, time.time() - t0))

    net.eval()
    acc = evaluate(net, xte, yte)
    os.makedirs(os.path.join(out, "samples"), exist_ok=True)
    sd = net.state_dict()
    kiln_ref.save_safetensors(os.path.join(out, "digits.safetensors"),
                              {k: v for k, v in sd.items() if not k.startswith("drop")})
    with open(os.path.join(out, "digits.yaml"), "w") as f:
        f.write(YAML.format(acc=acc, n=len(xte)))

    # one fresh sample per digit, from a seed used for nothing else
    rng = np.random.default_rng(7)
    lines = []
    model = kiln_ref.Model(os.path.join(out, "digits.yaml"))
    worst = 0.0
    for k in range(10):
        x = render(k, rng)[None, None]
        np.save(os.path.join(out, "samples", "digit_%d.npy" % k), x)
        with torch.no_grad():
            logits = net(torch.from_numpy(x)).double()
        pred = int(logits.argmax())
        lines.append("digit_%d.npy %d" % (k, pred))
        ref_logits, ref_probs = model.run({"image": x})
        worst = max(worst, float((ref_logits - logits).abs().max()))
        if int(ref_probs.argmax()) != pred:
            raise SystemExit("export check failed: YAML predicts %d, torch %d" % (int(ref_probs.argmax()), pred))
    if worst > 1e-4:
        raise SystemExit("export check failed: YAML logits differ from torch by %g" % worst)
    with open(os.path.join(out, "expected.txt"), "w") as f:
        f.write("# sample file, class predicted by torch (the file name holds the true label)\n")
        f.write("\n".join(lines) + "\n")
    size = os.path.getsize(os.path.join(out, "digits.safetensors"))
    print("held-out accuracy %.2f%%; weights %d bytes; export matches torch (max |dlogit| %.2g)" %
          (acc, size, worst))
    print("samples:", ", ".join(lines))


def evaluate(net, x, y):
    net.eval()
    with torch.no_grad():
        pred = torch.cat([net(torch.from_numpy(x[i:i + 500])).argmax(1) for i in range(0, len(x), 500)])
    return 100.0 * float((pred.numpy() == y).mean())


if __name__ == "__main__":
    main()
