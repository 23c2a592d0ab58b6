"""`noisyseg demo`: a short run on the embedded HC18 sample.

Corrupts the training masks by dilation, trains a small U-Net with the fused `weighted_ce`, reports
the Dice of the clean test masks, and times the fused loss against eager PyTorch on the same batch.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from tqdm import tqdm

from noisyseg_ext import build_info, weighted_ce
from noisyseg_ext.data import load_hc18_sample
from noisyseg_ext.nets import UNet


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--steps", type=int, default=60, help="training steps (default 60)")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--noise-ratio", type=float, default=0.6, help="fraction of training masks corrupted")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")


def _dilate(masks: torch.Tensor, iterations: int) -> torch.Tensor:
    """Binary dilation with a 3x3 cross, `iterations` times (masks (N, H, W) in {0, 1})."""
    cross = torch.tensor([[0, 1, 0], [1, 1, 1], [0, 1, 0]], dtype=torch.float32).view(1, 1, 3, 3)
    x = masks.float().unsqueeze(1)
    for _ in range(iterations):
        x = (F.conv2d(x, cross, padding=1) > 0).float()
    return x.squeeze(1).to(masks.dtype)


def _dice(pred: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    inter = (pred & ref).flatten(1).sum(1).float()
    return 2 * inter / (pred.flatten(1).sum(1) + ref.flatten(1).sum(1)).clamp_min(1)


def run(args: argparse.Namespace) -> dict:
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    images, masks, _ = load_hc18_sample()
    images, masks = F.pad(images, (0, 0, 2, 2)), F.pad(masks, (0, 0, 2, 2))  # 108 -> 112 rows
    train_x, train_y, test_x, test_y = images[:48], masks[:48].clone(), images[48:], masks[48:]
    gen = torch.Generator().manual_seed(args.seed)
    noisy = torch.randperm(48, generator=gen)[: round(args.noise_ratio * 48)]
    clean_train = train_y.clone()
    for i in noisy.tolist():
        train_y[i] = _dilate(train_y[i : i + 1], int(torch.randint(3, 9, (1,), generator=gen)))[0]
    noise_dice = _dice(train_y[noisy].bool(), clean_train[noisy].bool()).mean().item()
    print(f"noisyseg_ext {build_info()['version']} on {device}: {len(noisy)}/48 training masks dilated "
          f"(Dice noisy vs clean {noise_dice:.3f})")

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
    dice = _dice(pred.bool(), test_y.bool()).mean().item()
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
