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
# morphology (noisyseg_ext.dilate / noisyseg_ext.erode)
# ==============================================================================================

def _shifted_stack_reduce(x: torch.Tensor, offsets: list[tuple[int, ...]], is_max: bool) -> torch.Tensor:
    """out[x] = max (or min) over o of x[p + o], positions outside the image counting as 0."""
    nd = x.dim() - 1
    reach = [max(abs(o[a]) for o in offsets) for a in range(nd)]
    padded = x.new_zeros((x.shape[0], *[s + 2 * r for s, r in zip(x.shape[1:], reach)]))
    padded[(slice(None), *[slice(r, r + s) for s, r in zip(x.shape[1:], reach)])] = x
    out = None
    for o in offsets:
        view = padded[(slice(None), *[slice(r + d, r + d + s) for s, r, d in zip(x.shape[1:], reach, o)])]
        out = view.clone() if out is None else (torch.maximum(out, view) if is_max else torch.minimum(out, view))
    return out


def morphology(masks: torch.Tensor, structure: torch.Tensor, iterations: int, *, erode: bool) -> torch.Tensor:
    """Reference of :func:`noisyseg_ext.dilate` / :func:`noisyseg_ext.erode` with the full bool
    ``structure`` (no decomposition), applied ``iterations`` times, scipy's border_value=0.

    Bool masks: binary dilation (max over the reflected structure) / erosion (min over it).
    Label maps (>= 0): dilation = max-filtered labels where the pixel was background, the original
    label elsewhere; erosion = the label where min == max over the structure, else 0.
    """
    from noisyseg_ext.ops.morphology import structure_offsets

    if masks.dtype != torch.bool and masks.numel() > 0 and bool((masks < 0).any()):
        raise ValueError("label maps must be >= 0 (0 = background)")
    x = masks.to(torch.int64)
    offsets = structure_offsets(structure.cpu(), reflect=not erode)

    def run(is_max: bool) -> torch.Tensor:
        cur = x
        for _ in range(iterations):
            cur = _shifted_stack_reduce(cur, offsets, is_max)
        return cur

    if not erode:
        grown = run(True)
        out = grown if masks.dtype == torch.bool else torch.where(x != 0, x, grown)
    else:
        mn = run(False)
        out = mn if masks.dtype == torch.bool else torch.where(mn == run(True), mn, torch.zeros_like(mn))
    return out.to(masks.dtype).contiguous()
