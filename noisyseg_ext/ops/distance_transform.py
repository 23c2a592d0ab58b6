"""Exact Euclidean distance transform of binary masks, and the masks' 1-connectivity surface.

Two custom ops over the kernels in csrc/distance_transform/ (math in distance_transform_math.h):

* ``noisyseg::distance_transform``  separable lower-envelope EDT (Felzenszwalb & Huttenlocher),
  one pass per axis, anisotropic spacing, optionally restricted to a per-image box;
* ``noisyseg::mask_surface``        ``mask XOR erode(mask)`` with the 1-connectivity cross.

No gradients: the outputs are piecewise constant in the masks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Optional

import torch
from torch import Tensor

from noisyseg_ext.ops import _checks, _kernels, reference
from noisyseg_ext.ops._kernels import C as _C


def normalize_spacing(spacing, ndim: int, op: str) -> list[float]:
    """``spacing`` (None, one number, or one number per spatial dim) as ``ndim`` positive floats."""
    if spacing is None:
        return [1.0] * ndim
    if isinstance(spacing, Tensor):
        spacing = spacing.tolist()
    if isinstance(spacing, (int, float)) and not isinstance(spacing, bool):
        values = [float(spacing)] * ndim
    elif isinstance(spacing, Sequence) and not isinstance(spacing, str):
        values = [float(s) for s in spacing]
        if len(values) != ndim:
            raise ValueError(f"{op}: spacing has {len(values)} values {list(spacing)}, expected one per "
                             f"spatial dim ({ndim})")
    else:
        raise TypeError(f"{op}: spacing must be None, a number or a sequence of {ndim} numbers; "
                        f"got {type(spacing).__name__}")
    for s in values:
        if not (math.isfinite(s) and s > 0):
            raise ValueError(f"{op}: spacing must be finite and > 0; got {values}")
    return values


def check_binary(name: str, t: Tensor, op: str) -> Tensor:
    """``t`` as a bool tensor; bool passes, other dtypes must hold only 0 and 1."""
    _checks.check_tensor(name, t, op)
    if t.dtype == torch.bool:
        return t
    if t.is_complex():
        raise TypeError(f"{op}: {name} must be bool, integer or floating; got {t.dtype}")
    bad = (t != 0) & (t != 1)
    if bool(bad.any()):
        raise ValueError(f"{op}: {name} must be binary (only 0 and 1); found {t[bad].flatten()[0].item()!r} "
                         f"(dtype {t.dtype})")
    return t != 0


def _grid(shape: Sequence[int]) -> tuple[int, list[int]]:
    """(D, sizes padded to 3 with leading 1s) of the spatial shape."""
    D = len(shape)
    return D, [1] * (3 - D) + [int(s) for s in shape]


# ----------------------------------------------------------------------------------------------
# distance transform

@torch.library.custom_op("noisyseg::distance_transform", mutates_args=())
def _edt(mask: Tensor, spacing: list[float], box_lo: Optional[Tensor], box_hi: Optional[Tensor]) -> Tensor:
    """mask (B, *spatial) bool, 1 to 3 spatial dims; spacing one float per spatial dim;
    box_lo / box_hi None or int64 (B, 3) corners [lo, hi) in coordinates padded to 3D (leading
    axes of size 1 get [0, 1)). Returns float32 (B, *spatial); outside the box: +inf."""
    mask = mask.contiguous()
    D, n = _grid(mask.shape[1:])
    if box_lo is None:
        out = torch.empty(mask.shape, dtype=torch.float32, device=mask.device)
    else:
        out = torch.full(mask.shape, float("inf"), dtype=torch.float32, device=mask.device)
        box_lo, box_hi = box_lo.contiguous(), box_hi.contiguous()
    if out.numel() == 0:
        return out
    a = _C.EdtArgs()
    a.mask, a.out = _kernels.ptr(mask), _kernels.ptr(out)
    a.box_lo, a.box_hi = _kernels.ptr(box_lo), _kernels.ptr(box_hi)
    a.B, a.D = mask.shape[0], D
    a.n0, a.n1, a.n2 = n
    a.h0, a.h1, a.h2 = [1.0] * (3 - D) + [float(s) for s in spacing]
    scratch = ()
    if mask.device.type == "cuda" and D > 1:  # per-line envelope scratch, interleaved by line
        numel = mask.numel()
        scratch = (torch.empty(numel, dtype=torch.int32, device=mask.device),
                   torch.empty(numel, dtype=torch.float32, device=mask.device),
                   torch.empty(numel, dtype=torch.float64, device=mask.device))
        a.scratch_v, a.scratch_f, a.scratch_z = (_kernels.ptr(s) for s in scratch)
    _C.distance_transform(a, *_kernels.device_args(mask))
    del scratch  # kept alive until the launch is queued; the caching allocator orders reuse on the stream
    return out


@_edt.register_fake
def _edt_fake(mask, spacing, box_lo, box_hi):
    return mask.new_empty(mask.shape, dtype=torch.float32)


def _validate_mask(mask, op: str) -> Tensor:
    _checks.check_tensor("mask", mask, op)
    if mask.dim() < 2 or mask.dim() > 4:
        raise ValueError(f"{op}: mask must be (N, *spatial) with 1 to 3 spatial dims; got shape {tuple(mask.shape)}")
    return check_binary("mask", mask, op)


def distance_transform(mask: Tensor, *, spacing=None) -> Tensor:
    """Exact Euclidean distance from every voxel to the nearest True voxel of its image.

    Per image, equal to ``scipy.ndimage.distance_transform_edt(~mask[n], sampling=spacing)`` up to
    float32 rounding (exactly equal, after rounding to float32, with unit spacing): separable
    lower-envelope algorithm of Felzenszwalb & Huttenlocher, one pass per axis, O(size) work.

    Args:
        mask: (N, *spatial) with 1 to 3 spatial dims, bool (or integer / floating holding only 0
            and 1), CPU or CUDA.
        spacing: None (unit spacing), one positive number, or one positive number per spatial dim
            (the voxel size along each axis, e.g. in mm).

    Returns:
        float32 (N, *spatial): 0 on True voxels. Conventions: a **full** image (every voxel True)
        is all 0; an **empty** image (no True voxel) is all ``+inf`` (scipy returns a
        meaningless finite map there).

    Raises:
        TypeError / ValueError for a non-tensor, a wrong number of dims, non-binary values, or a
        spacing of the wrong length or not > 0.
    """
    op = "distance_transform"
    mask = _validate_mask(mask, op)
    h = normalize_spacing(spacing, mask.dim() - 1, op)
    if not _kernels.use_kernel(op, mask.device):
        return reference.distance_transform(mask, h)
    return torch.ops.noisyseg.distance_transform(mask.contiguous(), h, None, None)


# ----------------------------------------------------------------------------------------------
# surface

@torch.library.custom_op("noisyseg::mask_surface", mutates_args=())
def _surface(mask: Tensor) -> Tensor:
    """mask (B, *spatial) bool, 1 to 3 spatial dims -> bool surface of the same shape."""
    mask = mask.contiguous()
    out = torch.empty(mask.shape, dtype=torch.bool, device=mask.device)
    if out.numel() == 0:
        return out
    D, n = _grid(mask.shape[1:])
    a = _C.SurfaceArgs()
    a.mask, a.out = _kernels.ptr(mask), _kernels.ptr(out)
    a.B, a.D = mask.shape[0], D
    a.n0, a.n1, a.n2 = n
    a.parts = _kernels.num_parts(mask.numel())
    _C.mask_surface(a, *_kernels.device_args(mask))
    return out


@_surface.register_fake
def _surface_fake(mask):
    return torch.empty_like(mask, dtype=torch.bool)


def mask_surface(mask: Tensor) -> Tensor:
    """Surface voxels of each image: ``mask XOR binary_erosion(mask)`` with the 1-connectivity
    cross (face neighbours), voxels outside the image counted as background (scipy's default
    ``border_value=0``, as medpy and MONAI use).

    Args:
        mask: (N, *spatial) with 1 to 3 spatial dims, bool (or 0/1 integer / floating).
    Returns:
        bool (N, *spatial).
    """
    op = "mask_surface"
    mask = _validate_mask(mask, op)
    if not _kernels.use_kernel(op, mask.device):
        return reference.mask_surface(mask)
    return torch.ops.noisyseg.mask_surface(mask.contiguous())
