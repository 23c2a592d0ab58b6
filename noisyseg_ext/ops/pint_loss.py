"""PINT / PNT / INT gated loss: CE on trusted pixels, MSE to the teacher's mean elsewhere, fused.

Two custom ops (math in csrc/pint/pint_math.h):

* ``noisyseg::pint_loss_fwd``  loss (map, mean or sum), gate map, image gate, counts and, when a
  gradient will be wanted, d loss / d student_logits of every pixel;
* ``noisyseg::pint_loss_bwd``  that derivative times the upstream gradient (/ count for "mean"
  unless the forward divided already, :func:`_prescaled`), one kernel (not differentiable
  further: no double backward). On the CPU an upstream gradient of 1 needs no kernel at all.

The forward is one kernel call: the image gate (ranking of the N image uncertainties), one pass
over the pixels (pixel gate, blend, derivative), then the reductions from the per-part sums. Each
torch operation saved is host time that a GPU step is bound by (a fused PINT step: 9 device
operations, eager 40). ``image_gate`` below is the same ranking in torch, for users and tests.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Optional

import torch
from torch import Tensor

from noisyseg_ext.ops import _checks, _direct, _kernels, label_checks, reference
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


def _args(student: Tensor, target: Tensor, weight: float, ignore_index: int):
    a = _C.PintArgs()
    a.dtype, a.label_dtype = _kernels.DTYPE_CODES[student.dtype], _kernels.DTYPE_CODES[target.dtype]
    a.x, a.target = _kernels.ptr(student), _kernels.ptr(target)
    a.N, a.C = student.shape[0], student.shape[1]
    a.S = target[0].numel() if target.shape[0] > 0 else 0
    a.weight, a.ignore_index = float(weight), ignore_index
    a.parts = _kernels.num_parts(target.numel())
    return a


# ----------------------------------------------------------------------------------------------
# forward

def _fwd_impl(student_logits: Tensor, target: Tensor, mean_prob: Tensor, pixel_uncertainty: Tensor,
              image_uncertainty: Optional[Tensor], pixel_threshold: Optional[float],
              image_threshold: Optional[float], image_keep: Optional[int], consistency_weight: float,
              ignore_index: int, reduction: str, want_grad: bool) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """mean_prob, pixel_uncertainty and image_uncertainty (N,) in the accumulation dtype; the
    image gate from image_threshold or the image_keep lowest image_uncertainty (at most one given).
    Returns (loss: the (N, *spatial) map for reduction "none", else 0-dim, in the student's dtype;
    gate (N, *spatial) bool; image gate (N,) bool; stats (4,) in the accumulation dtype =
    [number of non-ignored pixels, trusted fraction of them, fraction of images kept, number of
    labels outside [0, C) (0 whenever this returns: any such label raises)];
    dloss: d loss_pixel / d student_logits (N, C, *spatial) in the accumulation dtype if
    want_grad, else an empty (0,) tensor; for "mean" on the CPU divided by the number of
    non-ignored pixels, counted first: :func:`_prescaled`). One kernel call: the image gate, one
    pass over the pixels, then the reductions. Writing dloss in the forward costs one store per
    score; the backward is then one multiply instead of a pass that recomputes the softmax, or,
    for an upstream gradient of 1 on the CPU, nothing."""
    x, target = student_logits.contiguous(), target.contiguous()
    acc = _kernels.acc_dtype(x.dtype)
    n, dev = x.shape[0], x.device
    gate = torch.empty(target.shape, dtype=torch.bool, device=dev)
    image_gate = torch.empty((n,), dtype=torch.bool, device=dev)
    loss = torch.empty(target.shape if reduction == "none" else (), dtype=x.dtype, device=dev)
    stats = torch.empty((4,), dtype=acc, device=dev)
    dloss = torch.empty(x.shape if want_grad else (0,), dtype=acc, device=dev)
    a = _args(x, target, consistency_weight, ignore_index)
    a.mu, a.u = _kernels.ptr(mean_prob.contiguous()), _kernels.ptr(pixel_uncertainty.contiguous())
    a.has_pixel_threshold = pixel_threshold is not None
    a.pixel_threshold = 0.0 if pixel_threshold is None else float(pixel_threshold)
    if image_threshold is not None or image_keep is not None:
        a.image_u = _kernels.ptr(image_uncertainty.contiguous())
        a.image_mode = 1 if image_threshold is not None else 2
        a.image_threshold = 0.0 if image_threshold is None else float(image_threshold)
        a.keep = 0 if image_keep is None else int(image_keep)
    partials = torch.empty((a.parts, 4), dtype=torch.float64, device=dev)  # every part writes its row
    a.reduction = REDUCTIONS.index(reduction)
    a.image_gate, a.gate, a.stats = _kernels.ptr(image_gate), _kernels.ptr(gate), _kernels.ptr(stats)
    if reduction == "none":
        a.loss_map = _kernels.ptr(loss)
    else:
        a.loss = _kernels.ptr(loss)
    a.partials, a.dloss = _kernels.ptr(partials), _kernels.ptr(dloss)
    a.prescale = want_grad and _prescaled(dev, reduction)
    _C.pint_loss_forward(a, *_kernels.device_args(x))
    label_checks.record("pint_loss", stats[3],
                        lambda: _checks.raise_bad_label("pint_loss", target, x.shape[1], ignore_index))
    return loss, gate, image_gate, stats, dloss


def _prescaled(device: torch.device, reduction: str) -> bool:
    """Whether the forward's dloss already holds the 1 / (number of non-ignored pixels) of
    "mean": on the CPU, where counting the labels first costs less than the backward pass it
    saves (with an upstream gradient of 1, :func:`_fwd_backward` returns dloss itself). Not on
    CUDA: there the count would take a kernel, and the backward's pass stays anyway (checking
    the upstream gradient for 1 would synchronise)."""
    return device.type == "cpu" and reduction == "mean"


_fwd = torch.library.custom_op("noisyseg::pint_loss_fwd", _fwd_impl, mutates_args=())


@_fwd.register_fake
def _fwd_fake(student_logits, target, mean_prob, pixel_uncertainty, image_uncertainty, pixel_threshold,
              image_threshold, image_keep, consistency_weight, ignore_index, reduction, want_grad):
    acc = _kernels.acc_dtype(student_logits.dtype)
    n = student_logits.shape[0]
    loss = student_logits.new_empty(target.shape if reduction == "none" else ())
    dloss = student_logits.new_empty(student_logits.shape if want_grad else (0,), dtype=acc)
    return (loss, student_logits.new_empty(target.shape, dtype=torch.bool),
            student_logits.new_empty((n,), dtype=torch.bool), student_logits.new_empty((4,), dtype=acc), dloss)


def _fwd_setup(ctx, inputs, output):
    student_logits, target, mean_prob, pixel_uncertainty, image_uncertainty = inputs[:5]
    ctx.save_for_backward(student_logits, target, mean_prob, pixel_uncertainty, image_uncertainty, output[3],
                          output[4])
    ctx.mark_non_differentiable(*output[1:])
    ctx.scalars = inputs[5:11]


def _fwd_backward(ctx, g_loss, g_gate, g_image_gate, g_stats, g_dloss):
    student_logits, target, mean_prob, pixel_uncertainty, image_uncertainty, stats, dloss = ctx.saved_tensors
    if not ctx.needs_input_grad[0] or g_loss is None:  # the loss unused: no gradient (None = 0)
        return (None,) * 12
    if dloss.numel() != student_logits.numel():
        # The forward ran without want_grad (pint_loss asks for it whenever a gradient can be
        # wanted; a direct call of the op may not): one more pass for the derivative.
        dloss = torch.ops.noisyseg.pint_loss_fwd(student_logits, target, mean_prob, pixel_uncertainty,
                                                 image_uncertainty, *ctx.scalars, True)[4]
    reduction = ctx.scalars[-1]
    args = (g_loss, dloss, stats, student_logits, reduction)
    if not torch.is_grad_enabled() and _direct.enabled_for(*args[:4]):
        if (reduction == "sum" or _prescaled(dloss.device, reduction)) and dloss.dtype == student_logits.dtype \
                and dloss.device.type == "cpu" and g_loss.dim() == 0 and float(g_loss) == 1.0:
            # dloss is the gradient itself (the usual loss.backward()): no pass. Autograd may hand
            # this saved tensor on as it is; should a hook change it in place, running this
            # backward again (retain_graph) fails the saved tensor's version check.
            return (dloss,) + (None,) * 11
        grad = _bwd_impl(*args)  # the usual first-order backward: no second op dispatch
    else:  # tracing, or create_graph=True: through the op, which has no autograd formula
        grad = torch.ops.noisyseg.pint_loss_bwd(*args)
    return (grad,) + (None,) * 11


_fwd.register_autograd(_fwd_backward, setup_context=_fwd_setup)


# ----------------------------------------------------------------------------------------------
# backward (first order only)

def _bwd_impl(g: Tensor, dloss: Tensor, stats: Tensor, student_logits: Tensor, reduction: str) -> Tensor:
    """g: upstream gradient of the loss ((N, *spatial) for reduction "none", else 0-dim);
    dloss: (N, C, *spatial) and stats (3,) from the forward. Returns d/d student_logits =
    dloss · g (broadcast over C; divided by the number of non-ignored pixels for "mean" unless
    the forward did, :func:`_prescaled`) in student_logits' dtype. student_logits is not read: it
    is an input so that autograd knows the result depends on it, and, this op having no autograd
    formula, a double backward fails loudly ("no autograd formula") instead of silently dropping
    the terms that flow through the softmax."""
    dtype = student_logits.dtype
    g = g.to(dtype).contiguous()
    grad = torch.empty(dloss.shape, dtype=dtype, device=dloss.device)
    a = _C.PintArgs()
    a.dtype = _kernels.DTYPE_CODES[dtype]
    a.N, a.C = dloss.shape[0], dloss.shape[1]
    a.S = dloss[0, 0].numel() if dloss.numel() else 0
    a.parts = _kernels.num_parts(a.N * a.S)
    a.dloss, a.g, a.stats, a.grad = _kernels.ptr(dloss), _kernels.ptr(g), _kernels.ptr(stats), _kernels.ptr(grad)
    a.g_map = g.dim() > 0
    # "mean": divided by the count here, unless the forward did (then a plain product, as "sum")
    a.reduction = REDUCTIONS.index("sum" if _prescaled(dloss.device, reduction) else reduction)
    _C.pint_loss_backward(a, *_kernels.device_args(dloss))
    return grad


_bwd = torch.library.custom_op("noisyseg::pint_loss_bwd", _bwd_impl, mutates_args=())


@_bwd.register_fake
def _bwd_fake(g, dloss, stats, student_logits, reduction):
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


def _keep_count(image_keep_ratio: float, n: int) -> int:
    """k = round(image_keep_ratio · n), half up, at least 1 (at most n): the images kept."""
    return min(n, max(1, int(math.floor(image_keep_ratio * n + 0.5))))


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
    k = _keep_count(image_keep_ratio, n)
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
        (``create_graph`` double backward is not supported). On the CPU the gradient of a
        "mean" or "sum" loss under an upstream gradient of 1 is a tensor the graph keeps (no
        copy): changed in place, a second backward through the same graph (``retain_graph``)
        raises autograd's in-place error.

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
    mu, u = _as_acc(mean_prob, acc), _as_acc(pixel_uncertainty, acc)
    image_keep = None
    if image_threshold is not None or image_keep_ratio is not None:
        if image_uncertainty is None:
            valid = target != ignore_index
            image_uncertainty = (torch.where(valid, u, 0.0).flatten(1).sum(1) / valid.flatten(1).sum(1))
        image_uncertainty = _as_acc(image_uncertainty, acc)
        if image_keep_ratio is not None:
            image_keep = _keep_count(image_keep_ratio, student_logits.shape[0])
    else:
        image_uncertainty = None
    want_grad = torch.is_grad_enabled() and student_logits.requires_grad
    args = (student_logits.contiguous(), target.contiguous(), mu, u, image_uncertainty,
            None if pixel_threshold is None else float(pixel_threshold),
            None if image_threshold is None else float(image_threshold), image_keep, float(consistency_weight),
            ignore_index, reduction, want_grad)
    fwd = _direct.pick_with_grad(_fwd_impl, _fwd_setup, _fwd_backward, torch.ops.noisyseg.pint_loss_fwd, *args[:5])
    loss, gate, a_i, stats, _ = fwd(*args)
    return PintLossResult(loss, gate, stats[1], stats[2], a_i)


def _as_acc(t: Tensor, acc: torch.dtype) -> Tensor:
    """t detached, in the accumulation dtype, contiguous (no copy, no op when it already is)."""
    t = t.detach()
    if t.dtype != acc:
        t = t.to(acc)
    return t if t.is_contiguous() else t.contiguous()
