"""Elastic deformation with a coarse control grid: elasticdeform's deform_grid, batched, CPU + CUDA.

Two custom ops (math in csrc/elastic/elastic_math.h):

* ``noisyseg::elastic_field``   prefilters the control grid (N, ndim, *points) (cubic B-spline,
  mirror) and expands it one axis at a time, last axis first, up to axis 1: (N, ndim, P0, *spatial[1:])
  float64. Tiny: it is what makes the per-voxel work cheap.
* ``noisyseg::elastic_sample``  per voxel: the displacement from the 4 control planes of axis 0,
  the border mode, and order 0 / 1 / 3 sampling. For order 3 the image is first prefiltered (cubic
  B-spline, mirror, like scipy.ndimage.spline_filter1d) into a float32 / float64 copy, by the same
  line-prefilter kernel.

Differentiable with respect to the float images x (the sampling is linear in x; its adjoint, a
scatter, is written in plain torch), not with respect to the displacement: it is meant for data
augmentation and for synthesising label noise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Real
from typing import Optional, Union

import torch
from torch import Tensor

from noisyseg_ext.ops import _checks, _direct, _kernels, reference
from noisyseg_ext.ops._kernels import C as _C

OP = "elastic_deform"
MODES = ("constant", "nearest", "mirror")
MODE_CODES = {"constant": 0, "nearest": 1, "mirror": 2}  # enum Mode in elastic_math.h
ORDERS = (0, 1, 3)
LABEL_DTYPES = (torch.uint8, torch.int32, torch.int64, torch.bool)


# ----------------------------------------------------------------------------------------------
# kernels

def _prefilter_(t: Tensor, dim: int) -> None:
    """In-place cubic B-spline prefilter of contiguous float32/float64 ``t`` along ``dim``."""
    a = _C.ElasticPrefilterArgs()
    a.dtype = _kernels.DTYPE_CODES[t.dtype]
    a.data = _kernels.ptr(t)
    a.outer = math.prod(t.shape[:dim])
    a.len = t.shape[dim]
    a.inner = math.prod(t.shape[dim + 1:])
    _C.elastic_prefilter(a, *_kernels.device_args(t))


def _expand(t: Tensor, dim: int, length: int) -> Tensor:
    """Cubic B-spline expansion of prefiltered control values along ``dim`` to ``length`` voxels."""
    shape = list(t.shape)
    points, shape[dim] = shape[dim], length
    out = torch.empty(shape, dtype=torch.float64, device=t.device)
    a = _C.ElasticExpandArgs()
    a.in_, a.out = _kernels.ptr(t), _kernels.ptr(out)
    a.outer, a.points, a.len = math.prod(shape[:dim]), points, length
    a.inner = math.prod(shape[dim + 1:])
    _C.elastic_expand(a, *_kernels.device_args(t))
    return out


def _field_impl(displacement: Tensor, spatial: list[int]) -> Tensor:
    """displacement (N, ndim, *points) float64 -> (N, ndim, P0, *spatial[1:]) float64."""
    coef = displacement.to(torch.float64, copy=True).contiguous()
    ndim = coef.dim() - 2
    for k in range(ndim):
        _prefilter_(coef, 2 + k)
    for k in range(ndim - 1, 0, -1):
        coef = _expand(coef, 2 + k, spatial[k])
    return coef


_field = torch.library.custom_op("noisyseg::elastic_field", _field_impl, mutates_args=())


@_field.register_fake
def _field_fake(displacement, spatial):
    n, ndim, p0 = displacement.shape[:3]
    return displacement.new_empty((n, ndim, p0, *spatial[1:]), dtype=torch.float64)


def _sample_impl(x: Tensor, field: Tensor, order: int, mode: str, cval: float, cval_label: int) -> Tensor:
    """x (N, [C,] *spatial), field from elastic_field -> deformed x (same shape and dtype)."""
    ndim = field.dim() - 2
    x = x.contiguous()
    out = torch.empty_like(x)
    src = x
    if order == 3:
        src = x.to(_kernels.acc_dtype(x.dtype), copy=True).contiguous()
        for k in range(ndim):
            _prefilter_(src, x.dim() - ndim + k)
    spatial = list(x.shape[-ndim:]) + [1] * (3 - ndim)
    a = _C.ElasticSampleArgs()
    a.dtype, a.in_dtype = _kernels.DTYPE_CODES[x.dtype], _kernels.DTYPE_CODES[src.dtype]
    a.ndim, a.order, a.mode = ndim, order, MODE_CODES[mode]
    a.x, a.field, a.out = _kernels.ptr(src), _kernels.ptr(field), _kernels.ptr(out)
    a.images = x.shape[0]
    a.channels = x.shape[1] if x.dim() == ndim + 2 else 1
    a.size0, a.size1, a.size2 = spatial
    a.points0 = field.shape[2]
    a.cval, a.cval_label = cval, cval_label
    _C.elastic_sample(a, *_kernels.device_args(x))
    return out


_sample = torch.library.custom_op("noisyseg::elastic_sample", _sample_impl, mutates_args=())


@_sample.register_fake
def _sample_fake(x, field, order, mode, cval, cval_label):
    return torch.empty_like(x)


# Gradient with respect to x only (the sampling is linear in x). It is the transposed sampling, a
# scatter: written in plain torch (reference.elastic_sample_backward), not as a kernel.
def _sample_setup(ctx, inputs, output):
    x, field, order, mode, cval, cval_label = inputs
    ctx.save_for_backward(field)
    ctx.order, ctx.mode, ctx.x_dtype = order, mode, x.dtype


def _sample_backward(ctx, grad):
    if not ctx.needs_input_grad[0] or grad is None:
        return None, None, None, None, None, None
    (field,) = ctx.saved_tensors
    gx = reference.elastic_sample_backward(grad, field, ctx.order, ctx.mode).to(ctx.x_dtype)
    return gx, None, None, None, None, None


_sample.register_autograd(_sample_backward, setup_context=_sample_setup)


# ----------------------------------------------------------------------------------------------
# validation

def _as_list(value, n: int, name: str) -> list:
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise ValueError(f"{OP}: {name} has {len(value)} entries for {n} tensors")
        return list(value)
    return [value] * n


def _check_displacement(displacement) -> int:
    _checks.check_tensor("displacement", displacement, OP)
    if not displacement.dtype.is_floating_point:
        raise TypeError(f"{OP}: displacement must be floating (pixels); got {displacement.dtype}")
    ndim = displacement.dim() - 2
    if ndim not in (2, 3) or displacement.shape[1] != ndim:
        raise ValueError(f"{OP}: displacement must be (N, ndim, *points) with ndim = 2 or 3 control-grid "
                         f"axes and shape[1] == ndim; got shape {tuple(displacement.shape)}")
    if any(p < 2 for p in displacement.shape[2:]):
        raise ValueError(f"{OP}: the control grid needs at least 2 points per axis; got displacement shape "
                         f"{tuple(displacement.shape)}")
    return ndim


def _check_order(order, name: str) -> int:
    if isinstance(order, bool) or not isinstance(order, int):
        raise TypeError(f"{OP}: {name} must be an int in {list(ORDERS)}; got {order!r}")
    if order not in ORDERS:
        raise ValueError(f"{OP}: {name} must be 0 (nearest), 1 (linear) or 3 (cubic B-spline); got {order}")
    return order


def _check_input(i: int, x, displacement: Tensor, ndim: int, order, mode, cval, labels, spatial):
    name = "x" if i < 0 else f"x[{i}]"
    _checks.check_tensor(name, x, OP)
    if x.dim() not in (ndim + 1, ndim + 2):
        raise ValueError(f"{OP}: {name} must be (N, *spatial) or (N, C, *spatial) with {ndim} spatial dims "
                         f"(displacement is {tuple(displacement.shape)}); got shape {tuple(x.shape)}")
    if x.shape[0] != displacement.shape[0]:
        raise ValueError(f"{OP}: {name} has N = {x.shape[0]} samples but displacement has "
                         f"{displacement.shape[0]} grids (shape {tuple(displacement.shape)})")
    if spatial is not None and tuple(x.shape[-ndim:]) != spatial:
        raise ValueError(f"{OP}: all tensors share one deformation and need the same spatial size; "
                         f"{name} is {tuple(x.shape[-ndim:])}, the first is {spatial}")
    order = _check_order(order, "order" if i < 0 else f"order[{i}]")
    is_label = x.dtype in LABEL_DTYPES
    if not is_label and x.dtype not in _kernels.FLOAT_DTYPES:
        raise TypeError(f"{OP}: {name} must be float16/bfloat16/float32/float64 or a uint8/int32/int64/bool "
                        f"label map; got {x.dtype}")
    if labels is not None and not isinstance(labels, bool):
        raise TypeError(f"{OP}: labels must be None, True or False; got {labels!r}")
    if labels and not is_label:
        raise TypeError(f"{OP}: {name} must be an integer or bool label map (labels=True); got {x.dtype}: "
                        "convert float masks with .long() / .bool() first")
    if is_label and order != 0:
        raise ValueError(f"{OP}: {name} is a {x.dtype} label map: labels need order=0 (nearest); got order={order}")
    _checks.check_choice("mode", mode, MODES, OP)
    if isinstance(cval, bool) or not isinstance(cval, Real):
        raise TypeError(f"{OP}: cval must be a real number; got {cval!r}")
    if is_label and not math.isfinite(float(cval)):
        raise ValueError(f"{OP}: cval must be finite for the label map {name}; got {cval}")
    _checks.check_same_device(OP, **{name: x, "displacement": displacement})
    return order, is_label


# ----------------------------------------------------------------------------------------------
# public functions

TensorOrList = Union[Tensor, Sequence[Tensor]]


def elastic_deform(x: TensorOrList, displacement: Tensor, *, order: Union[int, Sequence[int]] = 0,
                   mode: Union[str, Sequence[str]] = "constant", cval: Union[float, Sequence[float]] = 0,
                   labels: Union[Optional[bool], Sequence[Optional[bool]]] = None) -> TensorOrList:
    """Elastic deformation by a coarse control grid, as ``elasticdeform.deform_grid`` per sample.

    A grid of P_k control points along spatial axis k (P = displacement.shape[2:]) spans the image
    corners (voxel j of an axis of length L sits at grid position (P_k - 1) j / (L - 1), so a
    3-point grid has its middle point at the image centre); the displacement is the cubic B-spline
    through the grid values (scipy spline prefilter, mirror borders), and the output pulls:
    ``out[j] = x[j + d(j)]``.

    Args:
        x: (N, *spatial) or (N, C, *spatial) tensor, 2 or 3 spatial dims, CPU or CUDA; or a list /
            tuple of such tensors with the same N and spatial size, all deformed by the same grid
            (e.g. an image with order 3 and its mask with order 0). dtypes: float16 / bfloat16 /
            float32 / float64 images (any order; float16 / bfloat16 / float32 compute in float32),
            or uint8 / int32 / int64 / bool label maps (order 0 only; values are copied exactly).
        displacement: (N, ndim, *points) floating, one control grid per sample, in pixels
            (``displacement[n, k]`` moves along spatial axis k), ndim = 2 or 3, points >= 2 per axis
            (they may differ between axes). Computed in float64. On x's device, or on the CPU (then
            copied to x's device).
        order: 0 (nearest: labels), 1 (linear) or 3 (cubic B-spline with prefilter: images); one
            per tensor when x is a list.
        mode: border mode for sampling positions outside the image: ``"constant"`` (cval; as in
            elasticdeform, any position outside [0, L - 1] on some axis, even by less than half a
            voxel, gives cval), ``"nearest"`` (clamped), ``"mirror"`` (reflected about the first and
            last voxel). Interpolation taps beyond the border are always mirrored, as in
            elasticdeform. One per tensor, or one for all.
        cval: fill value of ``"constant"``; for label maps rounded as elasticdeform stores it
            (half away from zero, clamped to the dtype; bool: cval != 0).
        labels: True asserts that a tensor is a label map: float tensors then raise TypeError
            (float masks where labels are required); None (default) infers it from the dtype.

    Returns:
        The deformed tensor (same shape, dtype, device as x), or a list of them for a list x.

    Matches ``elasticdeform.deform_grid(X, displacement[n], order=order, mode=mode, cval=cval)``
    sample by sample: to float64 round-off for float64, to float32 round-off for float32, to the
    output dtype's rounding for float16 / bfloat16 (which elasticdeform does not take); order 0 may
    differ where the sampling position is at an exact .5 tie. Differentiable with respect to float
    x (any order; the backward is plain torch), not with respect to the displacement.

    Raises:
        TypeError / ValueError for wrong types, dtypes, shapes (dimensionality, a displacement grid
        that does not fit, points < 2), orders (label maps need 0), modes or devices. A
        non-finite displacement gives cval where it reaches (never a crash).
    """
    ndim = _check_displacement(displacement)
    single = isinstance(x, Tensor)
    xs = [x] if single else x
    if not isinstance(xs, (list, tuple)) or len(xs) == 0:
        raise TypeError(f"{OP}: x must be a tensor or a non-empty list/tuple of tensors; got {type(x).__name__}")
    count = len(xs)
    if isinstance(xs[0], Tensor) and displacement.device.type == "cpu" and xs[0].device.type != "cpu":
        displacement = displacement.to(xs[0].device)  # a few control points: copied to the images' device
    orders, modes = _as_list(order, count, "order"), _as_list(mode, count, "mode")
    cvals, label_flags = _as_list(cval, count, "cval"), _as_list(labels, count, "labels")
    spatial = None
    checked = []
    for i, t in enumerate(xs):
        o, is_label = _check_input(-1 if single else i, t, displacement, ndim, orders[i], modes[i], cvals[i],
                                   label_flags[i], spatial)
        spatial = tuple(t.shape[-ndim:])
        checked.append((o, is_label))

    if _kernels.use_kernel(OP, displacement.device):
        field = _direct.pick(_field_impl, torch.ops.noisyseg.elastic_field, displacement)(displacement, list(spatial))
        outs = []
        for t, (o, is_label), m, cv in zip(xs, checked, modes, cvals):
            cl = reference.elastic_label_cval(cv, t.dtype) if is_label else 0
            sample = _direct.pick_with_grad(_sample_impl, _sample_setup, _sample_backward,
                                            torch.ops.noisyseg.elastic_sample, t, field)
            outs.append(sample(t, field, o, m, float(cv), cl))
    else:
        outs = [reference.elastic_deform(t, displacement, order=o, mode=m, cval=float(cv))
                for t, (o, _), m, cv in zip(xs, checked, modes, cvals)]
    if single:
        return outs[0]
    return outs if isinstance(x, list) else tuple(outs)


def random_displacement(n: int, sigma: float, points: Union[int, Sequence[int]] = 3, *, ndim: int = 2,
                        generator: Optional[torch.Generator] = None,
                        device: Optional[torch.device] = None) -> Tensor:
    """Random control grids (n, ndim, *points) float64: N(0, sigma^2) pixels, as
    ``elasticdeform.deform_random_grid`` draws them. Drawn on the generator's device (the CPU when
    no generator is given) and then moved to ``device``, so one generator state gives the same
    grids whatever the device of the images."""
    if isinstance(sigma, bool) or not isinstance(sigma, Real):
        raise TypeError(f"random_elastic_deform: sigma must be a real number (pixels); got {sigma!r}")
    if not math.isfinite(float(sigma)) or sigma < 0:
        raise ValueError(f"random_elastic_deform: sigma must be finite and >= 0; got {sigma}")
    if ndim not in (2, 3):
        raise ValueError(f"random_elastic_deform: ndim must be 2 or 3; got {ndim}")
    pts = [points] * ndim if not isinstance(points, (list, tuple)) else list(points)
    if len(pts) != ndim or any(isinstance(p, bool) or not isinstance(p, int) for p in pts):
        raise TypeError(f"random_elastic_deform: points must be an int or {ndim} ints; got {points!r}")
    if any(p < 2 for p in pts):
        raise ValueError(f"random_elastic_deform: points must be >= 2 per axis; got {points!r}")
    gen_device = generator.device if generator is not None else torch.device("cpu")
    d = torch.randn((n, ndim, *pts), generator=generator, dtype=torch.float64, device=gen_device) * float(sigma)
    return d.to(device) if device is not None else d


def random_elastic_deform(x: TensorOrList, sigma: float, points: Union[int, Sequence[int]] = 3, *,
                          order: Union[int, Sequence[int]] = 0, mode: Union[str, Sequence[str]] = "constant",
                          cval: Union[float, Sequence[float]] = 0,
                          labels: Union[Optional[bool], Sequence[Optional[bool]]] = None,
                          ndim: Optional[int] = None, generator: Optional[torch.Generator] = None,
                          return_displacement: bool = False):
    """Random elastic deformation, as ``elasticdeform.deform_random_grid`` with one grid per sample.

    Args:
        x: as :func:`elastic_deform` (a tensor or a list sharing one deformation per sample).
        sigma: standard deviation of the control-point displacements, in pixels (>= 0).
        points: control points per axis (int, or one int per spatial axis), each >= 2.
        order, mode, cval, labels: as :func:`elastic_deform` (default order 0: label maps).
        ndim: number of spatial dims; default ``x.dim() - 1`` (for a list: the smallest ``dim() - 1``),
            i.e. x read as (N, *spatial). Give it for a lone (N, C, *spatial) input.
        generator: torch.Generator for the displacements (see :func:`random_displacement`: drawn on
            the generator's device, default CPU, so results do not depend on the tensors' device).
        return_displacement: also return the (N, ndim, *points) float64 grids used.

    Returns:
        The deformed tensor(s), and the displacement when ``return_displacement``.
    """
    first = x if isinstance(x, Tensor) else (x[0] if isinstance(x, (list, tuple)) and len(x) > 0 else None)
    if first is None or not isinstance(first, Tensor):
        raise TypeError(f"random_elastic_deform: x must be a tensor or a non-empty list/tuple of tensors; "
                        f"got {type(x).__name__}")
    tensors = [x] if isinstance(x, Tensor) else [t for t in x if isinstance(t, Tensor)]
    nd = min(t.dim() for t in tensors) - 1 if ndim is None else ndim
    if nd not in (2, 3):
        raise ValueError(f"random_elastic_deform: x must be (N, *spatial) with 2 or 3 spatial dims (or pass "
                         f"ndim); got shape {tuple(first.shape)}")
    d = random_displacement(first.shape[0], sigma, points, ndim=nd, generator=generator, device=first.device)
    out = elastic_deform(x, d, order=order, mode=mode, cval=cval, labels=labels)
    return (out, d) if return_displacement else out
