"""Exact Euclidean distance transform of binary masks, and the masks' 1-connectivity surface.

Custom ops over the kernels in csrc/distance_transform/ (math in distance_transform_math.h):

* ``noisyseg::distance_transform``    separable lower-envelope EDT (Felzenszwalb & Huttenlocher),
  one pass per axis, anisotropic spacing;
* ``noisyseg::mask_surface``          ``mask XOR erode(mask)`` with the 1-connectivity cross;
* ``noisyseg::mask_boxes``            bounding boxes of per-class masks read from label maps;
* ``noisyseg::surface_distance_map``  the metrics' fused step: EDT of one mask's surface inside a
  box, kept at the other mask's surface voxels (see noisyseg_ext/metrics/surface.py).

No gradients: the outputs are piecewise constant in the masks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Optional

import torch
from torch import Tensor

from noisyseg_ext.ops import _checks, _direct, _kernels, reference
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
# kernels: a list of distance-transform jobs over boxes, and per-mask bounding boxes

# Columns of the job table (enum JobCol in csrc/distance_transform/distance_transform_math.h).
JOB_COLS = ("seed_which", "seed_offset", "seed_class", "query_which", "query_offset", "query_class",
            "lo0", "lo1", "lo2", "dim0", "dim1", "dim2", "out",
            "seed_lo0", "seed_lo1", "seed_lo2", "seed_hi0", "seed_hi1", "seed_hi2",
            "query_lo0", "query_lo1", "query_lo2", "query_hi0", "query_hi1", "query_hi2")
QUERY_PASS = 3  # row of the line table for the query flags pass (rows 0-2: the passes along axes 0-2)


def job_lines(jobs: Tensor) -> Tensor:
    """int64 (J, 4): lines of each job's passes along axes 0, 1, 2 and of its query pass. The pass
    along axis a runs over the seed box S on the axes before a and the query box Q after it (see
    distance_transform_math.h); the query pass over Q."""
    s = (jobs[:, 16:19] - jobs[:, 13:16]).clamp(min=0)
    q = (jobs[:, 22:25] - jobs[:, 19:22]).clamp(min=0)
    return torch.stack([q[:, 1] * q[:, 2], s[:, 0] * q[:, 2], s[:, 0] * s[:, 1], q[:, 0] * q[:, 1]], 1)
LABEL_SOURCE_DTYPES = (torch.bool, torch.uint8, torch.int32, torch.int64)
PLANE_SOURCE_DTYPES = LABEL_SOURCE_DTYPES + (torch.float32, torch.float64)  # 0/1 one-hot planes


BOX_CLASSES = 32  # classes one mask_boxes row scans at once (kBoxClasses)


def _run_jobs(src0: Tensor, src1: Tensor, jobs: Tensor, line_start: Optional[Tensor], lines: Sequence[int],
              spatial: Sequence[int], spacing: Sequence[float], surface: bool, with_query: bool,
              total: int) -> tuple[Tensor, Optional[Tensor]]:
    """Launches the job list (see distance_transform_math.h); returns the packed float32 output
    and, with a query mask, the uint8 query flags (1 = a query surface voxel)."""
    out = torch.empty(total, dtype=torch.float32, device=src0.device)
    qflags = torch.zeros(total, dtype=torch.uint8, device=src0.device) if with_query else None  # zeroed: read outside Q
    if total == 0 or jobs.shape[0] == 0:
        return out, qflags
    D, n = _grid(spatial)
    a = _C.EdtArgs()
    a.src0, a.src1 = _kernels.ptr(src0), _kernels.ptr(src1)
    a.label_dtype = _kernels.DTYPE_CODES[src0.dtype]
    a.jobs, a.line_start = _kernels.ptr(jobs), _kernels.ptr(line_start)
    a.J = jobs.shape[0]
    a.lines0, a.lines1, a.lines2, a.lines_query = (int(x) for x in lines)
    a.D = D
    a.n0, a.n1, a.n2 = n
    a.h0, a.h1, a.h2 = [1.0] * (3 - D) + [float(x) for x in spacing]
    a.surface = surface
    a.out, a.qflags = _kernels.ptr(out), _kernels.ptr(qflags)
    scratch = ()
    if src0.device.type == "cuda" and D > 1:  # envelope scratch at each line's own slots
        scratch = (torch.empty(total, dtype=torch.int32, device=out.device),
                   torch.empty(total, dtype=torch.float32, device=out.device),
                   torch.empty(total, dtype=torch.float64, device=out.device))
        a.scratch_v, a.scratch_f, a.scratch_z = (_kernels.ptr(t) for t in scratch)
    _C.distance_transform(a, *_kernels.device_args(out))
    # the scratch is freed after the launch is queued: the caching allocator reuses its memory
    # only for work queued later on the same stream.
    del scratch
    return out, qflags


def _edt_impl(mask: Tensor, spacing: list[float]) -> Tensor:
    """mask (B, *spatial) bool, 1 to 3 spatial dims; spacing one float per spatial dim.
    Returns float32 (B, *spatial)."""
    mask = mask.contiguous()
    B, spatial = mask.shape[0], list(mask.shape[1:])
    S = math.prod(spatial)
    if B == 0 or S == 0:
        return torch.empty(mask.shape, dtype=torch.float32, device=mask.device)
    _, n = _grid(spatial)
    jobs = torch.zeros((B, len(JOB_COLS)), dtype=torch.int64)
    jobs[:, 1] = torch.arange(B) * S          # seed_offset: image b's plane
    jobs[:, 2] = 1                            # seed_class: True
    jobs[:, 9:12] = torch.tensor(n)           # dims: the whole image
    jobs[:, 12] = torch.arange(B) * S         # out: the dense (B, *spatial) layout
    jobs[:, 16:19] = torch.tensor(n)          # seed box S = query box Q = the whole image
    jobs[:, 22:25] = torch.tensor(n)
    lines = [B * S // n[a] for a in range(3)] + [0]
    out, _ = _run_jobs(mask, mask, jobs.to(mask.device), None, lines, spatial, spacing, False, False, B * S)
    return out.view(mask.shape)


_edt = torch.library.custom_op("noisyseg::distance_transform", _edt_impl, mutates_args=())


@_edt.register_fake
def _edt_fake(mask, spacing):
    return mask.new_empty(mask.shape, dtype=torch.float32)


def _surface_distance_map_impl(src0: Tensor, src1: Tensor, jobs: Tensor, line_start: Tensor, lines: list[int],
                               spatial: list[int], spacing: list[float], total: int) -> tuple[Tensor, Tensor]:
    """Metrics' jobs: distance transform of the seed mask's surface in each job's box, read at the
    query mask's surface voxels. src0 / src1: label maps or 0/1 planes (bool / uint8 / int32 /
    int64), indexed by the jobs; jobs int64 (J, 25) (JOB_COLS); line_start int64 (4, J + 1) prefix
    sums of job_lines(jobs).t(); lines: the four totals. Returns (float32 (total,) distances, valid where the uint8 (total,) query flags are 1)."""
    if src0.shape != src1.shape:
        raise ValueError(f"surface_distance_map: src0 {tuple(src0.shape)} and src1 {tuple(src1.shape)} differ")
    _check_jobs(jobs, line_start, lines, spatial, total, src0.numel(), "surface_distance_map")
    return _run_jobs(src0.contiguous(), src1.contiguous(), jobs.contiguous(), line_start.contiguous(), lines,
                     spatial, spacing, True, True, total)


def _check_jobs(jobs: Tensor, line_start: Tensor, lines, spatial, total: int, src_numel: int, op: str) -> None:
    """The job table must keep every access inside the images and the packed buffer."""
    J = jobs.shape[0]
    if jobs.dim() != 2 or jobs.shape[1] != len(JOB_COLS) or tuple(line_start.shape) != (4, J + 1):
        raise ValueError(f"{op}: jobs must be (J, {len(JOB_COLS)}) and line_start (4, J + 1); got "
                         f"{tuple(jobs.shape)} and {tuple(line_start.shape)}")
    if J == 0:
        return
    _, n = _grid(spatial)
    lo, dims, out = jobs[:, 6:9], jobs[:, 9:12], jobs[:, 12]
    size = torch.tensor(n, device=jobs.device)
    vol = dims.prod(1)
    per_axis = job_lines(jobs)
    bad = ((lo < 0) | (dims < 0) | (lo + dims > size)).any(1) | (out < 0) | (out + vol > total)
    for box in (jobs[:, 13:19], jobs[:, 19:25]):  # S and Q inside U (or empty)
        empty = (box[:, 3:] <= box[:, :3]).any(1)
        bad |= ~empty & ((box[:, :3] < lo).any(1) | (box[:, 3:] > lo + dims).any(1))
    planes = jobs[:, [1, 4]]
    bad |= (jobs[:, [0, 3]] < 0).any(1) | (jobs[:, [0, 3]] > 1).any(1)
    bad |= (planes < 0).any(1) | (planes + math.prod(n) > src_numel).any(1)
    bad |= (line_start[:, 1:] - line_start[:, :-1] != per_axis.t()).any(0)
    if bool(bad.any()) or line_start[:, -1].tolist() != [int(x) for x in lines]:
        raise ValueError(f"{op}: inconsistent job table (boxes outside the image {n} or their box U, "
                         f"slices outside the buffer of {total}, or line counts that do not match the boxes)")


_surface_distance_map = torch.library.custom_op("noisyseg::surface_distance_map", _surface_distance_map_impl,
                                               mutates_args=())


@_surface_distance_map.register_fake
def _surface_distance_map_fake(src0, src1, jobs, line_start, lines, spatial, spacing, total):
    return src0.new_empty((total,), dtype=torch.float32), src0.new_empty((total,), dtype=torch.uint8)


def _mask_boxes_impl(src0: Tensor, src1: Tensor, rows: Tensor, spatial: list[int], num_boxes: int,
                     num_values: int) -> tuple[Tensor, Tensor]:
    """Bounding boxes of per-class masks, several classes per scan: rows int64 (R, 5) = (source
    0/1, offset of the image plane, first class, number of classes <= 32, index of its first box).
    Returns (int32 (num_boxes, 6): (lo0, lo1, lo2, hi0, hi1, hi2) inclusive, in coordinates padded
    to 3D, (INT32_MAX x 3, -1 x 3) for an empty mask; int64[2] flag: [1, value] when a plane
    holds a value outside [0, num_values))."""
    box = torch.empty((num_boxes, 6), dtype=torch.int32, device=src0.device)
    box[:, :3] = torch.iinfo(torch.int32).max
    box[:, 3:] = -1
    flag = _kernels.new_flag(src0.device)
    D, n = _grid(spatial)
    R = rows.shape[0]
    if R == 0 or math.prod(n) == 0:
        return box, flag
    src0, src1, rows = src0.contiguous(), src1.contiguous(), rows.contiguous()
    if rows.shape[1] != 5 or int((rows[:, 3].clamp(max=BOX_CLASSES) + rows[:, 4]).max()) > num_boxes:
        raise ValueError(f"mask_boxes: rows {tuple(rows.shape)} address boxes beyond num_boxes={num_boxes}")
    a = _C.BoxArgs()
    a.src0, a.src1 = _kernels.ptr(src0), _kernels.ptr(src1)
    a.label_dtype = _kernels.DTYPE_CODES[src0.dtype]
    a.rows, a.box, a.flag = _kernels.ptr(rows), _kernels.ptr(box), _kernels.ptr(flag)
    a.num_values = num_values
    a.R, a.D = R, D
    a.n0, a.n1, a.n2 = n
    _C.mask_boxes(a, *_kernels.device_args(box))
    return box, flag


_mask_boxes = torch.library.custom_op("noisyseg::mask_boxes", _mask_boxes_impl, mutates_args=())


@_mask_boxes.register_fake
def _mask_boxes_fake(src0, src1, rows, spatial, num_boxes, num_values):
    return src0.new_empty((num_boxes, 6), dtype=torch.int32), src0.new_empty((2,), dtype=torch.int64)


# ----------------------------------------------------------------------------------------------
# distance transform

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
    mask = mask.contiguous()
    return _direct.pick(_edt_impl, torch.ops.noisyseg.distance_transform, mask)(mask, h)


# ----------------------------------------------------------------------------------------------
# surface

def _surface_impl(mask: Tensor) -> Tensor:
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


_surface = torch.library.custom_op("noisyseg::mask_surface", _surface_impl, mutates_args=())


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
    mask = mask.contiguous()
    return _direct.pick(_surface_impl, torch.ops.noisyseg.mask_surface, mask)(mask)
