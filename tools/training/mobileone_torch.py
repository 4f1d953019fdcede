# A compact train-time MobileOne written for reference measurements (Apple's state-dict names).
import torch, torch.nn as nn, torch.nn.functional as F

class ConvBN(nn.Module):
    def __init__(s, cin, cout, k, stride, pad, groups):
        super().__init__()
        s.conv = nn.Conv2d(cin, cout, k, stride, pad, groups=groups, bias=False)
        s.bn = nn.BatchNorm2d(cout)
    def forward(s, x): return s.bn(s.conv(x))

class SE(nn.Module):
    def __init__(s, c):
        super().__init__()
        r = int(c * 0.0625)
        s.reduce = nn.Conv2d(c, r, 1, bias=True); s.expand = nn.Conv2d(r, c, 1, bias=True)
    def forward(s, x):
        g = x.mean((2, 3), keepdim=True)
        return x * torch.sigmoid(s.expand(F.relu(s.reduce(g))))

class Block(nn.Module):
    def __init__(s, cin, cout, k, stride, pad, groups, branches, se):
        super().__init__()
        s.se = SE(cout) if se else nn.Identity()
        s.rbr_skip = nn.BatchNorm2d(cin) if cin == cout and stride == 1 else None
        s.rbr_conv = nn.ModuleList([ConvBN(cin, cout, k, stride, pad, groups) for _ in range(branches)])
        s.rbr_scale = ConvBN(cin, cout, 1, stride, 0, groups) if k > 1 else None
    def forward(s, x):
        out = 0
        if s.rbr_scale is not None: out = s.rbr_scale(x)
        if s.rbr_skip is not None: out = out + s.rbr_skip(x)
        for b in s.rbr_conv: out = out + b(x)
        return F.relu(s.se(out))

class Net(nn.Module):
    def __init__(s, units, widths, k, se_units, classes, in_chans=3):
        super().__init__()
        chans = [int(b * w) for b, w in zip([64, 128, 256, 512], widths)]
        stem = min(64, int(64 * widths[0]))
        s.stage0 = Block(in_chans, stem, 3, 2, 1, 1, 1, False)
        cin = stem
        for si in range(4):
            blocks = []
            for u in range(units[si]):
                stride = 2 if u == 0 else 1
                se = u >= units[si] - se_units[si]
                blocks.append(Block(cin, cin, 3, stride, 1, cin, k, se))
                blocks.append(Block(cin, chans[si], 1, 1, 0, 1, k, se))
                cin = chans[si]
            setattr(s, f"stage{si + 1}", nn.Sequential(*blocks))
        s.linear = nn.Linear(cin, classes)
    def forward(s, x):
        x = s.stage0(x)
        for i in range(1, 5): x = getattr(s, f"stage{i}")(x)
        return s.linear(x.mean((2, 3)))
