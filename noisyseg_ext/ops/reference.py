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


# ==============================================================================================
# elastic deformation (noisyseg_ext.elastic_deform): elasticdeform.deform_grid, one grid per sample
#
# Written independently of the kernels' separable passes: the spline prefilter is the inverse of
# the mirror-extended B-spline matrix (dense solve), the displacement field a product of dense
# per-axis interpolation matrices, and sampling gathers every tap of the whole volume at once.

ELASTIC_MODES = ("constant", "nearest", "mirror")


def _elastic_mirror_index(idx: torch.Tensor, n: int) -> torch.Tensor:
    """Integer tap indices mirrored into [0, n) (whole-sample symmetric, period 2n - 2)."""
    if n <= 1:
        return torch.zeros_like(idx)
    s2 = 2 * n - 2
    low = s2 * torch.div(-idx, s2, rounding_mode="trunc") + idx
    low = torch.where(low <= 1 - n, low + s2, -low)
    high = idx - s2 * torch.div(idx, s2, rounding_mode="trunc")
    high = torch.where(high >= n, s2 - high, high)
    return torch.where(idx < 0, low, torch.where(idx >= n, high, idx))


def _elastic_map_coordinate(c: torch.Tensor, n: int, mode: str) -> torch.Tensor:
    """elasticdeform's map_coordinate (float64): -1 marks "outside" in constant mode."""
    low, high = c < 0, c > n - 1
    if mode == "constant":
        return torch.where(low | high, torch.full_like(c, -1.0), c)
    if mode == "nearest":
        return c.clamp(0, n - 1)
    if n <= 1:
        return torch.zeros_like(c)
    s2 = 2 * n - 2
    lo = s2 * torch.trunc(-c / s2) + c
    lo = torch.where(lo <= 1 - n, lo + s2, -lo)
    hi = c - s2 * torch.trunc(c / s2)
    hi = torch.where(hi >= n, s2 - hi, hi)
    return torch.where(low, lo, torch.where(high, hi, c))


def _elastic_spline(c: torch.Tensor, order: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """First tap (int64) and the order + 1 B-spline weights at coordinates c (float64)."""
    base = torch.floor(c if order & 1 else c + 0.5)
    start = base.long() - order // 2
    x = c - base
    if order == 0:
        return start, [torch.ones_like(c)]
    if order == 1:
        w = [1.0 - x]
    elif order == 3:
        z = 1.0 - x
        w = [z * z * z / 6.0, (x * x * (x - 2.0) * 3.0 + 4.0) / 6.0, (z * z * (z - 2.0) * 3.0 + 4.0) / 6.0]
    else:
        raise ValueError(f"elastic_deform: order must be 0, 1 or 3; got {order}")
    last = torch.ones_like(c)
    for wi in w:
        last = last - wi
    return start, w + [last]


def elastic_prefilter_matrix(n: int, device=None) -> torch.Tensor:
    """(n, n) float64 matrix of scipy.ndimage.spline_filter1d(order=3, mode="mirror") on a line of n:
    the inverse of the mirror-extended cubic B-spline interpolation matrix (identity for n = 1)."""
    if n <= 1:
        return torch.eye(max(n, 0), dtype=torch.float64, device=device)
    j = torch.arange(n, device=device)
    m = torch.zeros(n, n, dtype=torch.float64, device=device)
    for k, b in ((-1, 1.0 / 6.0), (0, 4.0 / 6.0), (1, 1.0 / 6.0)):
        m.index_put_((j, _elastic_mirror_index(j + k, n)), torch.full((n,), b, dtype=torch.float64, device=device),
                     accumulate=True)
    return torch.linalg.inv(m)


def _elastic_grid_matrix(length: int, points: int, device=None) -> torch.Tensor:
    """(length, points) float64: cubic B-spline interpolation of a prefiltered control line of
    `points` values at the `length` voxel positions cp = (points - 1) * j / (length - 1)."""
    j = torch.arange(length, dtype=torch.float64, device=device)
    cp = (points - 1) * j / (length - 1) if length > 1 else torch.zeros_like(j)
    start, w = _elastic_spline(cp, 3)
    b = torch.zeros(length, points, dtype=torch.float64, device=device)
    rows = torch.arange(length, device=device)
    for t, wt in enumerate(w):
        b.index_put_((rows, _elastic_mirror_index(start + t, points)), wt, accumulate=True)
    return b


def elastic_displacement_field(displacement: torch.Tensor, spatial: list[int] | tuple[int, ...]) -> torch.Tensor:
    """Dense displacement (N, ndim, *spatial) float64 from the control grid (N, ndim, *points)."""
    d = displacement.to(torch.float64)
    ndim = d.dim() - 2
    for k in range(ndim):
        points = d.shape[2 + k]
        e = _elastic_grid_matrix(spatial[k], points, d.device) @ elastic_prefilter_matrix(points, d.device)
        d = torch.movedim(torch.movedim(d, 2 + k, -1) @ e.T, -1, 2 + k)
    return d


def _elastic_taps(field: torch.Tensor, spatial: list[int], mode: str, order: int):
    """Sampling taps of the pull mapping for a dense field (N, ndim, *spatial) float64: the
    "outside" mask (N, *spatial) (constant mode -> cval) and an iterator over (flat input index,
    weight) pairs, each (N, *spatial), one per tap of the (order + 1)^ndim stencil (weight None for
    order 0)."""
    import itertools

    ndim = len(spatial)
    coords = []
    for k in range(ndim):
        shape = [1] * ndim
        shape[k] = spatial[k]
        pos = torch.arange(spatial[k], dtype=torch.float64, device=field.device).reshape(shape)
        coords.append(_elastic_map_coordinate(pos + field[:, k], spatial[k], mode))
    outside = torch.zeros_like(coords[0], dtype=torch.bool)
    for c in coords:
        outside |= ~(c > -1.0)
    coords = [torch.where(outside, torch.zeros_like(c), c) for c in coords]
    strides = [1] * ndim
    for k in range(ndim - 2, -1, -1):
        strides[k] = strides[k + 1] * spatial[k + 1]
    per_axis = [_elastic_spline(c, order) for c in coords]

    def taps():  # one tap at a time: 64 taps of a large volume would not fit in memory at once
        for combo in itertools.product(range(order + 1), repeat=ndim):
            index, weight = 0, None
            for k, t in enumerate(combo):
                start, w = per_axis[k]
                index = index + _elastic_mirror_index(start + t, spatial[k]) * strides[k]
                if order > 0:
                    weight = w[t] if weight is None else weight * w[t]
            yield index, weight

    return outside, taps()


def _elastic_prefilter_axes(t: torch.Tensor, ndim: int, transpose: bool = False) -> torch.Tensor:
    """Cubic B-spline prefilter (or its adjoint) of (N, C, *spatial) float64 along every spatial axis."""
    for k in range(ndim):
        m = elastic_prefilter_matrix(t.shape[2 + k], t.device)
        t = torch.movedim(torch.movedim(t, 2 + k, -1) @ (m if transpose else m.T), -1, 2 + k)
    return t


def elastic_deform(x: torch.Tensor, displacement: torch.Tensor, *, order: int = 0, mode: str = "constant",
                   cval: float = 0.0) -> torch.Tensor:
    """Reference of :func:`noisyseg_ext.elastic_deform` for one tensor.

    x (N, *spatial) or (N, C, *spatial), float (any order) or integer / bool (order 0);
    displacement (N, ndim, *points) in pixels, ndim = 2 or 3. Computes in float64, returns x's dtype.
    For integer outputs, cval is rounded as elasticdeform does (half away from zero, clamped).
    Differentiable with respect to x (gather), not to the displacement's integer tap choice.
    """
    ndim = displacement.dim() - 2
    spatial = list(x.shape[-ndim:])
    n = x.shape[0]
    channels = x.shape[1] if x.dim() == ndim + 2 else 1
    xs = x.reshape(n, channels, *spatial)
    field = elastic_displacement_field(displacement, spatial)  # (N, ndim, *spatial)
    outside, taps = _elastic_taps(field, spatial, mode, order)
    floating = x.dtype.is_floating_point
    src = xs.to(torch.float64) if floating else xs
    if order == 3 and floating:
        src = _elastic_prefilter_axes(src, ndim)
    flat = src.reshape(n, channels, -1)

    def gather(index: torch.Tensor) -> torch.Tensor:
        return torch.gather(flat, 2, index.reshape(n, 1, -1).expand(n, channels, -1)).reshape(xs.shape)

    if order == 0:
        out = gather(next(taps)[0])
    else:
        out = torch.zeros(xs.shape, dtype=torch.float64, device=x.device)
        for index, weight in taps:
            out = out + weight.unsqueeze(1) * gather(index)
    if floating:
        fill = torch.tensor(float(cval), dtype=torch.float64, device=x.device)
    else:
        fill = torch.tensor(elastic_label_cval(cval, x.dtype), dtype=x.dtype, device=x.device)
    out = torch.where(outside.unsqueeze(1), fill, out)
    return out.to(x.dtype).reshape(x.shape)


def elastic_sample_backward(grad_out: torch.Tensor, field: torch.Tensor, order: int, mode: str) -> torch.Tensor:
    """Gradient of the sampling with respect to x (the adjoint of x -> out, which is linear in x):
    scatter-adds grad_out (N, [C,] *spatial) into the taps, then (order 3) applies the transposed
    prefilter. ``field`` is noisyseg::elastic_field's partially expanded grid (N, ndim, P0,
    *spatial[1:]); its last axis is expanded here. Returns float64 of grad_out's shape."""
    ndim = field.dim() - 2
    spatial = list(grad_out.shape[-ndim:])
    n = grad_out.shape[0]
    channels = grad_out.shape[1] if grad_out.dim() == ndim + 2 else 1
    b0 = _elastic_grid_matrix(spatial[0], field.shape[2], field.device)
    dense = torch.movedim(torch.movedim(field, 2, -1) @ b0.T, -1, 2)  # (N, ndim, *spatial)
    outside, taps = _elastic_taps(dense, spatial, mode, order)
    g = grad_out.reshape(n, channels, -1).to(torch.float64)
    g = torch.where(outside.reshape(n, 1, -1), torch.zeros_like(g), g)
    gx = torch.zeros_like(g)
    for index, weight in taps:
        contrib = g if weight is None else weight.reshape(n, 1, -1) * g
        gx.scatter_add_(2, index.reshape(n, 1, -1).expand(n, channels, -1), contrib)
    gx = gx.reshape(n, channels, *spatial)
    if order == 3:
        gx = _elastic_prefilter_axes(gx, ndim, transpose=True)
    return gx.reshape(grad_out.shape)


def elastic_label_cval(cval: float, dtype: torch.dtype) -> int:
    """cval as elasticdeform stores it into an integer / bool array: bool -> cval != 0; unsigned ->
    round half up, negatives to 0; signed -> round half away from zero; clamped to the range."""
    if dtype == torch.bool:
        return int(cval != 0)
    info = torch.iinfo(dtype)
    v = float(cval)
    if info.min == 0:
        v = v + 0.5 if v > 0 else 0.0
    else:
        v = v + 0.5 if v > 0 else v - 0.5
    v = min(max(v, float(info.min)), float(info.max))
    return max(min(int(v), info.max), info.min)


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


# ==============================================================================================
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
