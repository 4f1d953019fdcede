#!/usr/bin/python3
"""Writes timm's description of every model-zoo architecture: the reference the zoo's tests compare with.

For each registry name: timm's state_dict keys with their shapes (train-time, and after
timm.utils.model.reparameterize_model for the re-parameterizable families), the parameter count, the
multiply-accumulates of one 224x224 image (every Conv2d and Linear, counted by forward hooks), and the default
pretrained configuration (input size, crop_pct, interpolation, mean, std).

Usage (no network: timm's source snapshot and Debian's python3-torch):
  PYTHONPATH=/path/to/timm-src /usr/bin/python3 tools/zoo/make-zoo-architectures.py \
      tests/MobileOne.Tests/Models/Zoo/timm-architectures.json
"""
import json
import sys

import timm
import torch
from timm.utils.model import reparameterize_model

MODELS = [
    "mobileone_s0", "mobileone_s1", "mobileone_s2", "mobileone_s3", "mobileone_s4",
    "repvgg_a0", "repvgg_a1", "repvgg_a2", "repvgg_b0", "repvgg_b1",
    "resnet18", "resnet34", "resnet50",
    "mobilenetv1_100", "mobilenetv1_125",
    "mobilenetv2_035", "mobilenetv2_050", "mobilenetv2_075", "mobilenetv2_100", "mobilenetv2_140",
]
FUSABLE = ("mobileone_", "repvgg_")


def macs_at_224(model):
    total = [0]

    def conv_hook(m, _, out):
        total[0] += out.numel() // out.shape[0] * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]

    def linear_hook(m, _, out):
        total[0] += m.in_features * m.out_features

    handles = []
    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, torch.nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
    with torch.no_grad():
        model(torch.zeros(1, 3, 224, 224))
    for h in handles:
        h.remove()
    return total[0]


def describe(model):
    return {
        "params": sum(p.numel() for p in model.parameters()),
        "macs_224": macs_at_224(model),
        "state": [[k, list(v.shape)] for k, v in model.state_dict().items()],
    }


def main(out_path):
    result = {}
    for name in MODELS:
        model = timm.create_model(name).eval()
        cfg = model.pretrained_cfg
        entry = {
            "pretrained": {
                "tag": cfg.get("tag"),
                "input_size": list(cfg["input_size"]),
                "crop_pct": cfg["crop_pct"],
                "interpolation": cfg["interpolation"],
                "mean": list(cfg["mean"]),
                "std": list(cfg["std"]),
            },
            "unfused": describe(model),
        }
        if name.startswith(FUSABLE):
            entry["fused"] = describe(reparameterize_model(model))
        result[name] = entry
        print(name, entry["unfused"]["params"], entry["unfused"]["macs_224"], file=sys.stderr)
    with open(out_path, "w") as f:
        json.dump(result, f, separators=(",", ":"))
        f.write("\n")


if __name__ == "__main__":
    main(sys.argv[1])
