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


# ==============================================================================================
# PINT / UA-MT mean teacher: uncertainty and gated loss (csrc/pint)
# ==============================================================================================

def _check_label_range(op: str, t: torch.Tensor, valid: torch.Tensor, C: int, ignore_index: int) -> None:
    bad = valid & ((t < 0) | (t >= C))
    if bool(bad.any()):
        raise ValueError(f"{op}: target holds {int(t[bad][0])}, outside [0, {C}) and not ignore_index={ignore_index}")


def mc_uncertainty_from_sums(sums: torch.Tensor, count: int, *, normalize: bool = False,
                             target: torch.Tensor | None = None, ignore_index: int = -100):
    """(mean_prob, pixel, image) from the sum over ``count`` passes of softmax outputs,
    sums (N, C, *spatial) in the accumulation dtype. See :func:`mc_uncertainty`."""
    import math

    mean = sums / count
    C = sums.shape[1]
    u = -torch.special.xlogy(mean, mean).sum(1)
    if normalize and C > 1:
        u = u / math.log(C)
    if target is None:
        valid = torch.ones(u.shape, dtype=torch.bool, device=u.device)
    else:
        t = target.long()
        valid = t != ignore_index
        _check_label_range("mc_uncertainty", t, valid, C, ignore_index)
    num = torch.where(valid, u, torch.zeros_like(u)).flatten(1).sum(1)
    image = num / valid.flatten(1).sum(1).to(u.dtype)
    return mean, u, image


def mc_uncertainty(teacher_logits: torch.Tensor, *, normalize: bool = False, target: torch.Tensor | None = None,
                   ignore_index: int = -100):
    """Reference of :func:`noisyseg_ext.mc_uncertainty`: softmax of each pass over dim 2, mean
    over dim 0, entropy; returns (mean_prob, pixel, image) in the accumulation dtype."""
    x = teacher_logits.detach()
    p = torch.softmax(x.to(acc_dtype(x.dtype)), dim=2)
    return mc_uncertainty_from_sums(p.sum(0), x.shape[0], normalize=normalize, target=target,
                                    ignore_index=ignore_index)


def pint_image_gate(image_uncertainty: torch.Tensor, image_threshold: float | None = None,
                    image_keep_ratio: float | None = None) -> torch.Tensor:
    """(N,) bool image gate: U_i < image_threshold, or the round(ratio·N) (at least 1) images with
    the lowest U (ties: lower index first; NaN last), or all True when both are None."""
    import math

    n = image_uncertainty.shape[0]
    if image_threshold is not None:
        return image_uncertainty < image_threshold
    if image_keep_ratio is None:
        return torch.ones(n, dtype=torch.bool, device=image_uncertainty.device)
    k = min(n, max(1, int(math.floor(image_keep_ratio * n + 0.5))))
    keep = torch.zeros(n, dtype=torch.bool, device=image_uncertainty.device)
    ranked = sorted(range(n), key=lambda i: (math.isnan(float(image_uncertainty[i])), float(image_uncertainty[i]), i))
    keep[ranked[:k]] = True
    return keep


def pint_loss(student_logits: torch.Tensor, target: torch.Tensor, mean_prob: torch.Tensor,
              pixel_uncertainty: torch.Tensor, *, pixel_threshold: float | None = None,
              image_threshold: float | None = None, image_keep_ratio: float | None = None,
              image_uncertainty: torch.Tensor | None = None, consistency_weight: float = 1.0,
              ignore_index: int = -100, reduction: str = "mean"):
    """Reference of :func:`noisyseg_ext.pint_loss`; returns (loss, gate (N, *spatial) bool,
    image gate (N,) bool). loss per pixel: g ? CE(s, y) : w * sum_c (softmax(s)_c - mu_c)^2,
    0 at ignored pixels; computed in the accumulation dtype, returned in the student's dtype."""
    acc = acc_dtype(student_logits.dtype)
    s = student_logits.to(acc)
    mu = mean_prob.detach().to(acc)
    u = pixel_uncertainty.detach().to(acc)
    t = target.long()
    valid = t != ignore_index
    C = s.shape[1]
    _check_label_range("pint_loss", t, valid, C, ignore_index)
    if image_threshold is None and image_keep_ratio is None:
        a_i = torch.ones(s.shape[0], dtype=torch.bool, device=s.device)
    else:
        if image_uncertainty is None:
            num = torch.where(valid, u, torch.zeros_like(u)).flatten(1).sum(1)
            image_uncertainty = num / valid.flatten(1).sum(1).to(acc)
        a_i = pint_image_gate(image_uncertainty.detach().to(acc), image_threshold, image_keep_ratio)
    a_v = torch.ones_like(valid) if pixel_threshold is None else u < pixel_threshold
    g = a_v & a_i.view(-1, *([1] * (u.dim() - 1)))
    ce = F.cross_entropy(s, t, reduction="none", ignore_index=ignore_index)
    mse = ((torch.softmax(s, 1) - mu) ** 2).sum(1)
    loss = torch.where(valid, torch.where(g, ce, consistency_weight * mse), torch.zeros_like(ce))
    if reduction == "none":
        out = loss
    elif reduction == "sum":
        out = loss.sum()
    elif reduction == "mean":
        out = loss.sum() / valid.sum()
    else:
        raise ValueError(f"pint_loss: unknown reduction {reduction!r}")
    return out.to(student_logits.dtype), g, a_i
