#!/usr/bin/python3
# Prints timm ModelEmaV3.get_decay(step) (timm/utils/model_ema.py, loaded from a timm source tree) for the steps and
# settings of tests/MobileOne.Tests/Training/EmaWarmupTests.cs, as xunit InlineData lines (step, decay, use_warmup,
# expected decay with "R" precision).
#   /usr/bin/python3 tools/data/ema-warmup-reference.py /work/tmp/timm-src
import importlib.util
import sys

import torch

root = sys.argv[1] if len(sys.argv) > 1 else "/work/tmp/timm-src"
spec = importlib.util.spec_from_file_location("timm_model_ema", f"{root}/timm/utils/model_ema.py")
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)

for decay, warmup in [(0.9995, True), (0.9998, True), (0.5, True), (0.9995, False)]:
    ema = module.ModelEmaV3(torch.nn.Linear(1, 1), decay=decay, use_warmup=warmup)
    for step in [0, 1, 2, 3, 10, 100, 1000, 10000, 89442, 89443, 200000]:
        print(f"    [InlineData({step}, {decay!r}, {str(warmup).lower()}, {ema.get_decay(step)!r})]")
