"""The `noisyseg` command's demo runs end to end on the embedded sample."""

import math

import torch

from noisyseg_ext.cli.main import main
from noisyseg_ext.cli import demo
from noisyseg_ext.data import load_hc18_sample


def test_embedded_sample_loads():
    images, masks, names = load_hc18_sample()
    assert images.shape == (64, 1, 108, 160) and images.dtype == torch.float32
    assert masks.shape == (64, 108, 160) and set(masks.unique().tolist()) == {0, 1}
    assert len(names) == 64 and 0.1 < masks.float().mean() < 0.6


def test_demo_runs(capsys):
    import argparse

    args = argparse.Namespace(steps=3, batch=4, noise_ratio=0.6, seed=0, device="cpu")
    result = demo.run(args)
    assert 0.5 < result["noise_dice"] < 1.0          # masks really were corrupted
    assert 0.0 <= result["test_dice"] <= 1.0 and not math.isnan(result["test_dice"])
    assert all(t > 0 for t in result["timings"].values())
    assert "test Dice" in capsys.readouterr().out


def test_main_defaults_to_demo(monkeypatch):
    seen = {}
    monkeypatch.setattr(demo, "run", lambda args: seen.setdefault("args", args))
    assert main(["--steps", "2"]) == 0
    assert seen["args"].steps == 2 and seen["args"].command == "demo"
