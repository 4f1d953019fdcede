#!/usr/bin/python3
"""Writes small classifiers exported by PyTorch's own torch.onnx.export, and their PyTorch logits, for the ONNX
importer's tests (tests/MobileOne.Tests/IO/Onnx/PyTorch):
  <name>_opset<N>.onnx   random-weight models with the operators timm/torchvision networks export, and ones with a
                         softmax head, explicit zero pads and channel concats (the importer's Softmax, Pad, Concat)
  reference.json         the input (1x3x32x32, fixed seed) and each model's eval-mode output (float64 from PyTorch)
Run from the repository root with Debian's python3-torch (1.13):
  /usr/bin/python3 tools/onnx/make-onnx-fixtures.py
"""
import json
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

OUT = os.path.join("tests", "MobileOne.Tests", "IO", "Onnx", "PyTorch")


class TinyResNet(nn.Module):
    """7x7/2 stem, BN, ReLU, 3x3/2 max pool, a basic block with a strided 1x1 shortcut, adaptive pool, flatten, fc."""

    def __init__(self):
        super().__init__()
        self.bn_in = nn.BatchNorm2d(3)  # BN on the input: not fused into a conv by the exporter
        self.conv1 = nn.Conv2d(3, 8, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.pool = nn.MaxPool2d(3, 2, 1)
        self.c1 = nn.Conv2d(8, 16, 3, 2, 1, bias=False)
        self.b1 = nn.BatchNorm2d(16)
        self.c2 = nn.Conv2d(16, 16, 3, 1, 1, bias=False)
        self.b2 = nn.BatchNorm2d(16)
        self.down = nn.Sequential(nn.Conv2d(8, 16, 1, 2, bias=False), nn.BatchNorm2d(16))
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = self.pool(F.relu(self.bn1(self.conv1(self.bn_in(x)))))
        y = self.b2(self.c2(F.relu(self.b1(self.c1(x)))))
        x = F.relu(y + self.down(x))
        x = F.adaptive_avg_pool2d(x, 1)
        return self.fc(torch.flatten(x, 1))


class TinyMobileNetV2(nn.Module):
    """ReLU6 (Clip with constant bounds), depthwise convolutions, an inverted residual, avg pool, x.view(N, -1)."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU6())
        self.expand = nn.Sequential(nn.Conv2d(16, 48, 1, bias=False), nn.BatchNorm2d(48), nn.ReLU6())
        self.dw = nn.Sequential(nn.Conv2d(48, 48, 3, 1, 1, groups=48, bias=False), nn.BatchNorm2d(48), nn.ReLU6())
        self.project = nn.Sequential(nn.Conv2d(48, 16, 1, bias=False), nn.BatchNorm2d(16))
        self.avg = nn.AvgPool2d(3, 1, 1, count_include_pad=False)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = self.stem(x)
        x = x + self.project(self.dw(self.expand(x)))
        x = self.avg(x)
        x = x.mean((2, 3), keepdim=True)
        return self.fc(x.view(x.size(0), -1))


class TinySqueezeExcite(nn.Module):
    """SiLU, squeeze-excite (mean, 1x1 conv, ReLU, 1x1 conv, sigmoid, mul), hardswish, global pool, fc via MatMul + Add."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, 1, 1)
        self.fc1 = nn.Conv2d(16, 4, 1)
        self.fc2 = nn.Conv2d(4, 16, 1)
        self.conv2 = nn.Conv2d(16, 16, 3, 2, 1)
        self.weight = nn.Parameter(torch.randn(16, 10) * 0.2)
        self.bias = nn.Parameter(torch.randn(10) * 0.1)

    def forward(self, x):
        x = F.silu(self.conv(x))
        gate = torch.sigmoid(self.fc2(F.relu(self.fc1(x.mean((2, 3), keepdim=True)))))
        x = F.hardswish(self.conv2(x * gate))
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return x @ self.weight + self.bias


class TinyGelu(nn.Module):
    """GELU in both of PyTorch's forms (erf: Div/Erf/Add/Mul/Mul; tanh: Pow/Mul/Add/Tanh chains), a residual sum."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 12, 3, 2, 1)
        self.conv2 = nn.Conv2d(12, 12, 3, 1, 1)
        self.fc = nn.Linear(12, 10)

    def forward(self, x):
        x = F.gelu(self.conv1(x))
        x = x + F.gelu(self.conv2(x), approximate="tanh")
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


class TinySoftmax(nn.Module):
    """A classifier exported with its softmax: conv, BN, ReLU, global pool, flatten, fc, softmax over the classes."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, 2, 1, bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        x = F.relu(self.bn(self.conv(x)))
        return F.softmax(self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)), dim=1)


class TinyPad(nn.Module):
    """Explicit zero padding: symmetric before a conv (folds into it), asymmetric before a strided conv (TF's SAME),
    before an average pool (folds into its count_include_pad padding) and before a max pool (stays a pad)."""

    def __init__(self):
        super().__init__()
        self.pad = nn.ZeroPad2d(1)
        self.conv1 = nn.Conv2d(3, 8, 3)
        self.conv2 = nn.Conv2d(8, 8, 3, 2)
        self.conv3 = nn.Conv2d(8, 8, 1)
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        x = F.relu(self.conv1(self.pad(x)))
        x = F.relu(self.conv2(F.pad(x, (0, 1, 0, 1))))
        x = F.avg_pool2d(F.pad(x, (1, 1, 1, 1)), 3, 1)
        x = F.max_pool2d(F.pad(self.conv3(x), (1, 1, 1, 1)), 3, 2)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class TinyConcat(nn.Module):
    """An Inception-like block (1x1, 3x3 and pool-1x1 branches joined by torch.cat on channels), a DenseNet-like
    concat of a value with a conv of it, and x.view(N, -1) (shape arithmetic with its own Concat) before the fc."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, 2, 1)
        self.b1 = nn.Conv2d(8, 4, 1)
        self.b3 = nn.Conv2d(8, 6, 3, 1, 1)
        self.bp = nn.Conv2d(8, 2, 1)
        self.dense = nn.Conv2d(12, 4, 3, 1, 1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = F.relu(self.stem(x))
        x = torch.cat([F.relu(self.b1(x)), F.relu(self.b3(x)), self.bp(F.avg_pool2d(x, 3, 1, 1))], 1)
        x = torch.cat([x, F.relu(self.dense(x))], 1)
        x = F.adaptive_avg_pool2d(x, 1)
        return self.fc(x.view(x.size(0), -1))


def randomize(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(0.5 + torch.rand(m.num_features, generator=g))
                m.bias.copy_(0.2 * torch.randn(m.num_features, generator=g))
                m.running_mean.copy_(0.2 * torch.randn(m.num_features, generator=g))
                m.running_var.copy_(0.5 + torch.rand(m.num_features, generator=g))
    return model.eval()


def main():
    torch.manual_seed(0)
    os.makedirs(OUT, exist_ok=True)
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(42))
    reference = {"input_shape": list(x.shape), "input": x.flatten().tolist(), "models": {}}
    for name, cls, seed in [("tiny_resnet", TinyResNet, 1), ("tiny_mobilenetv2", TinyMobileNetV2, 2), ("tiny_se", TinySqueezeExcite, 3), ("tiny_gelu", TinyGelu, 4),
                            ("tiny_softmax", TinySoftmax, 5), ("tiny_pad", TinyPad, 6), ("tiny_concat", TinyConcat, 7)]:
        torch.manual_seed(seed)
        model = randomize(cls(), seed)
        with torch.no_grad():
            logits = model.double()(x.double()).flatten().tolist()
        model = model.float()
        for opset in (11, 13, 17):
            if name == "tiny_se" and opset < 14:
                continue  # HardSwish is an ONNX operator from opset 14
            path = os.path.join(OUT, f"{name}_opset{opset}.onnx")
            torch.onnx.export(model, x, path, opset_version=opset, input_names=["input"], output_names=["logits"],
                              dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
            reference["models"][f"{name}_opset{opset}"] = logits
    with open(os.path.join(OUT, "reference.json"), "w") as f:
        json.dump(reference, f)


if __name__ == "__main__":
    main()
