"""Random training patches: uniform, or centred on a foreground voxel with probability fg_ratio."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

# Uniform draws per sample: the foreground coin, one start per axis (3), the foreground voxel.
PATCH_DRAWS = 5
# Foreground voxels kept per volume to pick patch centres from (an even stride over all of them):
# bounds the cache at 4096 x 3 int32 = 48 KiB a volume, whatever the volume's size.
MAX_FOREGROUND = 4096


def foreground_voxels(label: Tensor) -> Tensor:
    """(K, d) int32 coordinates of up to MAX_FOREGROUND foreground voxels (label != 0) of
    ``label`` (*spatial), evenly strided in raster order; (0, d) when there is none."""
    coords = torch.nonzero(label)
    if coords.shape[0] > MAX_FOREGROUND:
        coords = coords[torch.linspace(0, coords.shape[0] - 1, MAX_FOREGROUND).long()]
    return coords.to(torch.int32)


def patch_start(shape: Sequence[int], patch: Sequence[int], fg_ratio: float, u: Tensor,
                foreground: Tensor) -> tuple[int, ...]:
    """Start corner of a patch of size ``patch`` inside ``shape`` (each >= patch).

    With probability ``fg_ratio`` (u[0] < fg_ratio) and when ``foreground`` (K, d) is not empty,
    the patch is centred on foreground[floor(u[4] * K)] (moved inside the volume when the
    centre is near a border); otherwise every start is uniform: floor(u[1 + k] * (shape - patch + 1))."""
    slack = [int(s) - int(p) for s, p in zip(shape, patch)]
    if float(u[0]) < fg_ratio and foreground.shape[0] > 0:
        k = min(int(float(u[4]) * foreground.shape[0]), foreground.shape[0] - 1)
        centre = foreground[k].tolist()
        return tuple(min(max(c - p // 2, 0), s) for c, p, s in zip(centre, patch, slack))
    return tuple(min(int(float(u[1 + k]) * (s + 1)), s) for k, s in enumerate(slack))


def crop(t: Tensor, start: Sequence[int], patch: Sequence[int]) -> Tensor:
    """The window [start, start + patch) of the trailing len(patch) axes of ``t``."""
    lead = t.dim() - len(patch)
    index = [slice(None)] * lead + [slice(s, s + p) for s, p in zip(start, patch)]
    return t[tuple(index)]
