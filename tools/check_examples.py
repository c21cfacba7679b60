#!/usr/bin/python3
"""Check that the example models mean what their comments say.

ResNet-18, MobileNetV2 and ResNet-20 in examples/ claim the layer names (and
so the state_dict keys) of the usual PyTorch definitions: torchvision's
resnet18 and mobilenet_v2, and the common CIFAR ResNet with option-B
shortcuts. This builds those networks here in torch (the same module
structure as torchvision; torchvision itself is not needed), gives them
random weights with non-trivial batch-norm statistics, saves the state_dict
as safetensors next to a copy of the example YAML that names it in
`weights:` (instead of `init:`), and compares PyTorch's output with

  - tools/kiln_ref.py reading the YAML (always), and
  - `kiln run --interp` (when --kiln PATH is given),

to 1e-5 relative. The transformer example is checked against a torch
transcription of the same pre-norm encoder.

    /usr/bin/python3 tools/check_examples.py [--kiln build/compiler/kiln] [--keep DIR]
"""

import argparse
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kiln_ref  # noqa: E402

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def randomize(m, seed):
    """Random weights and batch-norm statistics, rounded to float32."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in m.named_parameters():
            if p.dim() == 1:  # biases; norm weights are set below
                p.copy_(torch.rand(p.shape, generator=g, dtype=p.dtype) * 0.2 - 0.1)
            else:
                fan_in = p[0].numel()
                p.copy_((torch.rand(p.shape, generator=g, dtype=p.dtype) * 2 - 1) * math.sqrt(3.0 / fan_in))
        for mod in m.modules():
            if isinstance(mod, (nn.BatchNorm2d, nn.LayerNorm)):
                mod.weight.copy_(torch.rand(mod.weight.shape, generator=g, dtype=mod.weight.dtype) + 0.5)
            if isinstance(mod, nn.BatchNorm2d):
                mod.running_mean.copy_(torch.rand(mod.running_mean.shape, generator=g, dtype=torch.float64) * 0.2 - 0.1)
                mod.running_var.copy_(torch.rand(mod.running_var.shape, generator=g, dtype=torch.float64) + 0.5)
        for t in list(m.parameters()) + [b for b in m.buffers() if b.is_floating_point()]:
            t.copy_(t.float().double())
    return m.eval()


# --- torchvision.models.resnet18 (module layout) ---------------------------

class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu(y + (x if self.downsample is None else self.downsample(x)))


class ResNet18(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        chans = [64, 128, 256, 512]
        cin = 64
        for i, c in enumerate(chans):
            s = 1 if i == 0 else 2
            setattr(self, "layer%d" % (i + 1), nn.Sequential(BasicBlock(cin, c, s), BasicBlock(c, c, 1)))
            cin = c
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, 1000)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


# --- CIFAR ResNet-20, option B ----------------------------------------------

class CifarBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + self.shortcut(x))


class ResNet20(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        cin = 16
        for i, c in enumerate([16, 32, 64]):
            blocks = [CifarBlock(cin, c, 1 if i == 0 else 2), CifarBlock(c, c, 1), CifarBlock(c, c, 1)]
            setattr(self, "layer%d" % (i + 1), nn.Sequential(*blocks))
            cin = c
        self.linear = nn.Linear(64, 10)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.linear(F.adaptive_avg_pool2d(x, 1).flatten(1))


# --- torchvision.models.mobilenet_v2 (module layout) -----------------------

def cbr(cin, cout, k=3, s=1, groups=1):
    return nn.Sequential(nn.Conv2d(cin, cout, k, s, (k - 1) // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU6())


class InvertedResidual(nn.Module):
    def __init__(self, cin, cout, stride, t):
        super().__init__()
        h = cin * t
        self.use_res = stride == 1 and cin == cout
        layers = [] if t == 1 else [cbr(cin, h, 1)]
        layers += [cbr(h, h, 3, stride, groups=h), nn.Conv2d(h, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv(x) if self.use_res else self.conv(x)


class MobileNetV2(nn.Module):
    def __init__(self):
        super().__init__()
        cfg = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
               (6, 320, 1, 1)]
        feats = [cbr(3, 32, 3, 2)]
        cin = 32
        for t, c, n, s in cfg:
            for i in range(n):
                feats.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
                cin = c
        feats.append(cbr(cin, 1280, 1))
        self.features = nn.Sequential(*feats)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, 1000))

    def forward(self, x):
        x = F.adaptive_avg_pool2d(self.features(x), 1)
        return self.classifier(torch.flatten(x, 1))


# --- the transformer example ---------------------------------------------

class Encoder(nn.Module):
    def __init__(self, d=128, heads=4, hidden=512):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(d)
        self.attn = nn.Module()
        self.attn.q = nn.Linear(d, d)
        self.attn.k = nn.Linear(d, d)
        self.attn.v = nn.Linear(d, d)
        self.attn.out = nn.Linear(d, d)
        self.norm2 = nn.LayerNorm(d)
        self.mlp = nn.Module()
        self.mlp.fc1 = nn.Linear(d, hidden)
        self.mlp.fc2 = nn.Linear(hidden, d)

    def forward(self, x):
        b, s, d = x.shape
        h = self.norm1(x)

        def split(t):
            return t.reshape(b, s, self.heads, d // self.heads).transpose(1, 2)
        q, k, v = split(self.attn.q(h)), split(self.attn.k(h)), split(self.attn.v(h))
        w = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d // self.heads), -1)
        x = x + self.attn.out((w @ v).transpose(1, 2).reshape(b, s, d))
        return x + self.mlp.fc2(F.gelu(self.mlp.fc1(self.norm2(x))))


class Transformer(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.Sequential(Encoder(), Encoder())
        self.norm = nn.LayerNorm(128)

    def forward(self, x):
        return self.norm(self.layers(x))


CHECKS = [
    ("resnet18", ResNet18, "image", (2, 3, 224, 224)),
    ("mobilenetv2", MobileNetV2, "image", (2, 3, 224, 224)),
    ("resnet20", ResNet20, "image", (3, 3, 32, 32)),
    ("transformer", Transformer, "tokens", (2, 32, 128)),
]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kiln", help="a kiln binary: also run `kiln run --interp`")
    ap.add_argument("--keep", help="write the models and weights here and keep them")
    ap.add_argument("--only", nargs="*")
    args = ap.parse_args()
    torch.set_num_threads(1)
    work = args.keep or tempfile.mkdtemp(prefix="kiln-examples-")
    os.makedirs(work, exist_ok=True)
    failed = 0
    try:
        for i, (name, cls, input_name, shape) in enumerate(CHECKS):
            if args.only and name not in args.only:
                continue
            net = randomize(cls().double(), 100 + i)
            sd = {k: v.float().numpy() if v.is_floating_point() else v.numpy() for k, v in net.state_dict().items()}
            d = os.path.join(work, name)
            os.makedirs(d, exist_ok=True)
            kiln_ref.save_safetensors(os.path.join(d, name + ".safetensors"), sd)
            with open(os.path.join(ROOT, "examples", name, name + ".yaml")) as f:
                text = f.read()
            text, n = re.subn(r"(?m)^init: \{random: \d+\}$", "weights: %s.safetensors" % name, text)
            assert n == 1, name
            path = os.path.join(d, name + ".yaml")
            with open(path, "w") as f:
                f.write(text)
            x = np.random.default_rng(i).standard_normal(shape).astype(np.float32)
            np.save(os.path.join(d, "input.npy"), x)
            with torch.no_grad():
                want = net(torch.from_numpy(x).double()).numpy()

            def compare(who, got):
                err = float(np.max(np.abs(got - want) / np.maximum(1.0, np.abs(want))))
                ok = got.shape == want.shape and err <= 1e-5
                print("%-12s %-22s %s  max error %.3g  %s" % (name, who, list(got.shape), err, "ok" if ok else "FAIL"))
                return ok

            model = kiln_ref.Model(path)
            with torch.no_grad():
                got = model.run({input_name: x})[0].numpy()
            unread = {k for k in set(sd) - model.used_keys if not k.endswith("num_batches_tracked")}
            if unread:
                print("%s: state_dict keys the YAML does not read: %s" % (name, sorted(unread)[:5]))
                failed += 1
            failed += not compare("kiln_ref", got)
            if args.kiln:
                out = os.path.join(d, "out")
                p = subprocess.run([args.kiln, "run", path, "--interp", "--input", "%s=%s" % (input_name,
                                   os.path.join(d, "input.npy")), "--output", out], capture_output=True, text=True)
                if p.returncode != 0:
                    print("%s: kiln run failed:\n%s" % (name, p.stderr))
                    failed += 1
                else:
                    outs = [f for f in os.listdir(out) if f.endswith(".npy")]
                    failed += not compare("kiln run --interp", np.load(os.path.join(out, outs[0])).astype(np.float64))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print("all examples match PyTorch" if not failed else "%d problems" % failed)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
