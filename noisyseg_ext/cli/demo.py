"""`noisyseg demo`: a short run on the embedded HC18 sample.

Corrupts most training masks by dilation (the library's `corrupt_labels`), trains a small U-Net with the fused `weighted_ce`, reports
the Dice of the clean test masks, and times the fused loss against eager PyTorch on the same batch.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from tqdm import tqdm

from noisyseg_ext import build_info, corrupt_labels, weighted_ce
from noisyseg_ext.data import load_hc18_sample
from noisyseg_ext.nets import UNet
from noisyseg_ext.noise.overlap import dice_per_sample


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--steps", type=int, default=60, help="training steps (default 60)")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--noise-ratio", type=float, default=0.6, help="fraction of training masks corrupted")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")


def run(args: argparse.Namespace) -> dict:
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    images, masks, _ = load_hc18_sample()
    images, masks = F.pad(images, (0, 0, 2, 2)), F.pad(masks, (0, 0, 2, 2))  # 108 -> 112 rows
    train_x, train_y, test_x, test_y = images[:48], masks[:48].clone(), images[48:], masks[48:]
    clean_train = train_y.clone()
    # METHODS.md §7's HC18 setting: 60 % of the training masks dilated by a cross, 3-8 iterations.
    train_y, records = corrupt_labels(train_y, "dilation", args.noise_ratio, seed=args.seed, iterations=(3, 8))
    noisy = [r.index for r in records if r.corrupted]
    noise_dice = dice_per_sample(train_y[noisy], clean_train[noisy]).mean().item() if noisy else 1.0
    print(f"noisyseg_ext {build_info()['version']} on {device}: {len(noisy)}/48 training masks dilated "
          f"(Dice noisy vs clean {noise_dice:.3f})")
    gen = torch.Generator().manual_seed(args.seed)

    net = UNet(1, 2, base=8, depth=3).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    train_x, train_y = train_x.to(device), train_y.to(device)
    for step in (bar := tqdm(range(args.steps), desc="training", unit="step")):
        idx = torch.randint(0, 48, (args.batch,), generator=gen)
        loss = weighted_ce(net(train_x[idx]), train_y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        bar.set_postfix(loss=f"{loss.item():.3f}")

    net.eval()
    with torch.no_grad():
        pred = net(test_x.to(device)).argmax(1).cpu()
    dice = dice_per_sample(pred, test_y).nanmean().item()
    print(f"test Dice on clean masks after {args.steps} steps: {dice:.3f}")

    logits = torch.randn(16, 2, 112, 160, device=device, requires_grad=True)
    target = torch.randint(0, 2, (16, 112, 160), device=device)
    weight = torch.rand(16, 112, 160, device=device)
    timings = {}
    for name, fn in [("fused weighted_ce", lambda: weighted_ce(logits, target, weight)),
                     ("eager (F.cross_entropy * w).mean()",
                      lambda: (F.cross_entropy(logits, target, reduction="none") * weight).mean())]:
        for _ in range(3):
            fn().backward()
        t0 = time.perf_counter()
        for _ in range(20):
            fn().backward()
        if device.type == "cuda":
            torch.cuda.synchronize()
        timings[name] = (time.perf_counter() - t0) / 20
        print(f"{name:36s} forward+backward on (16, 2, 112, 160): {timings[name] * 1e3:7.2f} ms")
    return {"test_dice": dice, "noise_dice": noise_dice, "timings": timings}
