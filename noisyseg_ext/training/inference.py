"""Inference of logits over whole images or volumes: padding to the network's size multiple, and
sliding windows with Gaussian importance weighting (nnU-Net, Isensee et al. 2021) for volumes larger
than the training patch.

Both functions run under ``torch.no_grad()``; the caller puts the network in eval mode. Padding is
with zeros at the *end* of each axis (bottom / right / back), as the HC18 loader pads training
images (``noisyseg_ext.data.hc18``), so a padded test image looks like the training images did.
"""

from __future__ import annotations

import itertools
import math
from contextlib import nullcontext
from typing import Callable, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

AutocastFactory = Optional[Callable[[], object]]


def _pad_end(x: Tensor, target: Sequence[int]) -> Tensor:
    """Zero-pads the trailing ``len(target)`` axes of ``x`` at their ends up to ``target``."""
    pads: list[int] = []
    for size, want in zip(reversed(x.shape[x.dim() - len(target):]), reversed(target)):
        pads += [0, want - size]
    return F.pad(x, pads) if any(pads) else x


def _round_up(size: int, multiple: int) -> int:
    return -(-size // multiple) * multiple


def _forward(net: nn.Module, x: Tensor, autocast: AutocastFactory, num_spatial: int) -> Tensor:
    """net(x) as float32, under ``autocast()`` when given; checks the output keeps the spatial size."""
    with (autocast() if autocast is not None else nullcontext()):
        y = net(x)
    if not isinstance(y, Tensor) or y.dim() != x.dim() or y.shape[0] != x.shape[0] or \
            y.shape[-num_spatial:] != x.shape[-num_spatial:]:
        raise ValueError(f"the network must map (N, C, *spatial) to (N, K, *spatial) of the same spatial size; "
                         f"input {tuple(x.shape)} gave {tuple(y.shape) if isinstance(y, Tensor) else type(y).__name__}")
    return y.float()


def _describe(x) -> str:
    if isinstance(x, Tensor):
        return f"{x.dtype} tensor of shape {tuple(x.shape)}"
    return type(x).__name__


def _check_args(multiple: int, batch: int, overlap: float) -> None:
    if not isinstance(multiple, int) or multiple < 1:
        raise ValueError(f"multiple must be a positive int; got {multiple!r}")
    if not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch must be a positive int; got {batch!r}")
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"overlap must be in [0, 1); got {overlap!r}")


def window_starts(size: int, patch: int, overlap: float) -> list[int]:
    """Start offsets of windows of ``patch`` covering ``size`` (>= patch) pixels, as nnU-Net's
    ``compute_steps_for_sliding_window``: the fewest windows whose step is at most
    ``patch * (1 - overlap)``, spread evenly from 0 to ``size - patch`` (both ends included)."""
    if size <= patch:
        return [0]
    target_step = max(patch * (1.0 - overlap), 1.0)
    n = math.ceil((size - patch) / target_step) + 1
    step = (size - patch) / (n - 1)
    return [int(round(step * i)) for i in range(n)]


def gaussian_importance(patch: Sequence[int], *, sigma_scale: float = 0.125, device=None) -> Tensor:
    """Importance weights (*patch) float32 of one window: a separable Gaussian with sigma =
    ``sigma_scale`` x the patch size per axis (nnU-Net's 1/8), 1 at the centre (0.97 per even axis,
    whose centre falls between pixels). Only ratios matter: the blend divides by the weight sum.

    Centred at (p - 1) / 2, the window's true centre, as MONAI's ``compute_importance_map``, so both
    halves weigh alike (nnU-Net's ``compute_gaussian`` puts the peak at p // 2, half a pixel off for
    even p). No floor beyond keeping weights positive, as nnU-Net (which only replaces zeros): MONAI
    clamps at 1e-3, which near the image's corners, where all covering windows weigh ~1e-3 or less,
    lets a window's unreliable border count as much as another window's interior (measured in
    ``test_inference.py``).
    """
    w = torch.ones((), dtype=torch.float32, device=device)
    for p in patch:
        x = torch.arange(p, dtype=torch.float32, device=device) - (p - 1) / 2.0
        w = w.unsqueeze(-1) * torch.exp(-0.5 * (x / (sigma_scale * p)) ** 2)
    return w.clamp_(min=torch.finfo(torch.float32).tiny)


@torch.no_grad()
def predict_logits(net: nn.Module, image: Tensor, *, multiple: int = 1, patch: Optional[Sequence[int]] = None,
                   overlap: float = 0.5, batch: int = 8, autocast: AutocastFactory = None) -> Tensor:
    """Logits of one image or volume.

    Args:
        net: maps (N, C_in, *spatial) to logits (N, K, *spatial); put it in eval mode first.
        image: (C_in, *spatial) float, 1 to 3 spatial axes, on the network's device.
        multiple: every spatial size the network is given must divide by this
            (``noisyseg_ext.nets.size_multiple(net)``).
        patch: None: the whole image, zero-padded at the end of each axis up to the multiple, in one
            forward. Else the sliding-window size (one int per spatial axis, each divisible by
            ``multiple``): windows at :func:`window_starts` offsets cover the image (zero-padded at
            the ends to the patch size along axes shorter than it), their logits are blended with
            :func:`gaussian_importance` weights, ``batch`` windows per forward.
        overlap: fraction of a window its neighbour overlaps at least, in [0, 1) (sliding windows).
        batch: windows per forward pass (sliding windows).
        autocast: optional callable returning a context manager (e.g. ``lambda:
            torch.autocast("cuda", torch.bfloat16)``) entered around each forward.
    Returns:
        (K, *spatial) float32 logits on the image's device, cropped to the image's size.
    """
    _check_args(multiple, batch, overlap)
    if not isinstance(image, Tensor) or not image.is_floating_point() or not 2 <= image.dim() <= 4:
        raise ValueError("predict_logits: image must be a float tensor (C_in, *spatial) with 1 to 3 spatial axes; "
                         f"got {_describe(image)}")
    spatial = tuple(image.shape[1:])
    if patch is None:
        padded = _pad_end(image, [_round_up(s, multiple) for s in spatial])
        logits = _forward(net, padded.unsqueeze(0), autocast, len(spatial))[0]
        return logits[(slice(None),) + tuple(slice(0, s) for s in spatial)]
    return _sliding_window(net, image, tuple(int(p) for p in patch), multiple, overlap, batch, autocast)


def _sliding_window(net: nn.Module, image: Tensor, patch: tuple[int, ...], multiple: int, overlap: float,
                    batch: int, autocast: AutocastFactory) -> Tensor:
    spatial = tuple(image.shape[1:])
    if len(patch) != len(spatial) or any(p < 1 for p in patch):
        raise ValueError(f"predict_logits: patch {patch} must give one positive size per spatial axis of {spatial}")
    if any(p % multiple for p in patch):
        raise ValueError(f"predict_logits: patch sizes {patch} must be divisible by the network's multiple {multiple}")
    image = _pad_end(image, [max(s, p) for s, p in zip(spatial, patch)])
    padded = tuple(image.shape[1:])
    weight = gaussian_importance(patch, device=image.device)
    corners = list(itertools.product(*(window_starts(s, p, overlap) for s, p in zip(padded, patch))))
    logits: Optional[Tensor] = None
    weight_sum = torch.zeros(padded, dtype=torch.float32, device=image.device)
    for start in range(0, len(corners), batch):
        chunk = corners[start:start + batch]
        boxes = [tuple(slice(c, c + p) for c, p in zip(corner, patch)) for corner in chunk]
        windows = torch.stack([image[(slice(None),) + box] for box in boxes])
        out = _forward(net, windows, autocast, len(patch))
        if logits is None:
            logits = torch.zeros((out.shape[1],) + padded, dtype=torch.float32, device=image.device)
        for box, o in zip(boxes, out):
            logits[(slice(None),) + box] += o * weight
            weight_sum[box] += weight
    assert logits is not None  # at least one window
    logits /= weight_sum
    return logits[(slice(None),) + tuple(slice(0, s) for s in spatial)]


@torch.no_grad()
def predict_batch(net: nn.Module, images: Tensor, *, multiple: int = 1, batch: int = 8,
                  autocast: AutocastFactory = None) -> Tensor:
    """Logits of a batch of same-size images, whole-image mode: zero-padded at the end of each axis to
    the multiple, ``batch`` images per forward, cropped back.

    images (N, C_in, *spatial) float -> (N, K, *spatial) float32 on the same device. Eval mode is the
    caller's (with BatchNorm in train mode the chunking would change the result).
    """
    _check_args(multiple, batch, 0.0)
    if not isinstance(images, Tensor) or not images.is_floating_point() or not 3 <= images.dim() <= 5 \
            or len(images) == 0:
        raise ValueError("predict_batch: images must be a float tensor (N >= 1, C_in, *spatial), 1 to 3 spatial "
                         f"axes; got {_describe(images)}")
    spatial = tuple(images.shape[2:])
    crop = (slice(None), slice(None)) + tuple(slice(0, s) for s in spatial)
    padded = _pad_end(images, [_round_up(s, multiple) for s in spatial])
    outs = [_forward(net, padded[i:i + batch], autocast, len(spatial))[crop] for i in range(0, len(images), batch)]
    return torch.cat(outs)
