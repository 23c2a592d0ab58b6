"""Optimisers and learning-rate schedules of the segmentation network."""

from __future__ import annotations

import math

import torch
from torch import nn

from noisyseg_ext.errors import ConfigError


def build_optimizer(net: nn.Module, config) -> torch.optim.Optimizer:
    """``--optimizer adam`` (Adam, weight decay as L2) or ``sgd`` (momentum ``--momentum``, Nesterov off)
    over every trainable parameter of ``net``, at ``--lr``."""
    params = [p for p in net.parameters() if p.requires_grad]
    if not params:
        raise ConfigError("the network has no trainable parameters")
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    raise ConfigError(f"unknown optimizer {config.optimizer!r}; choose adam or sgd")


def lr_factor(kind: str, step: int, total: int, *, step_size: int = 2500, gamma: float = 0.1) -> float:
    """The factor of the base learning rate after ``step`` completed steps of ``total``:

    * ``poly``: (1 - step / total) ** 0.9 (nnU-Net's schedule);
    * ``step``: gamma ** (step // step_size) (the PINT paper: x0.1 every 2500 iterations);
    * ``cosine``: 0.5 (1 + cos(pi step / total));
    * ``constant``: 1.
    """
    t = min(max(step, 0), total) / max(total, 1)
    if kind == "poly":
        return (1.0 - t) ** 0.9
    if kind == "step":
        return gamma ** (step // step_size)
    if kind == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * t))
    if kind == "constant":
        return 1.0
    raise ConfigError(f"unknown schedule {kind!r}; choose poly, step, cosine or constant")


def build_scheduler(optimizer: torch.optim.Optimizer, config) -> torch.optim.lr_scheduler.LambdaLR:
    """A LambdaLR applying :func:`lr_factor` of ``--schedule`` over ``--steps`` (stepped once per
    training step; its state_dict holds the position, so resume continues the schedule)."""
    total = config.steps
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(config.schedule, s, total, step_size=config.lr_step, gamma=config.lr_gamma))
