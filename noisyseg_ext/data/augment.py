"""Training augmentation: random flips and a small random affine transform, 2D and 3D.

The same geometric transform moves the image (bilinear / trilinear) and its label maps (nearest),
so labels stay aligned with the image. The random numbers come in as a vector of uniforms drawn
by the caller from its per-sample generator, so a sample's augmentation depends on that
generator only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

# Uniform draws used per sample, whatever the options (a fixed layout keeps the patch location,
# drawn after these, independent of the augmentation settings): 3 flips, affine coin,
# 3 angles, scale, 3 translations.
AUGMENT_DRAWS = 11


@dataclass(frozen=True)
class Augmentation:
    """flip_p: probability of flipping each spatial axis; affine_p: probability of the affine
    transform (a sample that skips it is not resampled, so it stays sharp); rotate_degrees:
    rotation range +-degrees (2D: one angle; 3D: one per plane); scale: (low, high) zoom
    factors; translate: +- fraction of each axis."""

    flip_p: float = 0.5
    affine_p: float = 0.5
    rotate_degrees: float = 15.0
    scale: tuple[float, float] = (0.9, 1.1)
    translate: float = 0.05


def _rotation(angles: list[float], dims: int) -> Tensor:
    """A rotation of the tensor axes: 2D by angles[0]; 3D composed of rotations in the planes
    (0, 1), (0, 2), (1, 2)."""
    r = torch.eye(dims, dtype=torch.float64)
    planes = [(0, 1)] if dims == 2 else [(0, 1), (0, 2), (1, 2)]
    for (a, b), angle in zip(planes, angles):
        c, s = math.cos(angle), math.sin(angle)
        g = torch.eye(dims, dtype=torch.float64)
        g[a, a], g[a, b], g[b, a], g[b, b] = c, -s, s, c
        r = g @ r
    return r


def affine_theta(shape: tuple[int, ...], angles: list[float], scale: float, shift: list[float]) -> Tensor:
    """The (1, d, d + 1) ``F.affine_grid`` matrix (align_corners=False) that samples, for each
    output pixel at offset p from the centre (in pixels, tensor axis order), the input at
    scale * R p + shift * shape. Built in pixel units and converted to normalised coordinates, so
    a rotation stays a rotation on non-square images; affine_grid orders axes last-first."""
    d = len(shape)
    half = torch.tensor(shape, dtype=torch.float64) / 2
    m = torch.diag(1 / half) @ (scale * _rotation(angles, d)) @ torch.diag(half)
    t = 2 * torch.tensor(shift, dtype=torch.float64)  # shift * shape pixels = 2 * shift normalised
    rev = list(range(d - 1, -1, -1))
    theta = torch.cat([m[rev][:, rev], t[rev, None]], dim=1)
    return theta[None].to(torch.float32)


def augment(image: Tensor, labels: Tensor, u: Tensor, options: Augmentation = Augmentation()) -> tuple[Tensor, Tensor]:
    """Flips and a small affine transform of one sample.

    Args:
        image: (C, *spatial) float32.
        labels: (L, *spatial) int64 label maps moved with the image (e.g. noisy and clean).
        u: (AUGMENT_DRAWS,) uniforms in [0, 1) (the sample's random numbers).
        options: the ranges and probabilities.

    Returns:
        (image (C, *spatial) float32, labels (L, *spatial) int64); zeros enter at the borders.
    """
    dims = image.dim() - 1
    shape = tuple(image.shape[1:])
    flips = [1 + k for k in range(dims) if float(u[k]) < options.flip_p]
    if flips:
        image, labels = image.flip(flips), labels.flip(flips)
    if float(u[3]) >= options.affine_p:
        return image, labels
    rad = math.radians(options.rotate_degrees)
    angles = [(2 * float(u[4 + k]) - 1) * rad for k in range(1 if dims == 2 else 3)]
    lo, hi = options.scale
    scale = lo + (hi - lo) * float(u[7])
    shift = [(2 * float(u[8 + k]) - 1) * options.translate for k in range(dims)]
    theta = affine_theta(shape, angles, scale, shift)
    grid = F.affine_grid(theta, [1, 1, *shape], align_corners=False)
    image = F.grid_sample(image[None], grid, mode="bilinear", padding_mode="zeros", align_corners=False)[0]
    # Labels as float32 are exact below 2**24; nearest sampling moves them without mixing classes.
    moved = F.grid_sample(labels[None].to(torch.float32), grid, mode="nearest", padding_mode="zeros",
                          align_corners=False)[0]
    return image, moved.round().to(labels.dtype)
