"""The bilevel step of MW-Net, L2RW and MCPM, written once: the meta-gradient through a virtual SGD step.

Notation (METHODS.md sections 2-4): the segmentation network's parameters w, its per-pixel loss map
``l_v(w)`` on a noisy batch, per-pixel coefficients ``c_v(phi)`` of the virtual loss
``L_virt(w, phi) = sum_v c_v(phi) l_v(w)`` (MCPM: ``c = R / (N V)``; MW-Net: an image's weight over
``N V``; L2RW: ``c = eps``), the virtual step ``w' = w - alpha grad_w L_virt`` (plain SGD, alpha = the
current learning rate) and the plain CE ``L_meta(w')`` of a clean meta batch. :func:`meta_gradient`
returns ``dL_meta/dphi`` by one of two exact paths:

``reverse`` (the textbook form): ``g = autograd.grad(L_virt, w, create_graph=True)``, a
``functional_call`` forward at ``w' = w - alpha g`` on the meta batch, and one backward of ``L_meta`` to
``phi`` through ``g``'s graph: a double backward through the network and through ``weighted_ce``'s
fused double backward. It holds the gradient's graph in memory.

``forward``: since ``dw'/dc_v = -alpha grad_w l_v(w)``, the chain rule gives (MCPM paper, eq. 9
with the mean normalisation folded into c)

    dL_meta/dc_v = -alpha * u . grad_w l_v(w),      u = grad_w' L_meta(w'),

and the dot products of u with every pixel's loss gradient are one forward-mode derivative of the
loss map at w in the direction u. So: a first-order backward for ``g`` (no graph kept), a forward and
a backward at w' for u, one forward-mode pass (jvp) of the logits at w along u, the CE tangent
``sum_c (softmax(s_v)_c - [c = y_v]) ds_v,c`` per pixel (the same ``p - y`` that ``weighted_ce``'s
backward forms; see :func:`ce_tangent`), and one backward from c to phi with that map as the
cotangent. No second-order graph is built.

Both paths take the virtual gradient ``g`` from the real forward's graph (:func:`real_forward`, the
same ``w``, batch statistics and dropout masks as the real step), which is kept for the real step
(``retain_graph``): the caller then returns ``sum_v c'_v l_v`` of the SAME loss map as the step's
loss, so the network runs one real forward per step, as a plain step does.

Network state: the forwards at w' (both paths) and the jvp recomputation at w (forward path) run
under :func:`~noisyseg_ext.nets.batchnorm.batch_stats_only`: BatchNorm normalises with the batch's
statistics and its running statistics are not touched; parameters are never written. The real
forward (done by the caller) is the only one that updates BatchNorm's running statistics, once per
step as in a plain step. Dropout: the jvp recomputation replays the real forward's random state, so
it draws the same masks (its tangent is the derivative of the very loss map the real step uses);
the forward at w' draws fresh masks, like any other training forward on the meta batch, and both
paths draw the same ones.

Precision (``python benchmarks/test_bench_meta_step.py --precision``: MCPM's weight-net gradient on the
HC18 sample, UNet 16 x 4, against float64): float32 1.5e-5 relative error; bfloat16 autocast at most
6e-3 (cosine >= 0.99999), either path; float16 autocast at most 4e-3, with the forward path's tangent
pass in float32 (below: in float16 it overflowed). The reverse path's float16 double backward through
BatchNorm can overflow on channels of tiny variance (seen on inputs of amplitude 1e-3): under float16
prefer the forward path.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import torch
import torch.autograd.forward_ad as fwad
from torch import Tensor, nn
from torch.func import functional_call
from torch.profiler import record_function

from noisyseg_ext.errors import ConfigError
from noisyseg_ext.methods.meta.params import unwrap
from noisyseg_ext.methods.meta.rng import RngState
from noisyseg_ext.nets.batchnorm import batch_stats_only
from noisyseg_ext.ops import weighted_ce

MODES = ("forward", "reverse")


@dataclass(frozen=True)
class RealForward:
    """The step's real forward: ``image`` (N, C_in, *spatial), its ``logits`` (N, C, *spatial) with the
    autograd graph to the network's parameters, and the random state it started from."""

    image: Tensor
    logits: Tensor
    rng: RngState


def real_forward(model: nn.Module, image: Tensor) -> RealForward:
    """Runs ``model(image)`` (the trainer's ``ctx.model``: the network or its DDP wrapper) and records
    the random state it started from, for :func:`meta_gradient`'s forward path."""
    rng = RngState.capture(image.device)
    with record_function("meta:real_forward"):
        return RealForward(image, model(image), rng)


@dataclass(frozen=True)
class MetaGradient:
    """``grads``: dL_meta/dphi, one tensor per phi (phi's shape, float32 or phi's dtype);
    ``meta_loss``: L_meta(w'), 0-dim, detached."""

    grads: tuple[Tensor, ...]
    meta_loss: Tensor


def ce_tangent(logits: Tensor, target: Tensor, logits_dot: Tensor, ignore_index: int = -100) -> Tensor:
    """The directional derivative of each pixel's cross-entropy: ``sum_c (p_c - [c = y]) ds_c``.

    logits, logits_dot: (N, C, *spatial) floating (the scores and their tangent); target
    (N, *spatial) integer. Returns (N, *spatial) in float32 (float64 for float64 logits); 0 at
    ``ignore_index`` pixels. Plain torch: one softmax and two reductions, 1.3-1.6 ms of a 2.2 s MCPM
    step on the benchmark's shape (``benchmarks/test_bench_meta_step.py --phases``, CPU), so no fused
    kernel: fusing it with ``weighted_ce``'s backward could not pay.
    """
    acc = torch.float64 if logits.dtype == torch.float64 else torch.float32
    t = target.long()
    valid = t != ignore_index
    dot = logits_dot.to(acc)
    p = torch.softmax(logits.detach().to(acc), dim=1)
    picked = dot.gather(1, torch.where(valid, t, torch.zeros_like(t)).unsqueeze(1)).squeeze(1)
    out = (p * dot).sum(1) - picked
    return torch.where(valid, out, torch.zeros_like(out))


def plain_ce(logits: Tensor, target: Tensor) -> Tensor:
    """The meta loss: plain CE, mean over pixels (``weighted_ce`` without weights)."""
    return weighted_ce(logits, target)


def meta_gradient(net: nn.Module, first: RealForward, target: Tensor, loss_map: Tensor, coefficients: Tensor,
                  phi: Sequence[Tensor], alpha: float, meta_image: Tensor, meta_label: Tensor, *,
                  mode: str = "forward", param_names: Optional[Sequence[str]] = None,
                  extra_loss: Optional[Tensor] = None, at_zero: bool = False,
                  meta_loss_fn: Callable[[Tensor, Tensor], Tensor] = plain_ce,
                  ignore_index: int = -100) -> MetaGradient:
    """dL_meta/dphi through the virtual step ``w' = w - alpha grad_w (sum_v c_v l_v + extra_loss)``.

    Args:
        net: the segmentation network (bare module or its DDP wrapper; used through functional_call).
        first: the step's :func:`real_forward` of the noisy batch through ``net``.
        target: (N, *spatial) integer noisy labels of that batch.
        loss_map: (N, *spatial) per-pixel loss ``l_v`` of ``first.logits`` (``weighted_ce(...,
            reduction="none")``), with its graph; kept (retain_graph) for the caller's real step.
        coefficients: (N, *spatial) float ``c_v``, a differentiable function of ``phi`` (broadcast an
            image weight to its pixels before passing it).
        phi: the tensors to differentiate with respect to (a meta net's parameters, L2RW's eps).
        alpha: the virtual learning rate (the network's current learning rate).
        meta_image, meta_label: a clean meta batch, (M, C_in, *spatial) float and (M, *spatial) integer.
        mode: ``"forward"`` or ``"reverse"`` (module docstring); equal up to rounding.
        param_names: the parameters the virtual step moves (:func:`select_meta_parameters`); default
            every trainable one. The others stay at w.
        extra_loss: an optional 0-dim term of the virtual loss that does not depend on phi (the soft
            Dice of ``--loss ce+dice``), with its graph from ``first.logits``.
        at_zero: the coefficients are all 0 at this point (L2RW's eps): without ``extra_loss`` w' = w
            and the forward path skips the virtual backward.
        meta_loss_fn: ``fn(logits, label) -> 0-dim``; plain CE by default.

    Returns:
        :class:`MetaGradient`. Leaves the network's parameters, buffers (BatchNorm running
        statistics included) and ``.grad`` fields unchanged, and the random generators where the
        forward at w' left them.
    """
    if mode not in MODES:
        raise ConfigError(f"--meta-grad must be one of {', '.join(MODES)}; got {mode!r}")
    if coefficients.shape != loss_map.shape:
        raise ValueError(f"meta_gradient: coefficients {tuple(coefficients.shape)} must have the loss map's "
                         f"shape {tuple(loss_map.shape)} (broadcast image weights to their pixels)")
    if not phi:
        raise ValueError("meta_gradient: phi is empty")
    net = unwrap(net)
    named = dict(net.named_parameters())
    names = tuple(param_names) if param_names is not None else tuple(n for n, p in named.items() if p.requires_grad)
    unknown = [n for n in names if n not in named]
    if unknown:
        raise ValueError(f"meta_gradient: {type(net).__name__} has no parameters {unknown}")
    moved = [named[n] for n in names]
    fixed = {n: p.detach() for n, p in named.items() if n not in set(names)}
    phi = tuple(phi)

    def logits_with(params: dict[str, Tensor], image: Tensor) -> Tensor:
        with batch_stats_only(net):
            return functional_call(net, {**fixed, **params}, (image,))

    if mode == "reverse":
        virtual = (coefficients * loss_map).sum()
        if extra_loss is not None:
            virtual = virtual + extra_loss
        with record_function("meta:virtual_backward"):
            g = torch.autograd.grad(virtual, moved, create_graph=True, materialize_grads=True)
        shifted = {n: p.detach() - alpha * gi for n, p, gi in zip(names, moved, g)}
        with record_function("meta:meta_forward"):
            meta_loss = meta_loss_fn(logits_with(shifted, meta_image), meta_label)
        # retain_graph: the double backward runs through the real forward's graph, which the real step needs.
        with record_function("meta:double_backward"):
            grads = torch.autograd.grad(meta_loss, phi, retain_graph=True, materialize_grads=True)
        return MetaGradient(tuple(grads), meta_loss.detach())

    # forward path
    if at_zero and extra_loss is None:  # w' = w: no virtual backward
        shifted = {n: p.detach().requires_grad_() for n, p in zip(names, moved)}
    else:
        virtual = (coefficients.detach() * loss_map).sum()
        if extra_loss is not None:
            virtual = virtual + extra_loss
        with record_function("meta:virtual_backward"):
            g = torch.autograd.grad(virtual, moved, retain_graph=True, materialize_grads=True)
        shifted = {n: (p.detach() - alpha * gi).requires_grad_() for n, p, gi in zip(names, moved, g)}
    with record_function("meta:meta_forward"):
        meta_loss = meta_loss_fn(logits_with(shifted, meta_image), meta_label)
    with record_function("meta:meta_backward"):
        u = torch.autograd.grad(meta_loss, tuple(shifted.values()), materialize_grads=True)
    del shifted
    # Under float16 autocast the tangent pass runs in float32: torch's forward-mode formula of BatchNorm
    # forms products of batch sums with invstd**3 in the input's dtype, past float16's 65504 on real
    # images (measured: inf from the first BatchNorm, NaN meta-gradients, on the HC18 sample at 8 x 64 x 96;
    # python_tests/test_bilevel.py). bfloat16 has float32's range and keeps autocast.
    precision = (torch.autocast(first.logits.device.type, enabled=False) if first.logits.dtype == torch.float16
                 else contextlib.nullcontext())
    with first.rng.replay(), precision, record_function("meta:tangent"):
        logits, logits_dot = logits_and_tangent(lambda p: logits_with(p, first.image),
                                                {n: p.detach() for n, p in zip(names, moved)}, dict(zip(names, u)))
    with record_function("meta:ce_tangent"):
        dot = ce_tangent(logits, target, logits_dot, ignore_index)  # u . grad_w l_v(w), every pixel
    del logits, logits_dot
    cotangent = (-alpha * dot).to(coefficients.dtype)
    with record_function("meta:weight_backward"):
        grads = torch.autograd.grad(coefficients, phi, grad_outputs=cotangent, materialize_grads=True)
    return MetaGradient(tuple(grads), meta_loss.detach())


def logits_and_tangent(fn: Callable[[dict[str, Tensor]], Tensor], primals: dict[str, Tensor],
                       tangents: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
    """``(fn(primals), d/dt fn(primals + t * tangents) at t = 0)``: one forward-mode pass.

    Dual tensors of ``torch.autograd.forward_ad`` rather than ``torch.func.jvp``: the same forward-mode
    formulas without functorch's wrapping of every tensor, measured 0.7-0.9x its time on the UNet
    of benchmarks/test_bench_meta_step.py (CPU). Returns detached tensors.
    """
    with fwad.dual_level():
        out = fn({n: fwad.make_dual(p, tangents[n]) for n, p in primals.items()})
        primal, tangent = fwad.unpack_dual(out)
        if tangent is None:  # the output does not depend on the parameters moved
            tangent = torch.zeros_like(primal)
    return primal.detach(), tangent.detach()
