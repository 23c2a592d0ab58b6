"""The image-level gate of INT / PINT over images or, in 3D, over slices, and the full label gate.

The PINT paper (Shi & Wu, MICCAI 2021) "regard[s] every slice-level data as image-level data": on
volumes the image gate ranks the slices of the batch (along the last axis here) by their mean
uncertainty. The fused :func:`~noisyseg_ext.ops.pint_loss` gates whole images (the batch dimension)
itself; slices are gated without reshaping the student's logits by setting the pixel uncertainty of
an untrusted slice to +inf (:func:`mask_untrusted`), which the pixel gate ``u < H`` then rejects.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor

from noisyseg_ext.errors import ConfigError
from noisyseg_ext.ops import image_gate


def resolve_image_unit(requested: str, dims: int) -> str:
    """``image`` or ``slice`` for ``--image-unit requested`` on ``dims``-D data (auto: slice in 3D)."""
    if requested == "auto":
        return "slice" if dims == 3 else "image"
    if requested == "slice" and dims != 3:
        raise ConfigError(f"--image-unit slice needs 3D data (slices along the last axis); the data is {dims}D")
    if requested not in ("image", "slice"):
        raise ConfigError(f"--image-unit must be auto, image or slice; got {requested!r}")
    return requested


def slice_uncertainty(pixel: Tensor) -> Tensor:
    """Mean pixel uncertainty of each slice along the last axis: pixel (N, *spatial) -> (N, D)."""
    if pixel.dim() < 3:
        raise ValueError(f"slice_uncertainty: expected (N, *spatial) with >= 2 spatial dims; got {tuple(pixel.shape)}")
    return pixel.flatten(1, -2).mean(1)


def unit_uncertainty(pixel: Tensor, image: Tensor, unit: str) -> Tensor:
    """The uncertainty the image gate ranks: ``image`` (N,) for unit "image", the slices' (N, D) for
    "slice"."""
    return image if unit == "image" else slice_uncertainty(pixel)


def unit_gate(uncertainty: Tensor, *, keep: Optional[float], threshold: Optional[float]) -> Tensor:
    """Bool gate of the same shape as ``uncertainty`` ((N,) or (N, D)): ``U < threshold`` when a
    threshold is given, else the ``keep`` fraction of all entries (the whole batch's slices ranked
    together) with the lowest U, by :func:`noisyseg_ext.ops.image_gate` (the ranking pint_loss uses)."""
    flat = uncertainty.reshape(-1)
    if threshold is not None:
        return (flat < threshold).reshape(uncertainty.shape)
    return image_gate(flat, image_keep_ratio=keep).reshape(uncertainty.shape)


def broadcast_unit_gate(gate: Tensor, spatial_ndim: int) -> Tensor:
    """(N,) or (N, D) gate -> broadcastable to (N, *spatial) (D the last spatial axis)."""
    if gate.dim() == 1:
        return gate.reshape(gate.shape[0], *([1] * spatial_ndim))
    return gate.reshape(gate.shape[0], *([1] * (spatial_ndim - 1)), gate.shape[1])


def mask_untrusted(pixel: Tensor, gate: Tensor) -> Tensor:
    """pixel (N, *spatial) with +inf where the (N,) or (N, D) ``gate`` is False (a pixel gate
    ``u < H`` then rejects those pixels whatever H)."""
    g = broadcast_unit_gate(gate, pixel.dim() - 1)
    return torch.where(g, pixel, torch.full((), math.inf, dtype=pixel.dtype, device=pixel.device))


def label_gate(pixel: Tensor, unit_u: Optional[Tensor], *, pixel_threshold: Optional[float],
               keep: Optional[float] = None, threshold: Optional[float] = None) -> tuple[Tensor, Optional[Tensor]]:
    """The trusted-label gate g = a_i · a_v of PNT / INT / PINT, in torch (diagnostics, figures).

    Args:
        pixel: (N, *spatial) pixel uncertainty u.
        unit_u: None (no image gate) or the image / slice uncertainties ((N,) or (N, D)).
        pixel_threshold: H for ``a_v = [u < H]`` (None: every pixel).
        keep, threshold: the image gate (see :func:`unit_gate`).

    Returns:
        (gate (N, *spatial) bool, the unit gate or None).
    """
    gate = pixel < pixel_threshold if pixel_threshold is not None else torch.ones_like(pixel, dtype=torch.bool)
    if unit_u is None:
        return gate, None
    a = unit_gate(unit_u, keep=keep, threshold=threshold)
    return gate & broadcast_unit_gate(a, pixel.dim() - 1), a
