#!/usr/bin/python3
"""PyTorch -> ONNX fixtures for `kiln import` (tests/onnx/onnx_check torch).

Exports models with random weights the way docs/import.md tells a user to
(one torch.onnx.export call, a dynamic batch), with an input and PyTorch's
own output for it, computed in float64:

    NAME/model.onnx   the exported model (opset 17, batch axis dynamic)
    NAME/in0.npy      an input of batch 2 (float32)
    NAME/out0.npy     the module's output for it, in float64, saved as float32

  tools/export_torch_onnx.py              the reduced-width models, committed
                                          (tests/fixtures/onnx_torch, run in CI)
  tools/export_torch_onnx.py --full       the full-width ones (not committed:
                                          tests/fixtures/onnx_torch_full, which
                                          ctest runs when it exists)
  tools/export_torch_onnx.py --only resnet18,vit_b_16 ...

Models: kiln's examples (their YAML read by tools/kiln_ref.py and turned into a
torch module by bench/kiln_torch.py; the reduced ones with narrower layers) and
torchvision's resnet18, mobilenet_v2, mobilenet_v3_small, efficientnet_b0,
shufflenet_v2_x0_5, squeezenet1_1, densenet121, googlenet, regnet_y_400mf,
convnext_tiny, vit_b_16 (at a small input) and lraspp_mobilenet_v3_large. A
reduced torchvision model is the same architecture with fewer channels
(constructor arguments where torchvision has them, every channel count
divided by a factor where it has not) and, for the deep ones, fewer blocks.

Needs Debian's python3-torch, python3-torchvision and python3-onnx; kiln's
build and tests need none of them (the fixtures are committed).
"""

import argparse
import copy
import math
import os
import re
import shutil
import sys
import tempfile

import numpy as np
import torch
import torch.nn as nn
import torchvision
from torchvision.models import convnext, densenet, efficientnet, mobilenetv3, regnet, shufflenetv2, \
    vision_transformer
from torchvision.models.segmentation import lraspp

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(ROOT, "bench"))
sys.path.insert(0, os.path.join(ROOT, "tools"))

OPSET = 17
BATCH = 2
CLASSES = 10


# --------------------------------------------------------------------------
# random weights


def randomize(module, seed):
    """Random parameters and batch-norm statistics (eval mode), so that
    folding and normalization are exercised with values away from 0 and 1."""
    g = torch.Generator().manual_seed(seed)

    def u(t, lo, hi):
        with torch.no_grad():
            t.copy_(torch.rand(t.shape, generator=g, dtype=torch.float64).mul(hi - lo).add(lo).to(t.dtype))

    for m in module.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            u(m.weight, 0.5, 1.5)
            u(m.bias, -0.1, 0.1)
            u(m.running_mean, -0.1, 0.1)
            u(m.running_var, 0.5, 1.5)
        elif isinstance(m, nn.LayerNorm) or type(m).__name__ == "LayerNorm2d":
            u(m.weight, 0.5, 1.5)
            u(m.bias, -0.1, 0.1)
        elif isinstance(m, (nn.Conv2d, nn.Linear)):
            fan_in = m.weight[0].numel()
            bound = 1.0 / math.sqrt(fan_in)
            u(m.weight, -math.sqrt(3.0) * bound, math.sqrt(3.0) * bound)
            if m.bias is not None:
                u(m.bias, -bound, bound)
    # ViT's class token and position embedding, ConvNeXt's layer scale: small values
    for name, p in module.named_parameters():
        if name.endswith("class_token") or name.endswith("pos_embedding"):
            u(p, -0.1, 0.1)
        elif name.endswith("layer_scale"):
            u(p, 0.5, 1.5)
    return module.eval()


def shrink(model, k, keep=(3, CLASSES)):
    """Every channel count divided by k (counts in `keep`, the image channels
    and the classes, stay), for architectures torchvision builds with fixed
    widths. Depthwise convolutions stay depthwise."""

    def c(n):
        return n if n in keep else max(1, n // k)

    for parent in list(model.modules()):
        for name, m in list(parent.named_children()):
            if isinstance(m, nn.Conv2d):
                cin, cout = c(m.in_channels), c(m.out_channels)
                groups = cin if m.groups == m.in_channels and m.groups > 1 else m.groups
                new = nn.Conv2d(cin, cout, m.kernel_size, m.stride, m.padding, m.dilation, groups, m.bias is not None)
            elif isinstance(m, nn.BatchNorm2d):
                new = nn.BatchNorm2d(c(m.num_features), m.eps, m.momentum)
            elif isinstance(m, nn.Linear):
                new = nn.Linear(c(m.in_features), c(m.out_features), m.bias is not None)
            else:
                continue
            setattr(parent, name, new)
    return model


class FirstOutput(nn.Module):
    """A module returning a dict (segmentation) as its one tensor."""

    def __init__(self, inner, key):
        super().__init__()
        self.inner, self.key = inner, key

    def forward(self, x):
        return self.inner(x)[self.key]


# --------------------------------------------------------------------------
# the models: name -> (builder(full) -> module, input shape without the batch)


def tv_resnet18(full):
    m = torchvision.models.resnet18(num_classes=1000 if full else CLASSES)
    return m if full else shrink(m, 16)


def tv_mobilenet_v2(full):
    if full:
        return torchvision.models.mobilenet_v2(num_classes=1000)
    return shrink(torchvision.models.mobilenet_v2(width_mult=0.25, num_classes=CLASSES), 4)


def tv_mobilenet_v3_small(full):
    if full:
        return torchvision.models.mobilenet_v3_small(num_classes=1000)
    setting, last = mobilenetv3._mobilenet_v3_conf("mobilenet_v3_small", width_mult=0.25, reduced_tail=True)
    return mobilenetv3.MobileNetV3(setting, 64, num_classes=CLASSES)


def tv_efficientnet_b0(full):
    if full:
        return torchvision.models.efficientnet_b0(num_classes=1000)
    setting, last = efficientnet._efficientnet_conf("efficientnet_b0", width_mult=0.25, depth_mult=0.25)
    return efficientnet.EfficientNet(setting, 0.2, num_classes=CLASSES, last_channel=64)


def tv_shufflenet_v2_x0_5(full):
    if full:
        return torchvision.models.shufflenet_v2_x0_5(num_classes=1000)
    return shufflenetv2.ShuffleNetV2([2, 2, 2], [8, 16, 32, 64, 128], num_classes=CLASSES)


def tv_squeezenet1_1(full):
    m = torchvision.models.squeezenet1_1(num_classes=1000 if full else CLASSES)
    return m if full else shrink(m, 8)


def tv_densenet121(full):
    if full:
        return torchvision.models.densenet121(num_classes=1000)
    return densenet.DenseNet(growth_rate=8, block_config=(2, 2, 2, 2), num_init_features=16, bn_size=2,
                             num_classes=CLASSES)


def tv_googlenet(full):
    m = torchvision.models.googlenet(num_classes=1000 if full else CLASSES, aux_logits=False, transform_input=False,
                                     init_weights=False)
    return m if full else shrink(m, 8)


def tv_regnet_y_400mf(full):
    if full:
        return torchvision.models.regnet_y_400mf(num_classes=1000)
    params = regnet.BlockParams.from_init_params(depth=4, w_0=8, w_a=8.0, w_m=2.0, group_width=8, se_ratio=0.25)
    return regnet.RegNet(params, num_classes=CLASSES, stem_width=8)


def tv_convnext_tiny(full):
    if full:
        return torchvision.models.convnext_tiny(num_classes=1000)
    cfg = [convnext.CNBlockConfig(8, 16, 1), convnext.CNBlockConfig(16, 32, 1), convnext.CNBlockConfig(32, 64, 1),
           convnext.CNBlockConfig(64, None, 1)]
    return convnext.ConvNeXt(cfg, num_classes=CLASSES)


def tv_vit_b_16(full):
    if full:  # ViT-B/16 at 64x64: 16 patches; the architecture is unchanged
        return vision_transformer.VisionTransformer(64, 16, 12, 12, 768, 3072, num_classes=1000)
    return vision_transformer.VisionTransformer(32, 8, 2, 2, 32, 64, num_classes=CLASSES)


def tv_lraspp_mobilenet_v3_large(full):
    if full:
        return FirstOutput(torchvision.models.segmentation.lraspp_mobilenet_v3_large(
            weights=None, weights_backbone=None, num_classes=21), "out")
    setting, last = mobilenetv3._mobilenet_v3_conf("mobilenet_v3_large", width_mult=0.25, reduced_tail=True,
                                                   dilated=True)
    backbone = mobilenetv3.MobileNetV3(setting, last)
    return FirstOutput(shrink(lraspp._lraspp_mobilenetv3(backbone, 3), 2), "out")


TORCHVISION = {
    "resnet18": (tv_resnet18, (3, 224, 224), (3, 32, 32)),
    "mobilenet_v2": (tv_mobilenet_v2, (3, 224, 224), (3, 32, 32)),
    "mobilenet_v3_small": (tv_mobilenet_v3_small, (3, 224, 224), (3, 32, 32)),
    "efficientnet_b0": (tv_efficientnet_b0, (3, 224, 224), (3, 32, 32)),
    "shufflenet_v2_x0_5": (tv_shufflenet_v2_x0_5, (3, 224, 224), (3, 32, 32)),
    "squeezenet1_1": (tv_squeezenet1_1, (3, 224, 224), (3, 64, 64)),
    "densenet121": (tv_densenet121, (3, 224, 224), (3, 32, 32)),
    "googlenet": (tv_googlenet, (3, 224, 224), (3, 64, 64)),
    "regnet_y_400mf": (tv_regnet_y_400mf, (3, 224, 224), (3, 32, 32)),
    "convnext_tiny": (tv_convnext_tiny, (3, 224, 224), (3, 32, 32)),
    "vit_b_16": (tv_vit_b_16, (3, 64, 64), (3, 32, 32)),
    "lraspp_mobilenet_v3_large": (tv_lraspp_mobilenet_v3_large, (3, 224, 224), (3, 64, 64)),
}

# kiln's examples; the reduced ones narrower (a substitution in the YAML text)
EXAMPLES = {
    "mlp": ("examples/mlp/mlp.yaml", [(r"units: 256", "units: 64"), (r"units: 128", "units: 32")]),
    "lenet": ("examples/lenet/lenet.yaml", []),
    "digits": ("examples/digits/digits.yaml", []),
    "resnet20": ("examples/resnet20/resnet20.yaml",
                 [(r"ch: 16}", "ch: 8}"), (r"ch: 32}", "ch: 16}"), (r"ch: 64}", "ch: 32}"),
                  (r"filters: 16", "filters: 8")]),
    "resnet18": ("examples/resnet18/resnet18.yaml", None),
    "mobilenetv2": ("examples/mobilenetv2/mobilenetv2.yaml", None),
    "transformer": ("examples/transformer/transformer.yaml",
                    [(r"seq: 32, dim: 128, heads: 4, head_dim: 32, hidden: 512, scale: 0.17677669529663687",
                      "seq: 8, dim: 32, heads: 4, head_dim: 8, hidden: 64, scale: 0.35355339059327373"),
                     (r"shape: \[batch, 32, 128\]", "shape: [batch, 8, 32]")]),
}


# --------------------------------------------------------------------------


# Models whose graph moves the batch off axis 0, which kiln's symbolic batch
# cannot follow: imported with a fixed batch, and why.
PINNED = {"vit_b_16": "vit_b_16 merges the batch with the attention heads (a reshape to [L, N*H, d]): "
                      "kiln imports it with the batch of the fixture fixed"}


def folded_like_the_exporter(module):
    """The module with each batch norm folded into the convolution before it
    in float32, as torch.onnx.export does in eval mode (the ONNX file holds
    the folded float32 weights, not the module's): the reference then
    differs from the ONNX model by the order of double sums only. A module
    that torch.fx cannot trace is returned as it is."""
    try:
        import torch.fx.experimental.optimization as fx_opt
        return fx_opt.fuse(copy.deepcopy(module))
    except Exception:
        return module


def export(module, shape, out_dir, name, seed, log):
    """The one call docs/import.md shows, then the input and the output."""
    d = os.path.join(out_dir, name)
    os.makedirs(d, exist_ok=True)
    module = module.eval()
    example = torch.zeros((1,) + tuple(shape))
    with torch.no_grad():
        probe = module(example)
    n_out = len(probe) if isinstance(probe, tuple) else 1
    outputs = ["output"] if n_out == 1 else ["output%d" % k for k in range(n_out)]
    axes = {n: {0: "batch"} for n in ["input"] + outputs}
    # With gradients enabled: nn.MultiheadAttention's inference fast path
    # (torch 1.13) has no ONNX export.
    torch.onnx.export(module, example, os.path.join(d, "model.onnx"), input_names=["input"],
                      output_names=outputs, dynamic_axes=axes, opset_version=OPSET)
    g = torch.Generator().manual_seed(seed + 1)
    x = torch.rand((BATCH,) + tuple(shape), generator=g, dtype=torch.float64).mul(2).sub(1).float()
    with torch.no_grad():
        ys = folded_like_the_exporter(module).double()(x.double())
    ys = ys if isinstance(ys, tuple) else (ys,)
    np.save(os.path.join(d, "in0.npy"), x.numpy())
    for k, y in enumerate(ys):
        np.save(os.path.join(d, "out%d.npy" % k), y.float().numpy())
    if name in PINNED:
        # onnx_check imports these with the batch fixed (kiln import --input)
        with open(os.path.join(d, "pins"), "w") as f:
            f.write("# %s\ninput=%s\n" % (PINNED[name], "x".join(str(v) for v in x.shape)))
    size = os.path.getsize(os.path.join(d, "model.onnx"))
    log("  %-26s %8.1f KiB  in %s -> out %s" % (name, size / 1024, list(x.shape), [list(y.shape) for y in ys]))


def example_module(path, subst, seed):
    """A torch module of a kiln example (bench/kiln_torch.py), with random
    weights; subst narrows it (regex substitutions in its YAML)."""
    import kiln_torch
    with open(os.path.join(ROOT, path)) as f:
        text = f.read()
    text = re.sub(r"(?m)^weights:.*$", "", text)  # random weights, even for the trained digits
    for pat, rep in subst or []:
        text = re.sub(pat, rep, text)
    tmp = tempfile.mkdtemp(prefix="kiln-export-")
    try:
        ypath = os.path.join(tmp, os.path.basename(path))
        with open(ypath, "w") as f:
            f.write(text)
        kiln_torch.prepare(ypath, os.path.join(tmp, "out"), [1], seed=seed, log=lambda *a: None)
        module, man = kiln_torch.load_module(os.path.join(tmp, "out"))
        shape = man["inputs"][0]["shape"][1:]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return module, shape


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--full", action="store_true", help="full-width models (not committed)")
    ap.add_argument("--out", help="output directory")
    ap.add_argument("--only", help="comma-separated model names")
    args = ap.parse_args()
    out = args.out or os.path.join(ROOT, "tests", "fixtures", "onnx_torch_full" if args.full else "onnx_torch")
    only = set(args.only.split(",")) if args.only else None
    torch.manual_seed(0)
    print("writing %s (torch %s, torchvision %s)" % (out, torch.__version__, torchvision.__version__))
    seed = 100
    for name, (path, subst) in EXAMPLES.items():
        seed += 1
        if (only and name not in only) or (subst is None and not args.full):
            continue
        module, shape = example_module(path, None if args.full else subst, seed)
        export(module, shape, out, "example_" + name, seed, print)
    for name, (build, full_shape, small_shape) in TORCHVISION.items():
        seed += 1
        if only and name not in only:
            continue
        torch.manual_seed(seed)
        module = randomize(build(args.full), seed)
        export(module, full_shape if args.full else small_shape, out, name, seed, print)


if __name__ == "__main__":
    main()
