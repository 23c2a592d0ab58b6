"""Deterministic per-image transforms: resizing, intensity normalisation, padding."""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from noisyseg_ext.errors import DataError

NORMALIZATIONS = ("zscore", "minmax", "none")


def resize_image(image: Tensor, size: Sequence[int]) -> Tensor:
    """image (C, *spatial) float32 -> (C, *size) float32: bilinear (2D, antialiased when shrinking,
    like PIL) or trilinear (3D), align_corners=False."""
    if tuple(image.shape[1:]) == tuple(size):
        return image
    mode = "bilinear" if len(size) == 2 else "trilinear"
    return F.interpolate(image[None], size=tuple(size), mode=mode, align_corners=False,
                         antialias=len(size) == 2)[0]


def resize_mask(mask: Tensor, size: Sequence[int]) -> Tensor:
    """mask (*spatial) integer -> (*size), same dtype, nearest neighbour (``nearest-exact``: the
    pixel whose centre is nearest, as PIL and scipy; plain ``nearest`` shifts by half a pixel)."""
    if tuple(mask.shape) == tuple(size):
        return mask
    out = F.interpolate(mask[None, None].to(torch.float32), size=tuple(size), mode="nearest-exact")[0, 0]
    return out.to(mask.dtype)  # class values travel exactly as float32 (any label below 2**24)


def resized_spacing(spacing: Sequence[float], old: Sequence[int], new: Sequence[int]) -> tuple[float, ...]:
    """Spacing after resizing ``old`` -> ``new`` voxels: spacing * old / new, so physical extents
    (and distances such as HD95) are unchanged."""
    return tuple(float(s) * o / n for s, o, n in zip(spacing, old, new))


def normalize(image: Tensor, how: str) -> Tensor:
    """Per-image, per-channel intensity normalisation of image (C, *spatial) float32:
    ``zscore``: (x - mean) / std (only x - mean when std is 0); ``minmax``: (x - min) / (max - min)
    in [0, 1] (0 when constant); ``none``: unchanged."""
    if how == "none":
        return image
    flat = image.reshape(image.shape[0], -1)  # float32 sums: torch's cascaded sums stay accurate
    shape = (image.shape[0],) + (1,) * (image.dim() - 1)
    if how == "zscore":
        std, mean = torch.std_mean(flat, dim=1, correction=0)
        std = torch.where(std > 1e-12, std, torch.ones_like(std))
        return ((image - mean.view(shape)) / std.view(shape)).contiguous()
    if how == "minmax":
        lo, hi = flat.amin(1), flat.amax(1)
        span = torch.where(hi > lo, hi - lo, torch.ones_like(hi))
        return ((image - lo.view(shape)) / span.view(shape)).contiguous()
    raise DataError(f"normalize must be one of {', '.join(NORMALIZATIONS)}; got {how!r}")


def pad_amounts(shape: Sequence[int], target: Sequence[int]) -> list[int]:
    """F.pad's argument that pads ``shape`` at the end of each axis up to ``target`` (last axis first)."""
    out: list[int] = []
    for s, t in zip(reversed(tuple(shape)), reversed(tuple(target))):
        out += [0, max(0, t - s)]
    return out


def pad_to(tensor: Tensor, target: Sequence[int]) -> Tensor:
    """Zero-pads the trailing len(target) axes of ``tensor`` at their ends up to ``target``."""
    spatial = tensor.shape[tensor.dim() - len(target):]
    if all(s >= t for s, t in zip(spatial, target)):
        return tensor
    return F.pad(tensor, pad_amounts(spatial, target))


def padded_shape(shape: Sequence[int], multiple: int) -> tuple[int, ...]:
    """Each size rounded up to a multiple of ``multiple``."""
    return tuple(-(-int(s) // multiple) * multiple for s in shape)
