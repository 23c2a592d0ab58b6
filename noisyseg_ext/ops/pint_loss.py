"""PINT / PNT / INT gated loss: CE on trusted pixels, MSE to the teacher's mean elsewhere, fused.

Two custom ops (math in csrc/pint/pint_math.h):

* ``noisyseg::pint_loss_fwd``  loss (map or fused sum), gate map, counts and, when a gradient
  will be wanted, d loss / d student_logits of every pixel, all from one pass;
* ``noisyseg::pint_loss_bwd``  that derivative times the upstream gradient (not differentiable
  further: no double backward).

The image gate (a ranking over N values) is computed in plain torch; the pixel gate, the blend and
the diagnostics come from the one kernel pass.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Optional

import torch
from torch import Tensor

from noisyseg_ext.ops import _checks, _direct, _kernels, reference
from noisyseg_ext.ops._kernels import C as _C

REDUCTIONS = ("none", "mean", "sum")


class PintLossResult(NamedTuple):
    """Result of :func:`pint_loss`.

    loss: 0-dim (or (N, *spatial) for reduction="none") in the student's dtype, differentiable
    with respect to student_logits. gate: (N, *spatial) bool, g = a_i · a_v (True = trust the
    label). pixel_trusted_fraction: 0-dim, fraction of non-ignored pixels with g = 1.
    image_trusted_fraction: 0-dim, fraction of images with a_i = 1. image_gate: (N,) bool a_i.
    The fractions are float32 (float64 for float64 logits).
    """

    loss: Tensor
    gate: Tensor
    pixel_trusted_fraction: Tensor
    image_trusted_fraction: Tensor
    image_gate: Tensor


def _args(student: Tensor, target: Tensor, mean_prob: Tensor, gate: Tensor, weight: float, ignore_index: int):
    a = _C.PintArgs()
    a.dtype, a.label_dtype = _kernels.DTYPE_CODES[student.dtype], _kernels.DTYPE_CODES[target.dtype]
    a.x, a.target, a.mu = _kernels.ptr(student), _kernels.ptr(target), _kernels.ptr(mean_prob)
    a.gate = _kernels.ptr(gate)
    a.N, a.C = student.shape[0], student.shape[1]
    a.S = target[0].numel() if target.shape[0] > 0 else 0
    a.weight, a.ignore_index = float(weight), ignore_index
    a.parts = _kernels.num_parts(target.numel())
    return a


# ----------------------------------------------------------------------------------------------
# forward

def _fwd_impl(student_logits: Tensor, target: Tensor, mean_prob: Tensor, pixel_uncertainty: Tensor,
              image_gate: Optional[Tensor], pixel_threshold: Optional[float], consistency_weight: float,
              ignore_index: int, want_map: bool, want_grad: bool) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """mean_prob, pixel_uncertainty and image_gate (0/1, (N,)) in the accumulation dtype.
    Returns (loss map (N, *spatial) if want_map else the sum (0-dim, accumulation dtype),
    gate (N, *spatial) bool, number of non-ignored pixels and number of trusted ones among them
    (0-dim float64), dloss: d loss_pixel / d student_logits (N, C, *spatial) in the accumulation
    dtype if want_grad, else an empty (0,) tensor). Writing dloss in the forward costs one store
    per score; the backward is then one multiply instead of a pass that recomputes the softmax."""
    x, target = student_logits.contiguous(), target.contiguous()
    acc = _kernels.acc_dtype(x.dtype)
    gate = torch.empty(target.shape, dtype=torch.bool, device=x.device)
    loss_map = torch.empty(target.shape, dtype=x.dtype, device=x.device) if want_map else None
    dloss = torch.empty(x.shape if want_grad else (0,), dtype=acc, device=x.device)
    a = _args(x, target, mean_prob.contiguous(), gate, consistency_weight, ignore_index)
    a.u = _kernels.ptr(pixel_uncertainty.contiguous())
    a.image_gate = _kernels.ptr(None if image_gate is None else image_gate.contiguous())
    a.has_pixel_threshold = pixel_threshold is not None
    a.pixel_threshold = 0.0 if pixel_threshold is None else float(pixel_threshold)
    partials = torch.empty((a.parts, 3), dtype=torch.float64, device=x.device)  # every part writes its row
    flag = _kernels.new_flag(x.device)
    a.loss_map, a.partials, a.flag = _kernels.ptr(loss_map), _kernels.ptr(partials), _kernels.ptr(flag)
    a.dloss = _kernels.ptr(dloss)
    _C.pint_loss_forward(a, *_kernels.device_args(x))
    bad = _kernels.flagged_value(flag)
    if bad is not None:
        raise ValueError(f"pint_loss: target holds {bad}, outside [0, {x.shape[1]}) and not ignore_index={ignore_index}")
    stats = partials.sum(0)
    out = loss_map if want_map else stats[0].to(acc, copy=True)
    return out, gate, stats[1].clone(), stats[2].clone(), dloss


_fwd = torch.library.custom_op("noisyseg::pint_loss_fwd", _fwd_impl, mutates_args=())


@_fwd.register_fake
def _fwd_fake(student_logits, target, mean_prob, pixel_uncertainty, image_gate, pixel_threshold,
              consistency_weight, ignore_index, want_map, want_grad):
    acc = _kernels.acc_dtype(student_logits.dtype)
    out = student_logits.new_empty(target.shape) if want_map else student_logits.new_empty((), dtype=acc)
    f64 = torch.float64
    dloss = student_logits.new_empty(student_logits.shape if want_grad else (0,), dtype=acc)
    return (out, student_logits.new_empty(target.shape, dtype=torch.bool),
            student_logits.new_empty((), dtype=f64), student_logits.new_empty((), dtype=f64), dloss)


def _fwd_setup(ctx, inputs, output):
    student_logits, target, mean_prob, pixel_uncertainty, image_gate = inputs[:5]
    ctx.save_for_backward(student_logits, target, mean_prob, pixel_uncertainty, image_gate, output[4])
    ctx.mark_non_differentiable(*output[1:])
    ctx.scalars, ctx.out_shape = inputs[5:9], output[0].shape


def _fwd_backward(ctx, g_out, g_gate, g_count, g_trusted, g_dloss):
    student_logits, target, mean_prob, pixel_uncertainty, image_gate, dloss = ctx.saved_tensors
    if not ctx.needs_input_grad[0]:
        return (None,) * 10
    if dloss.numel() != student_logits.numel():
        # The forward ran without want_grad (pint_loss asks for it whenever a gradient can be
        # wanted; a direct call of the op may not): one more pass for the derivative.
        dloss = torch.ops.noisyseg.pint_loss_fwd(student_logits, target, mean_prob, pixel_uncertainty, image_gate,
                                                 *ctx.scalars, True)[4]
    if g_out is None:
        g_out = dloss.new_zeros(ctx.out_shape)
    if torch.is_grad_enabled():  # create_graph=True: through the op that has no autograd formula
        grad = torch.ops.noisyseg.pint_loss_bwd(g_out, dloss, student_logits)
    else:  # the usual first-order backward: the same multiply without a second op dispatch
        grad = _scaled(g_out, dloss, student_logits.dtype)
    return (grad,) + (None,) * 9


_fwd.register_autograd(_fwd_backward, setup_context=_fwd_setup)


# ----------------------------------------------------------------------------------------------
# backward (first order only)

@torch.library.custom_op("noisyseg::pint_loss_bwd", mutates_args=())
def _bwd(g: Tensor, dloss: Tensor, student_logits: Tensor) -> Tensor:
    """g: (N, *spatial) or 0-dim upstream gradient; dloss: (N, C, *spatial) from the forward.
    Returns d/d student_logits = dloss · g (broadcast over C) in student_logits' dtype.
    student_logits is not read: it is an input so that autograd knows the result depends on it,
    and, this op having no autograd formula, a double backward fails loudly ("no autograd
    formula") instead of silently dropping the terms that flow through the softmax."""
    return _scaled(g, dloss, student_logits.dtype)


def _scaled(g: Tensor, dloss: Tensor, dtype: torch.dtype) -> Tensor:
    g = g.to(dloss.dtype)
    return (dloss * (g.unsqueeze(1) if g.dim() > 0 else g)).to(dtype)


@_bwd.register_fake
def _bwd_fake(g, dloss, student_logits):
    return dloss.new_empty(dloss.shape, dtype=student_logits.dtype)


# ----------------------------------------------------------------------------------------------
# public function

def _validate(student_logits, target, mean_prob, pixel_uncertainty, image_uncertainty, pixel_threshold,
              image_threshold, image_keep_ratio, consistency_weight, ignore_index, reduction) -> None:
    op = "pint_loss"
    _checks.check_floating("student_logits", student_logits, op)
    _checks.check_labels("target", target, op)
    _checks.check_floating("mean_prob", mean_prob, op)
    _checks.check_floating("pixel_uncertainty", pixel_uncertainty, op)
    if student_logits.dim() < 3 or student_logits.dim() > 5:
        raise ValueError(f"{op}: student_logits must be (N, C, *spatial) with 1 to 3 spatial dims; "
                         f"got shape {tuple(student_logits.shape)}")
    if student_logits.shape[1] < 1:
        raise ValueError(f"{op}: student_logits has C = 0 classes (shape {tuple(student_logits.shape)})")
    shape = tuple(student_logits.shape)
    pix = (shape[0], *shape[2:])
    _checks.check_shape("mean_prob", mean_prob, shape, op,
                        f"the teacher's mean prediction must match student_logits {shape}")
    _checks.check_shape("target", target, pix, op, f"student_logits is {shape}: target must be (N, *spatial)")
    _checks.check_shape("pixel_uncertainty", pixel_uncertainty, pix, op,
                        f"student_logits is {shape}: pixel_uncertainty must be (N, *spatial)")
    if image_uncertainty is not None:
        _checks.check_floating("image_uncertainty", image_uncertainty, op)
        _checks.check_shape("image_uncertainty", image_uncertainty, (shape[0],), op, "one value per image")
    _checks.check_same_device(op, student_logits=student_logits, target=target, mean_prob=mean_prob,
                              pixel_uncertainty=pixel_uncertainty, image_uncertainty=image_uncertainty)
    _checks.check_choice("reduction", reduction, REDUCTIONS, op)
    if not isinstance(ignore_index, int):
        raise TypeError(f"{op}: ignore_index must be an int; got {type(ignore_index).__name__}")
    for name, v in (("pixel_threshold", pixel_threshold), ("image_threshold", image_threshold),
                    ("image_keep_ratio", image_keep_ratio), ("consistency_weight", consistency_weight)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
            raise TypeError(f"{op}: {name} must be a Python number or None; got {type(v).__name__}")
    if consistency_weight is None:
        raise TypeError(f"{op}: consistency_weight must be a Python number; got None")
    if image_threshold is not None and image_keep_ratio is not None:
        raise ValueError(f"{op}: give image_threshold ({image_threshold}) or image_keep_ratio "
                         f"({image_keep_ratio}), not both")
    if image_keep_ratio is not None and not (0.0 < image_keep_ratio <= 1.0):
        raise ValueError(f"{op}: image_keep_ratio must lie in (0, 1]; got {image_keep_ratio}")


def image_gate(image_uncertainty: Tensor, *, image_threshold: Optional[float] = None,
               image_keep_ratio: Optional[float] = None) -> Tensor:
    """(N,) bool image gate a_i from image uncertainties U (N,): ``U < image_threshold``, or the
    k = round(image_keep_ratio · N) (half up, at least 1) images with the lowest U (ties: lower
    index first; NaN ranks last), or all True when both are None."""
    n = image_uncertainty.shape[0]
    if image_threshold is not None:
        return image_uncertainty < image_threshold
    if image_keep_ratio is None:
        return torch.ones(n, dtype=torch.bool, device=image_uncertainty.device)
    k = min(n, max(1, int(math.floor(image_keep_ratio * n + 0.5))))
    order = torch.argsort(image_uncertainty, stable=True)  # NaN sorts last
    keep = torch.zeros(n, dtype=torch.bool, device=image_uncertainty.device)
    return keep.index_fill(0, order[:k], True)


def pint_loss(student_logits: Tensor, target: Tensor, mean_prob: Tensor, pixel_uncertainty: Tensor, *,
              pixel_threshold: Optional[float] = None, image_threshold: Optional[float] = None,
              image_keep_ratio: Optional[float] = None, image_uncertainty: Optional[Tensor] = None,
              consistency_weight: float = 1.0, ignore_index: int = -100,
              reduction: str = "mean") -> PintLossResult:
    """Gated CE / MSE-to-pseudo-label loss of PINT (PNT: pixel gate only, INT: image gate only).

    Per pixel ``g · CE(s, y) + consistency_weight · (1 − g) · Σ_c (softmax(s)_c − μ_c)²`` with the
    gate ``g = a_i · a_v``: ``a_v = [u_v < pixel_threshold]`` (1 when None) and ``a_i`` from
    :func:`image_gate` (1 when image_threshold and image_keep_ratio are both None).

    Args:
        student_logits: (N, C, *spatial) float16 / bfloat16 / float32 / float64, 1 to 3 spatial
            dims, CPU or CUDA; the only input that receives a gradient.
        target: (N, *spatial) uint8 / int32 / int64 labels in [0, C) or ``ignore_index``.
        mean_prob: (N, C, *spatial) floating: the teacher's mean prediction μ (e.g.
            ``mc_uncertainty(...).mean_prob``). Detached. Not checked to sum to 1 over C.
        pixel_uncertainty: (N, *spatial) floating u (detached).
        pixel_threshold: u threshold of the pixel gate (e.g. :func:`noisyseg_ext.methods.uamt_threshold`).
        image_threshold / image_keep_ratio: image gate from U (at most one; ratio in (0, 1]).
        image_uncertainty: (N,) U; when None and an image gate is asked for, the mean of
            pixel_uncertainty over the non-ignored pixels.
        consistency_weight: λ, weight of the MSE term.
        ignore_index: label of pixels that contribute nothing (loss, gradient, counts).
        reduction: "mean" (sum / number of non-ignored pixels, NaN if none), "sum", or "none"
            (the (N, *spatial) map, 0 at ignored pixels).

    Returns:
        PintLossResult(loss, gate, pixel_trusted_fraction, image_trusted_fraction, image_gate);
        the loss is in the student's dtype (computed in float32, float64 for float64). mean_prob
        and the uncertainties are used in the accumulation dtype. First-order gradient only
        (``create_graph`` double backward is not supported).

    Raises:
        TypeError / ValueError for wrong dtypes, shapes, devices, both image gates, a ratio
        outside (0, 1], or a label outside [0, C).
    """
    _validate(student_logits, target, mean_prob, pixel_uncertainty, image_uncertainty, pixel_threshold,
              image_threshold, image_keep_ratio, consistency_weight, ignore_index, reduction)
    acc = _kernels.acc_dtype(student_logits.dtype)
    if not _kernels.use_kernel("pint_loss", student_logits.device):
        loss, gate, a_i = reference.pint_loss(
            student_logits, target, mean_prob, pixel_uncertainty, pixel_threshold=pixel_threshold,
            image_threshold=image_threshold, image_keep_ratio=image_keep_ratio,
            image_uncertainty=image_uncertainty, consistency_weight=consistency_weight,
            ignore_index=ignore_index, reduction=reduction)
        valid = target.long() != ignore_index
        frac = (gate & valid).sum().to(acc) / valid.sum().to(acc)
        return PintLossResult(loss, gate, frac, a_i.to(acc).mean(), a_i)
    mu = mean_prob.detach().to(acc).contiguous()
    u = pixel_uncertainty.detach().to(acc).contiguous()
    n = student_logits.shape[0]
    if image_threshold is None and image_keep_ratio is None:
        a_i = torch.ones(n, dtype=torch.bool, device=student_logits.device)
        gate_vec = None
    else:
        if image_uncertainty is None:
            valid = target != ignore_index
            image_uncertainty = (torch.where(valid, u, 0.0).flatten(1).sum(1) / valid.flatten(1).sum(1))
        a_i = image_gate(image_uncertainty.detach().to(acc), image_threshold=image_threshold,
                         image_keep_ratio=image_keep_ratio)
        gate_vec = a_i.to(acc)
    want_grad = torch.is_grad_enabled() and student_logits.requires_grad
    args = (student_logits.contiguous(), target.contiguous(), mu, u, gate_vec,
            None if pixel_threshold is None else float(pixel_threshold), float(consistency_weight),
            ignore_index, reduction == "none", want_grad)
    fwd = _direct.pick_with_grad(_fwd_impl, _fwd_setup, _fwd_backward, torch.ops.noisyseg.pint_loss_fwd, *args[:5])
    out, gate, count, trusted, _ = fwd(*args)
    if reduction == "none":
        loss = out
    elif reduction == "sum":
        loss = out.to(student_logits.dtype)
    else:
        loss = (out / count).to(student_logits.dtype)
    return PintLossResult(loss, gate, (trusted / count).to(acc), a_i.to(acc).mean(), a_i)
