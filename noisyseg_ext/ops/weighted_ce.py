"""Pixel-weighted cross-entropy with fused backward and double backward.

Three custom ops, each the derivative of the one before (math in csrc/weighted_ce/weighted_ce_math.h):

* ``noisyseg::weighted_ce_fwd``      per-pixel ``w * CE`` (map or fused sum) and counts;
* ``noisyseg::weighted_ce_bwd``      d/dlogits and d/dweight, itself differentiable;
* ``noisyseg::weighted_ce_bwd_bwd``  the derivative of the backward (meta-learning's second order).

Reductions other than ``sum`` divide the fused sum by fused counts in plain torch, so autograd
handles their derivatives to every order.
"""

from __future__ import annotations

import functools
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from noisyseg_ext.ops import _checks, _direct, _kernels, label_checks, reference
from noisyseg_ext.ops._kernels import C as _C

REDUCTIONS = ("none", "mean", "sum", "weighted_mean")


def _args(logits: Tensor, target: Tensor, weight: Optional[Tensor], ignore_index: int):
    """Kernel arguments (pointers into the given tensors, which must outlive the launch)."""
    a = _C.WceArgs()
    a.dtype = _kernels.DTYPE_CODES[logits.dtype]
    a.label_dtype = _kernels.DTYPE_CODES[target.dtype]
    a.x, a.target, a.weight = _kernels.ptr(logits), _kernels.ptr(target), _kernels.ptr(weight)
    a.N, a.C = logits.shape[0], logits.shape[1]
    a.S = target[0].numel() if target.shape[0] > 0 else 0
    a.ignore_index = ignore_index
    a.parts = _kernels.num_parts(target.numel())
    return a


def _contig(t: Optional[Tensor]) -> Optional[Tensor]:
    return None if t is None else t.contiguous()


# ----------------------------------------------------------------------------------------------
# forward

def _fwd_impl(logits: Tensor, target: Tensor, weight: Optional[Tensor], ignore_index: int,
              want_map: bool) -> tuple[Tensor, Tensor, Tensor]:
    """Returns (loss map (N, *spatial) if want_map else the sum (0-dim, accumulation dtype),
    number of non-ignored pixels (0-dim float64), sum of weight over non-ignored pixels (0-dim,
    accumulation dtype))."""
    logits, target, weight = logits.contiguous(), target.contiguous(), _contig(weight)
    acc = _kernels.acc_dtype(logits.dtype)
    loss_map = torch.empty(target.shape, dtype=logits.dtype, device=logits.device) if want_map else None
    stats = _run_forward(logits, target, weight, ignore_index, loss_map=loss_map)
    out = loss_map if want_map else stats[0].to(acc, copy=True)
    return out, stats[1].clone(), stats[2].to(acc, copy=True)


def _run_forward(logits: Tensor, target: Tensor, weight: Optional[Tensor], ignore_index: int, *,
                 loss_map: Optional[Tensor] = None, grad_x: Optional[Tensor] = None, grad_mean: bool = False) -> Tensor:
    """The forward kernel on contiguous inputs, writing loss_map (N, *spatial) and, on the CPU,
    grad_x (like logits: d loss / d logits of the sum, or of the mean when grad_mean) where given.
    Returns its sums (4,) float64: [sum w*CE, valid pixels, sum w over valid, labels out of
    range]; a label out of range raises (label_checks)."""
    a = _args(logits, target, weight, ignore_index)
    partials = torch.zeros((a.parts, 4), dtype=torch.float64, device=logits.device)
    a.loss_map, a.partials = _kernels.ptr(loss_map), _kernels.ptr(partials)
    a.grad_x, a.grad_mean = _kernels.ptr(grad_x), grad_mean
    _C.weighted_ce_forward(a, *_kernels.device_args(logits))
    stats = partials.sum(0)
    label_checks.record("weighted_ce", stats[3],
                        lambda: _checks.raise_bad_label("weighted_ce", target, logits.shape[1], ignore_index))
    return stats


_fwd = torch.library.custom_op("noisyseg::weighted_ce_fwd", _fwd_impl, mutates_args=())


@_fwd.register_fake
def _fwd_fake(logits, target, weight, ignore_index, want_map):
    acc = _kernels.acc_dtype(logits.dtype)
    out = (logits.new_empty(target.shape) if want_map else logits.new_empty((), dtype=acc))
    return out, logits.new_empty((), dtype=torch.float64), logits.new_empty((), dtype=acc)


def _fwd_setup(ctx, inputs, output):
    logits, target, weight, ignore_index, want_map = inputs
    ctx.save_for_backward(logits, target, weight)
    ctx.ignore_index = ignore_index
    ctx.out_shape = output[0].shape


def _fwd_backward(ctx, g_out, g_count, g_wsum):
    logits, target, weight = ctx.saved_tensors
    acc = _kernels.acc_dtype(logits.dtype)
    need_w = weight is not None and ctx.needs_input_grad[2]
    if not (ctx.needs_input_grad[0] or need_w):
        return None, None, None, None, None
    zeros = functools.partial(torch.zeros, dtype=acc, device=logits.device)
    g = (g_out.to(acc) if g_out is not None else zeros(ctx.out_shape)).contiguous()
    gws = g_wsum.to(acc) if g_wsum is not None else zeros(())
    args = (g, gws, logits, target, weight, ctx.ignore_index, need_w)
    if not torch.is_grad_enabled() and _direct.enabled_for(g, logits, target, weight):
        gx, gw = _bwd_impl(*args)  # first order: no custom-op dispatch (see _direct)
    else:  # create_graph=True (double backward through the op's formula), or tracing
        gx, gw = torch.ops.noisyseg.weighted_ce_bwd(*args)
    return gx, None, (gw if need_w else None), None, None


_fwd.register_autograd(_fwd_backward, setup_context=_fwd_setup)


# ----------------------------------------------------------------------------------------------
# backward

def _bwd_impl(g: Tensor, gws: Tensor, logits: Tensor, target: Tensor, weight: Optional[Tensor],
              ignore_index: int, need_weight_grad: bool) -> tuple[Tensor, Tensor]:
    """g: (N, *spatial) or 0-dim upstream gradient per pixel (accumulation dtype); gws: 0-dim
    gradient of the weight sum. Returns (grad_logits like logits, grad_weight like weight, or an
    empty tensor when not asked for)."""
    logits, target, weight, g = logits.contiguous(), target.contiguous(), _contig(weight), g.contiguous()
    grad_x = torch.empty_like(logits)
    grad_w = (torch.empty_like(weight) if (weight is not None and need_weight_grad)
              else logits.new_empty(0))
    a = _args(logits, target, weight, ignore_index)
    a.g, a.g_stride, a.gws = _kernels.ptr(g), (1 if g.dim() > 0 else 0), _kernels.ptr(gws.contiguous())
    a.grad_x, a.grad_w = _kernels.ptr(grad_x), _kernels.ptr(grad_w)
    _C.weighted_ce_backward(a, *_kernels.device_args(logits))
    return grad_x, grad_w


_bwd = torch.library.custom_op("noisyseg::weighted_ce_bwd", _bwd_impl, mutates_args=())


@_bwd.register_fake
def _bwd_fake(g, gws, logits, target, weight, ignore_index, need_weight_grad):
    grad_w = torch.empty_like(weight) if (weight is not None and need_weight_grad) else logits.new_empty(0)
    return torch.empty_like(logits), grad_w


def _bwd_setup(ctx, inputs, output):
    g, gws, logits, target, weight, ignore_index, need_weight_grad = inputs
    ctx.save_for_backward(g, logits, target, weight)
    ctx.ignore_index = ignore_index
    ctx.need_weight_grad = need_weight_grad


def _bwd_backward(ctx, ggx, ggw):
    g, logits, target, weight = ctx.saved_tensors
    acc = _kernels.acc_dtype(logits.dtype)
    if not ctx.need_weight_grad or weight is None or (ggw is not None and ggw.numel() == 0):
        ggw = None
    if ggx is None and ggw is None:
        return (None,) * 7
    d_x, d_g_map, d_w = torch.ops.noisyseg.weighted_ce_bwd_bwd(
        _contig(ggx), _contig(ggw), g, logits, target, weight, ctx.ignore_index)
    d_g = d_g_map.sum() if g.dim() == 0 else d_g_map
    d_gws = None
    if ggw is not None:
        valid = target.long() != ctx.ignore_index
        d_gws = torch.where(valid, ggw.to(acc), torch.zeros((), dtype=acc, device=ggw.device)).sum()
    return d_g, d_gws, d_x, None, (d_w if weight is not None else None), None, None


_bwd.register_autograd(_bwd_backward, setup_context=_bwd_setup)


# ----------------------------------------------------------------------------------------------
# double backward (not differentiable further)

@torch.library.custom_op("noisyseg::weighted_ce_bwd_bwd", mutates_args=())
def _bwd_bwd(ggx: Optional[Tensor], ggw: Optional[Tensor], g: Tensor, logits: Tensor, target: Tensor,
             weight: Optional[Tensor], ignore_index: int) -> tuple[Tensor, Tensor, Tensor]:
    """Returns (d logits like logits, d g per pixel (N, *spatial) accumulation dtype,
    d weight like weight or empty)."""
    logits, target, weight, g = logits.contiguous(), target.contiguous(), _contig(weight), g.contiguous()
    d_x = torch.empty_like(logits)
    d_g = torch.empty(target.shape, dtype=_kernels.acc_dtype(logits.dtype), device=logits.device)
    d_w = torch.empty_like(weight) if weight is not None else logits.new_empty(0)
    a = _args(logits, target, weight, ignore_index)
    a.g, a.g_stride = _kernels.ptr(g), (1 if g.dim() > 0 else 0)
    a.ggx, a.ggw = _kernels.ptr(_contig(ggx)), _kernels.ptr(_contig(ggw))
    a.grad_x, a.grad_g, a.grad_w = _kernels.ptr(d_x), _kernels.ptr(d_g), _kernels.ptr(d_w)
    _C.weighted_ce_double_backward(a, *_kernels.device_args(logits))
    return d_x, d_g, d_w


@_bwd_bwd.register_fake
def _bwd_bwd_fake(ggx, ggw, g, logits, target, weight, ignore_index):
    d_w = torch.empty_like(weight) if weight is not None else logits.new_empty(0)
    return torch.empty_like(logits), logits.new_empty(target.shape, dtype=_kernels.acc_dtype(logits.dtype)), d_w


# ----------------------------------------------------------------------------------------------
# forward with the gradient (CPU, plain eager mode: _direct)

def _fused_grad_applies(logits: Tensor, target: Tensor, weight: Optional[Tensor], reduction: str) -> bool:
    """Whether weighted_ce takes :class:`_ForwardWithGrad`: a "mean" or "sum" loss on the CPU whose
    gradient with respect to the logits autograd will want, none with respect to the weight, and
    nothing tracing (_direct.enabled_for)."""
    return (reduction in ("mean", "sum") and logits.device.type == "cpu" and logits.requires_grad
            and torch.is_grad_enabled() and not (weight is not None and weight.requires_grad)
            and _direct.enabled_for(logits, target, weight))


class _ForwardWithGrad(torch.autograd.Function):
    """The CPU forward of a "mean" / "sum" loss that also writes d loss / d logits (for "mean"
    divided by the number of non-ignored pixels, counted first) from the same exp, as pint_loss
    does: ``loss.backward()`` then returns that tensor without a pass (any other upstream gradient:
    one multiply). The values are the custom ops' bit for bit. A double backward
    (``create_graph=True``) goes through ``noisyseg::weighted_ce_bwd``, which is differentiable.
    The gradient's memory is taken at the forward instead of the backward."""

    @staticmethod
    def forward(ctx, logits, target, weight, ignore_index, reduction):
        acc = _kernels.acc_dtype(logits.dtype)
        grad_x = torch.empty_like(logits)
        stats = _run_forward(logits, target, weight, ignore_index, grad_x=grad_x, grad_mean=reduction == "mean")
        total = stats[0].to(acc)
        ctx.save_for_backward(logits, target, weight, grad_x)
        ctx.ignore_index, ctx.count = ignore_index, (stats[1] if reduction == "mean" else None)
        # the same operations as weighted_ce's reductions after _fwd_impl (the same bits)
        return (total / stats[1] if reduction == "mean" else total).to(logits.dtype)

    @staticmethod
    def backward(ctx, g):
        logits, target, weight, grad_x = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph=True: through the differentiable custom op
            acc = _kernels.acc_dtype(logits.dtype)
            g_sum = (g.to(torch.float64) / ctx.count if ctx.count is not None else g).to(acc)
            gx, _ = torch.ops.noisyseg.weighted_ce_bwd(g_sum, torch.zeros((), dtype=acc), logits, target, weight,
                                                       ctx.ignore_index, False)
            return gx, None, None, None, None
        if float(g) == 1.0:
            # The usual loss.backward(): the forward's tensor is the gradient. Autograd may hand
            # this saved tensor on as it is; should a hook change it in place, running this
            # backward again (retain_graph) fails the saved tensor's version check.
            return grad_x, None, None, None, None
        return grad_x * g.to(grad_x.dtype), None, None, None, None


# ----------------------------------------------------------------------------------------------
# eager path (the baseline CPU variant's fallback, _kernels.EAGER_FALLBACKS)

def _eager(logits: Tensor, target: Tensor, weight: Optional[Tensor], ignore_index: int, reduction: str) -> Tensor:
    """weighted_ce in plain torch operations, as few as its semantics allow: what a user would
    write (F.cross_entropy, times the weight, the reduction), autograd doing every derivative.
    Same values and errors as the kernels (reference.weighted_ce checks the labels in five more
    passes; here torch's own bound check raises, turned into our ValueError)."""
    acc = _kernels.acc_dtype(logits.dtype)
    t = target.long()
    try:
        ce = F.cross_entropy(logits.to(acc), t, reduction="none", ignore_index=ignore_index)
    except IndexError:
        _checks.raise_bad_label("weighted_ce", target, logits.shape[1], ignore_index)
        raise
    valid = t != ignore_index
    # where, not a product with the weight alone: an inf / NaN weight at an ignored pixel gives 0
    loss = ce if weight is None else torch.where(valid, ce * weight.to(acc), ce.new_zeros(()))
    if reduction == "none":
        return loss.to(logits.dtype)
    total = loss.sum()
    if reduction == "sum":
        return total.to(logits.dtype)
    if reduction == "mean":
        return (total / valid.sum()).to(logits.dtype)
    wsum = valid.sum().to(acc) if weight is None else torch.where(valid, weight.to(acc), ce.new_zeros(())).sum()
    safe = torch.where(wsum != 0, wsum, torch.ones_like(wsum))
    return torch.where(wsum != 0, total / safe, torch.zeros_like(total)).to(logits.dtype)


# ----------------------------------------------------------------------------------------------
# public function

def _validate(logits, target, weight, ignore_index, reduction) -> None:
    op = "weighted_ce"
    _checks.check_floating("logits", logits, op)
    _checks.check_labels("target", target, op)
    if logits.dim() < 2 or logits.dim() > 5:
        raise ValueError(f"{op}: logits must be (N, C, *spatial) with 0 to 3 spatial dims; got shape {tuple(logits.shape)}")
    if logits.shape[1] < 1:
        raise ValueError(f"{op}: logits has C = 0 classes (shape {tuple(logits.shape)})")
    expected = (logits.shape[0], *logits.shape[2:])
    _checks.check_shape("target", target, expected, op, f"logits is {tuple(logits.shape)}: target must be (N, *spatial)")
    if weight is not None:
        _checks.check_floating("weight", weight, op)
        _checks.check_shape("weight", weight, expected, op, f"logits is {tuple(logits.shape)}: weight must be (N, *spatial)")
    _checks.check_same_device(op, logits=logits, target=target, weight=weight)
    _checks.check_choice("reduction", reduction, REDUCTIONS, op)
    if not isinstance(ignore_index, int):
        raise TypeError(f"{op}: ignore_index must be an int; got {type(ignore_index).__name__}")


def weighted_ce(logits: Tensor, target: Tensor, weight: Optional[Tensor] = None, *,
                ignore_index: int = -100, reduction: str = "mean") -> Tensor:
    """Pixel-weighted cross-entropy ``weight * CE(logits, target)``, fused, with double backward.

    Args:
        logits: (N, C, *spatial) float16 / bfloat16 / float32 / float64 scores, 0 to 3 spatial
            dims, any strides, CPU or CUDA. float16 / bfloat16 accumulate in float32.
        target: (N, *spatial) uint8 / int32 / int64 class indices in [0, C) or ``ignore_index``.
        weight: (N, *spatial) floating per-pixel weights (cast to logits' dtype), or None for 1.
        ignore_index: label whose pixels contribute nothing (loss and gradients 0).
        reduction: ``"none"`` -> (N, *spatial) map of weight * CE (0 at ignored pixels);
            ``"sum"``; ``"mean"`` -> sum / number of non-ignored pixels (the papers'
            1/(N h w); NaN when every pixel is ignored, as torch); ``"weighted_mean"`` ->
            sum / sum of weight over non-ignored pixels (0 when that is 0).

    Returns:
        Tensor of logits' dtype: the map or a 0-dim loss. Differentiable twice with respect to
        logits and weight (``create_graph=True`` through the backward works, as meta-learning needs).
        On the CPU a "mean" / "sum" loss whose logits need a gradient (and the weight none)
        computes that gradient in the forward's pass and keeps it (one logits-sized tensor) until
        the backward, which then has no pass to make.

    Raises:
        TypeError / ValueError for wrong dtypes, shapes, devices or a label outside [0, C).
    """
    _validate(logits, target, weight, ignore_index, reduction)
    if weight is not None and weight.dtype != logits.dtype:
        weight = weight.to(logits.dtype)
    # The eager path where the baseline CPU variant is slower than torch's vectorised kernels
    # (_kernels.EAGER_FALLBACKS; build_info() says when): more than two classes (0.6x eager), and
    # the gradient with respect to the weight (MW-Net, MCPM: 0.95-1.16x, one thread).
    weight_grad = weight is not None and weight.requires_grad and torch.is_grad_enabled()
    if _kernels.eager_fallback("weighted_ce", logits.device, logits.shape[1] > 2 or weight_grad):
        return _eager(logits, target, weight, ignore_index, reduction)
    if not _kernels.use_kernel("weighted_ce", logits.device):
        return reference.weighted_ce(logits, target, weight, ignore_index=ignore_index, reduction=reduction)
    args = (logits.contiguous(), target.contiguous(), _contig(weight), ignore_index, reduction == "none")
    if _fused_grad_applies(logits, target, weight, reduction):
        return _ForwardWithGrad.apply(*args[:4], reduction)
    fwd = _direct.pick_with_grad(_fwd_impl, _fwd_setup, _fwd_backward, torch.ops.noisyseg.weighted_ce_fwd, *args[:3])
    out, count, wsum = fwd(*args)
    if reduction == "none":
        return out
    if reduction == "sum":
        return out.to(logits.dtype)
    if reduction == "mean":
        return (out / count).to(logits.dtype)
    safe = torch.where(wsum != 0, wsum, torch.ones_like(wsum))
    return torch.where(wsum != 0, out / safe, torch.zeros_like(out)).to(logits.dtype)
