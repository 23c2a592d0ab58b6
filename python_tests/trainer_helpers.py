"""Tiny runs for the trainer tests: synthetic 32 x 32 images, a 2-level U-Net of 4 channels."""

from __future__ import annotations

import torch

from noisyseg_ext.data import synthetic_dataset
from noisyseg_ext.training import Trainer, make_config

TINY = dict(base=4, depth=2, batch=4, steps=6, eval_every=3, eval_batch=8, lr=3e-3, noise="dilation", ratio=0.5,
            meta_fraction=0.1, val_fraction=0.15, test_fraction=0.2, quiet=True, device="cpu")


def tiny_data(n: int = 24, shape=(32, 32), seed: int = 0):
    return synthetic_dataset(n, shape, seed=seed)


def tiny_config(out, **overrides):
    return make_config(**{**TINY, "out": str(out), **overrides})


def tiny_run(out, data=None, **overrides):
    """(results, trainer) of a tiny run in ``out``."""
    trainer = Trainer(tiny_config(out, **overrides), data=data if data is not None else tiny_data())
    return trainer.fit(), trainer


def state_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
