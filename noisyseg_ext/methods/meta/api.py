"""A meta-learning method around any ``nn.Module``, without the trainer or the CLI."""

from __future__ import annotations

import contextlib
from typing import Callable, Optional, Sequence, Union

import torch
from torch import Tensor, nn

from noisyseg_ext.errors import ConfigError
from noisyseg_ext.methods.base import Method, TrainContext
from noisyseg_ext.methods.losses import segmentation_loss
from noisyseg_ext.methods.registry import get_method
from noisyseg_ext.training.config import make_config

MetaBatches = Union[Callable[[int], dict[str, Tensor]], Sequence[dict[str, Tensor]]]


def build_method(name: str, net: nn.Module, optimizer: torch.optim.Optimizer, meta_batches: MetaBatches, *,
                 dims: Optional[int] = None, num_classes: Optional[int] = None,
                 autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
                 **options) -> Method:
    """``mwnet``, ``l2rw`` or ``mcpm`` (any registered method) for ``net`` and its optimiser.

    Args:
        name: the method (``--method``).
        net: any module mapping (N, C_in, *spatial) float to logits (N, C, *spatial); its device is the
            training device.
        optimizer: the network's optimiser; its first group's learning rate is the virtual step size.
            You step it (the method steps only its own weight net).
        meta_batches: ``fn(step) -> {"image", "label"}`` of the clean meta set, or a sequence of such
            dicts (used in turn).
        dims: 2 or 3 spatial dims (default: ``net.dims`` if it has one, else that of the first meta batch).
        num_classes: C (default ``net.num_classes`` if any; the meta methods do not use it).
        autocast: the context of each step (e.g. ``lambda: torch.autocast("cuda", torch.bfloat16)``).
        options: any option by its Python name (``meta_grad="reverse"``, ``meta_params="head"``,
            ``mcpm_normalize="sum"``, ``loss="ce+dice"``, ...); ConfigError for a bad one.

    Example::

        method = build_method("mcpm", net, opt, meta_batches)
        for step, batch in enumerate(batches):            # batch: {"image", "label"} (noisy labels)
            out = method.training_step(batch, step)
            opt.zero_grad(); out["loss"].backward(); opt.step()
    """
    if callable(meta_batches):
        meta_batch = meta_batches
    else:
        batches = list(meta_batches)
        if not batches:
            raise ConfigError("build_method: meta_batches is empty")
        meta_batch = lambda step: batches[step % len(batches)]  # noqa: E731
    if dims is None:
        dims = getattr(net, "dims", None) or meta_batch(0)["image"].dim() - 2
    config = make_config(method=name, **options)
    device = next(net.parameters()).device
    ctx = TrainContext(net=net, model=net, optimizer=optimizer, config=config, device=device,
                       num_classes=int(num_classes or getattr(net, "num_classes", 0) or 0), dims=int(dims),
                       max_steps=config.steps,
                       loss_fn=lambda logits, target, weight=None: segmentation_loss(logits, target, weight,
                                                                                     kind=config.loss),
                       autocast=autocast, meta_batch=meta_batch)
    return get_method(name)(ctx).to(device)
