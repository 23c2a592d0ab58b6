"""Pure-torch reference implementations of every fused op.

They define what the kernels compute: the tests compare the kernels against them, and the ops
fall back to them (with a one-time warning) where no compiled kernel exists for the device.
They are written for clarity, differentiable to any order, and make no attempt at speed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from noisyseg_ext.ops._kernels import acc_dtype


def weighted_ce(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None, *,
                ignore_index: int = -100, reduction: str = "mean") -> torch.Tensor:
    """Reference of :func:`noisyseg_ext.weighted_ce`: ``w * F.cross_entropy(..., reduction="none")``.

    logits (N, C, *spatial) floating, target (N, *spatial) integer, weight (N, *spatial) or None.
    Computes in float32 (float64 for float64 input); returns the input dtype.
    """
    acc = acc_dtype(logits.dtype)
    t = target.long()
    valid = t != ignore_index
    C = logits.shape[1]
    bad = valid & ((t < 0) | (t >= C))
    if bool(bad.any()):
        raise ValueError(f"weighted_ce: target holds {int(t[bad][0])}, outside [0, {C}) "
                         f"and not ignore_index={ignore_index}")
    ce = F.cross_entropy(logits.to(acc), t, reduction="none", ignore_index=ignore_index)
    w = torch.ones_like(ce) if weight is None else weight.to(acc)
    loss = torch.where(valid, w * ce, torch.zeros_like(ce))
    if reduction == "none":
        return loss.to(logits.dtype)
    total = loss.sum()
    if reduction == "sum":
        out = total
    elif reduction == "mean":
        out = total / valid.sum()
    elif reduction == "weighted_mean":
        wsum = torch.where(valid, w, torch.zeros_like(w)).sum()
        safe = torch.where(wsum != 0, wsum, torch.ones_like(wsum))
        out = torch.where(wsum != 0, total / safe, torch.zeros_like(total))
    else:
        raise ValueError(f"weighted_ce: unknown reduction {reduction!r}")
    return out.to(logits.dtype)


# ----------------------------------------------------------------------------------------------
# distance transform and mask surface (noisyseg_ext.distance_transform, noisyseg_ext.metrics)

def distance_transform(mask: torch.Tensor, spacing=None) -> torch.Tensor:
    """Reference of :func:`noisyseg_ext.distance_transform`: separable brute-force minimum.

    mask (N, *spatial) bool, 1 to 3 spatial dims; spacing None or one float per spatial dim.
    Returns float32 (N, *spatial): Euclidean distance from every voxel to the nearest True voxel
    of its image (0 on True voxels; +inf everywhere in an image without a True voxel).
    Axis by axis, f'(q) = min_p f(p) + ((q - p) h)^2 in float64, one loop step per p: O(n S) time
    per axis and O(S) memory, exact, slow on the CPU for large images.
    """
    D = mask.dim() - 1
    h = [1.0] * D if spacing is None else [float(s) for s in spacing]
    f = torch.where(mask.bool(), 0.0, float("inf")).to(torch.float64)
    for a in range(D):
        axis = a + 1
        n = f.shape[axis]
        pos = torch.arange(n, dtype=torch.float64, device=f.device) * h[a]
        shape = [1] * f.dim()
        shape[axis] = n
        best = torch.full_like(f, float("inf"))
        for p in range(n):
            cand = f.narrow(axis, p, 1) + ((pos - pos[p]) ** 2).view(shape)
            best = torch.minimum(best, cand)
        f = best
    return f.sqrt().to(torch.float32)


def mask_surface(mask: torch.Tensor) -> torch.Tensor:
    """Reference of the metrics' surface: ``mask & ~binary_erosion(mask)`` per image, with the
    1-connectivity cross and outside the image counted as background (scipy's border_value=0).

    mask (N, *spatial) bool -> bool of the same shape.
    """
    D = mask.dim() - 1
    m = mask.bool()
    padded = F.pad(m.to(torch.uint8), [1, 1] * D, value=0).bool()
    interior = m.clone()
    for axis in range(1, D + 1):
        for start in (0, 2):  # the neighbour before / after along `axis`
            neigh = padded
            for ax in range(1, D + 1):
                neigh = neigh.narrow(ax, start if ax == axis else 1, m.shape[ax])
            interior = interior & neigh
    return m & ~interior
