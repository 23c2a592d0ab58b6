"""``synthetic_dataset``: random ellipses (2D) or ellipsoids (3D) with noisy intensities, for tests
and the 3D demo. Each class 1..C-1 is one shape (later classes drawn over earlier ones), brighter
than the background by its class number; Gaussian noise (sigma 0.35 of a class step) and a smooth
intensity ramp make it a little harder than thresholding, yet a small U-Net learns it quickly."""

from __future__ import annotations

import math
from typing import Sequence

import torch

from noisyseg_ext.errors import DataError
from noisyseg_ext.data.items import mask_dtype
from noisyseg_ext.data.segmentation_set import SegmentationSet
from noisyseg_ext.data.seeding import generator
from noisyseg_ext.data.transforms import normalize as normalize_image

_SYNTHETIC_STREAM = 104


def _shape_mask(coords: list[torch.Tensor], shape: Sequence[int], g: torch.Generator) -> torch.Tensor:
    """A random ellipse / ellipsoid: centre in the middle 40 % of each axis, semi-axes 12-30 % of
    each axis, rotated at random in 2D."""
    d = len(shape)
    u = torch.rand(2 * d + 1, generator=g, dtype=torch.float64)
    centre = [(0.3 + 0.4 * float(u[k])) * s for k, s in enumerate(shape)]
    radius = [(0.12 + 0.18 * float(u[d + k])) * s for k, s in enumerate(shape)]
    offsets = [c - m for c, m in zip(coords, centre)]
    if d == 2:
        a = math.pi * float(u[2 * d])
        offsets = [offsets[0] * math.cos(a) - offsets[1] * math.sin(a),
                   offsets[0] * math.sin(a) + offsets[1] * math.cos(a)]
    return sum((o / r) ** 2 for o, r in zip(offsets, radius)) <= 1.0


def synthetic_dataset(n: int, shape: Sequence[int] = (64, 64), *, num_classes: int = 2, seed: int = 0,
                      channels: int = 1, normalize: str = "zscore") -> SegmentationSet:
    """``n`` random items of spatial ``shape`` ((H, W) or (D1, D2, D3)).

    Returns a SegmentationSet: images (channels, *shape) float32 normalised per image, masks
    (*shape) uint8 classes 0..num_classes-1; names ``synthetic_000``..., one subject each, spacing
    1.0, no affine. Deterministic in ``seed`` (item i from (seed, i): the first items do not
    depend on n)."""
    shape = tuple(int(s) for s in shape)
    if len(shape) not in (2, 3) or any(s < 4 for s in shape):
        raise DataError(f"synthetic_dataset: shape must be 2D or 3D with sizes >= 4; got {shape}")
    if n < 1 or num_classes < 2 or channels < 1:
        raise DataError(f"synthetic_dataset: need n >= 1, num_classes >= 2, channels >= 1; got n={n}, "
                        f"num_classes={num_classes}, channels={channels}")
    coords = list(torch.meshgrid(*[torch.arange(s, dtype=torch.float64) + 0.5 for s in shape], indexing="ij"))
    images, masks = [], []
    for i in range(n):
        g = generator(seed, _SYNTHETIC_STREAM, i)
        mask = torch.zeros(shape, dtype=torch.int64)
        for k in range(1, num_classes):
            mask[_shape_mask(coords, shape, g)] = k
        ramp_dir = torch.randn(len(shape), generator=g, dtype=torch.float64)
        ramp = sum(float(w) * (c / s - 0.5) for w, c, s in zip(ramp_dir, coords, shape)) * 0.5
        level = mask.to(torch.float64) + ramp
        chans = [level * (1.0 + 0.25 * c) + 0.35 * torch.randn(shape, generator=g, dtype=torch.float64)
                 for c in range(channels)]
        images.append(normalize_image(torch.stack(chans).to(torch.float32), normalize))
        masks.append(mask.to(mask_dtype(num_classes)))
    names = [f"synthetic_{i:03d}" for i in range(n)]
    return SegmentationSet(images=images, masks=masks, noisy_masks=None, names=names, subjects=list(names),
                           spacings=[(1.0,) * len(shape)] * n, affines=[None] * n, original_shapes=[shape] * n,
                           sources=[""] * n, num_classes=num_classes, dims=len(shape), in_channels=channels,
                           subject_regex=None, description=f"synthetic_dataset({n}, {shape})")
