"""Binary and label-map dilation / erosion, batched, 2D and 3D (math in csrc/morphology/morphology_math.h).

Binary masks give exactly ``scipy.ndimage.binary_dilation`` / ``binary_erosion`` with the same
structure and iterations and scipy's default ``border_value=0``:

* dilation: outside the image is background, so nothing grows in from the border;
* erosion: outside the image is background too, so every pixel whose (iterated) structure pokes out
  of the image is eroded: a mask touching the border shrinks away from it.

Speed comes from decomposing the named structures (exact, see the header): ``"cross"`` of radius r
is r passes of the radius-1 cross, ``"box"`` is one 1D pass per axis (all iterations at once),
``"ball"`` and explicit structures are one stencil per iteration, run either directly or (when it
reads fewer elements, e.g. a ball) as 1D window passes along the last axis, one per distinct
window, plus one pass over the structure's rows. Each pass is a loop over image lines on the CPU
(OpenMP for large passes). On CUDA every cross, ball or explicit-structure iteration is one direct
stencil, i.e. one launch per iteration (the box keeps its ndim separable launches for all
iterations together).
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from typing import Union

import torch
from torch import Tensor

from noisyseg_ext.ops import _checks, _direct, _kernels, reference
from noisyseg_ext.ops._kernels import C as _C

STRUCTURES = ("cross", "box", "ball")
MASK_DTYPES = (torch.bool, torch.uint8, torch.int32, torch.int64)

Structure = Union[str, Tensor]


# ----------------------------------------------------------------------------------------------
# structures and pass plans (pure Python: traced as constants by torch.compile)

def named_offsets(structure: str, radius: int, ndim: int) -> list[tuple[int, ...]]:
    """Offsets of a named structure (symmetric, so the same for dilation and erosion), plain Python
    so that torch.compile traces them as constants.

    ``"cross"``: |o|_1 <= r (r = 1: scipy's ``generate_binary_structure(ndim, 1)``; radius r equals
    r iterations of it); ``"box"``: every offset (side 2r+1); ``"ball"``: |o|_2 <= r.
    """
    r = int(radius)
    inside = {"cross": lambda o: sum(abs(v) for v in o) <= r,
              "box": lambda o: True,
              "ball": lambda o: sum(v * v for v in o) <= r * r}
    if structure not in inside:
        raise ValueError(f"unknown structure {structure!r}; expected one of {list(STRUCTURES)} or a bool tensor")
    return [o for o in itertools.product(range(-r, r + 1), repeat=ndim) if inside[structure](o)]


def structure_tensor(structure: str, radius: int, ndim: int) -> Tensor:
    """The bool structuring element (2r+1,)*ndim of a named structure (CPU tensor), e.g. to pass
    to scipy.ndimage."""
    r = int(radius)
    out = torch.zeros((2 * r + 1,) * ndim, dtype=torch.bool)
    for o in named_offsets(structure, r, ndim):
        out[tuple(v + r for v in o)] = True
    return out


def structure_offsets(structure: Tensor, reflect: bool) -> list[tuple[int, ...]]:
    """Offsets o of the True elements, relative to scipy's centre ``size // 2`` per axis:
    ``o = index - size // 2`` for erosion, reflected ``o = size // 2 - index`` for dilation (this
    is scipy's convention, even sizes included)."""
    centre = [s // 2 for s in structure.shape]
    offsets = []
    for idx in itertools.product(*[range(s) for s in structure.shape]):
        if bool(structure[idx]):
            o = tuple(i - c for i, c in zip(idx, centre))
            offsets.append(tuple(-v for v in o) if reflect else o)
    return offsets


def _to_dhw(offset: tuple[int, ...]) -> list[int]:
    """(dh, dw) or (dd, dh, dw) -> [dd, dh, dw]."""
    return [0] * (3 - len(offset)) + list(offset)


def _axis_pass(ndim: int, axis: int, lo: int, hi: int) -> list[list[int]]:
    """A 1D stencil along ``axis`` covering offsets lo..hi."""
    out = []
    for t in range(lo, hi + 1):
        o = [0] * ndim
        o[axis] = t
        out.append(_to_dhw(tuple(o)))
    return out


def _plan(structure: Structure, radius: int, iterations: int, ndim: int, erode: bool, direct: bool = False):
    """Decomposes (structure, radius, iterations) into (stencils, repeats): every stencil is a list
    of [dd, dh, dw] offsets; the whole list of stencils is applied ``repeats`` times. ``direct``
    (CUDA): a cross of radius r is one stencil per iteration, not r passes of the radius-1 cross, so
    that an iteration is one launch (the box stays separable: ndim launches for all iterations)."""
    if isinstance(structure, str):
        if radius == 0:
            return [], 0
        if structure == "cross" and direct:
            return [[_to_dhw(o) for o in named_offsets("cross", radius, ndim)]], iterations
        if structure == "cross":
            cross = [_to_dhw(o) for o in named_offsets("cross", 1, ndim)]
            return [cross], radius * iterations
        if structure == "box":
            R = radius * iterations
            return [_axis_pass(ndim, ax, -R, R) for ax in range(ndim)], 1
        return [[_to_dhw(o) for o in named_offsets("ball", radius, ndim)]], iterations
    # explicit bool tensor: an all-True box is separable (k iterations = one pass of k-times the
    # reach per axis); anything else is a direct stencil per iteration.
    if bool(structure.all()):
        stencils = []
        for ax, s in enumerate(structure.shape):
            lo, hi = -(s // 2), s - 1 - s // 2          # erosion offsets along this axis
            if not erode:
                lo, hi = -hi, -lo                      # reflected for dilation
            stencils.append(_axis_pass(ndim, ax, lo * iterations, hi * iterations))
        return stencils, 1
    return [[_to_dhw(o) for o in structure_offsets(structure, reflect=not erode)]], iterations


# ----------------------------------------------------------------------------------------------
# the custom op

def _launch_args(masks: Tensor):
    a = _C.MorphArgs()
    a.dtype = _kernels.DTYPE_CODES[masks.dtype]
    sp = masks.shape[1:]
    a.N = masks.shape[0]
    a.D, a.H, a.W = (1, sp[0], sp[1]) if len(sp) == 2 else (sp[0], sp[1], sp[2])
    return a


def _row_runs(offsets: list[list[int]]):
    """Splits a stencil into runs along w: returns (windows [(lo, hi)], row offsets [[plane, dd, dh, 0]])
    when 1D window passes (one plane per distinct window) plus one pass over the rows read fewer
    elements than the direct stencil, else None."""
    rows: dict[tuple[int, int], list[int]] = defaultdict(list)
    for dd, dh, dw in offsets:
        rows[(dd, dh)].append(dw)
    runs = []
    for (dd, dh), ws in sorted(rows.items()):
        ws = sorted(set(ws))
        lo = prev = ws[0]
        for w in ws[1:] + [None]:
            if w is not None and w == prev + 1:
                prev = w
                continue
            runs.append((dd, dh, lo, prev))
            if w is not None:
                lo = prev = w
    windows = sorted({(lo, hi) for _, _, lo, hi in runs})
    if sum(hi - lo + 1 for lo, hi in windows) + len(runs) >= len(offsets):
        return None
    plane = {w: j for j, w in enumerate(windows)}
    return windows, [[plane[(lo, hi)], dd, dh, 0] for dd, dh, lo, hi in runs]


def _compile_stencil(offsets: list[list[int]], device: torch.device):
    """[(offsets (K, 4) int32 tensor on device, writes a plane index or None)]: the launches of one
    stencil application. Direct: one launch. Row-decomposed (CPU only, where it reads fewer
    elements): one launch per window, then the rows."""
    def t(rows):
        return torch.tensor(rows, dtype=torch.int32).view(-1, 4).to(device)
    split = None if _one_launch_per_iteration(device) else _row_runs(offsets)
    if split is None:
        return [(t([[0, *o] for o in offsets]), None)]
    windows, row_offsets = split
    launches = [(t([[0, 0, 0, w] for w in range(lo, hi + 1)]), j) for j, (lo, hi) in enumerate(windows)]
    return launches + [(t(row_offsets), "rows")]


# Tests set this to run the CPU kernel with the CUDA kernel's per-element math (stencil_at)
# instead of the line-wise loop, so that the code CUDA runs is checked on machines without a GPU.
_CPU_PER_ELEMENT = False
# None: CUDA plans one launch per iteration (direct stencils), the CPU decomposes; tests set True
# to check the CUDA plan on the CPU.
_ONE_LAUNCH_PER_ITERATION = None


def _one_launch_per_iteration(device: torch.device) -> bool:
    return device.type == "cuda" if _ONE_LAUNCH_PER_ITERATION is None else _ONE_LAUNCH_PER_ITERATION


def _stencil(src: Tensor, dst: Tensor, offs: Tensor, is_max: bool, plane: int) -> None:
    a = _launch_args(dst)
    a.per_element = _CPU_PER_ELEMENT
    a.src, a.dst, a.plane = _kernels.ptr(src), _kernels.ptr(dst), plane
    a.offsets, a.K, a.is_max = _kernels.ptr(offs), offs.shape[0], is_max
    _C.morphology_stencil(a, *_kernels.device_args(dst))


def _run_passes(x: Tensor, stencils: list, repeats: int, is_max: bool) -> Tensor:
    bufs = [torch.empty_like(x), torch.empty_like(x)]
    nplanes = max((j + 1 for launches in stencils for _, j in launches if isinstance(j, int)), default=0)
    stack = torch.empty((nplanes, *x.shape), dtype=x.dtype, device=x.device) if nplanes else None
    cur, turn = x, 0
    for _ in range(repeats):
        for launches in stencils:
            out = bufs[turn]
            for offs, target in launches:
                if target is None:
                    _stencil(cur, out, offs, is_max, 0)
                elif target == "rows":
                    _stencil(stack, out, offs, is_max, x.numel())
                else:
                    _stencil(cur, stack[target], offs, is_max, 0)
            cur, turn = out, 1 - turn
    return cur


def _combine(a_t: Tensor, b_t: Tensor, mode: int) -> Tensor:
    out = torch.empty_like(a_t)
    a = _launch_args(a_t)
    a.src, a.aux, a.dst, a.mode = _kernels.ptr(a_t), _kernels.ptr(b_t), _kernels.ptr(out), mode
    _C.morphology_combine(a, *_kernels.device_args(a_t))
    return out


def _morphology_impl(masks: Tensor, offsets: list[int], sizes: list[int], repeats: int, erode: bool) -> Tensor:
    """masks (N, *spatial) bool/uint8/int32/int64 (labels >= 0); ``offsets`` flattens the stencils'
    [dd, dh, dw] offsets, ``sizes`` gives each stencil's number of offsets; the stencils are applied
    in order, ``repeats`` times. Returns a new tensor like masks."""
    x = masks.contiguous()
    if x.dtype in (torch.int32, torch.int64) and x.numel() > 0:  # bool / uint8 cannot be negative
        lowest = int(x.min())
        if lowest < 0:
            raise ValueError(f"{'erode' if erode else 'dilate'}: label maps must be >= 0 (0 = background); "
                             f"got the value {lowest}")
    if repeats == 0 or not sizes or x.numel() == 0:
        return x.clone()
    triples = [offsets[i:i + 3] for i in range(0, len(offsets), 3)]
    stencils, start = [], 0
    for k in sizes:
        stencils.append(_compile_stencil(triples[start:start + k], x.device))
        start += k
    labels = x.dtype != torch.bool
    if not erode:
        grown = _run_passes(x, stencils, repeats, is_max=True)
        return _combine(x, grown, mode=0) if labels else grown
    shrunk = _run_passes(x, stencils, repeats, is_max=False)
    if not labels:
        return shrunk
    return _combine(shrunk, _run_passes(x, stencils, repeats, is_max=True), mode=1)


_morphology = torch.library.custom_op("noisyseg::morphology", _morphology_impl, mutates_args=())


@_morphology.register_fake
def _morphology_fake(masks, offsets, sizes, repeats, erode):
    return torch.empty_like(masks, memory_format=torch.contiguous_format)


# ----------------------------------------------------------------------------------------------
# public functions

def _validate(op: str, masks, radius, structure, iterations) -> None:
    _checks.check_tensor("masks", masks, op)
    if masks.dtype not in MASK_DTYPES:
        raise TypeError(f"{op}: masks must be a bool mask or an integer label map (bool, uint8, int32, "
                        f"int64); got {masks.dtype}")
    if masks.dim() not in (3, 4):
        raise ValueError(f"{op}: masks must be (N, H, W) or (N, D, H, W); got shape {tuple(masks.shape)}")
    if isinstance(radius, bool) or not isinstance(radius, int):
        raise TypeError(f"{op}: radius must be an int; got {type(radius).__name__}")
    if radius < 0:
        raise ValueError(f"{op}: radius must be >= 0; got {radius}")
    if isinstance(iterations, bool) or not isinstance(iterations, int):
        raise TypeError(f"{op}: iterations must be an int; got {type(iterations).__name__}")
    if iterations < 1:
        raise ValueError(f"{op}: iterations must be >= 1 (scipy's 'repeat until nothing changes' for "
                         f"iterations < 1 is not supported); got {iterations}")
    if isinstance(structure, str):
        _checks.check_choice("structure", structure, STRUCTURES, op)
    elif isinstance(structure, Tensor):
        if structure.dtype != torch.bool:
            raise TypeError(f"{op}: an explicit structure must be a bool tensor; got {structure.dtype}")
        if structure.dim() != masks.dim() - 1:
            raise ValueError(f"{op}: structure has {structure.dim()} dims but masks {tuple(masks.shape)} have "
                             f"{masks.dim() - 1} spatial dims")
        if structure.numel() == 0 or not bool(structure.any()):
            raise ValueError(f"{op}: structure must have at least one True element; got shape "
                             f"{tuple(structure.shape)}")
    else:
        raise TypeError(f"{op}: structure must be one of {list(STRUCTURES)} or a bool tensor; got "
                        f"{type(structure).__name__}")


def _apply(op: str, masks: Tensor, radius: int, structure: Structure, iterations: int) -> Tensor:
    _validate(op, masks, radius, structure, iterations)
    erode = op == "erode"
    ndim = masks.dim() - 1
    if isinstance(structure, Tensor):
        structure = structure.detach().cpu()
    if not _kernels.use_kernel(op, masks.device):
        full = structure if isinstance(structure, Tensor) else structure_tensor(structure, radius, ndim)
        return reference.morphology(masks, full, iterations, erode=erode)
    stencils, repeats = _plan(structure, radius, iterations, ndim, erode,
                              direct=_one_launch_per_iteration(masks.device))
    offsets = [v for s in stencils for o in s for v in o]
    op = _direct.pick(_morphology_impl, torch.ops.noisyseg.morphology, masks)
    return op(masks, offsets, [len(s) for s in stencils], repeats, erode)


def dilate(masks: Tensor, radius: int = 1, *, structure: Structure = "cross", iterations: int = 1) -> Tensor:
    """Dilation of bool masks or integer label maps, batched, 2D or 3D.

    Args:
        masks: (N, H, W) or (N, D, H, W) bool masks, or uint8 / int32 / int64 label maps with
            0 = background and classes >= 1; CPU or CUDA, any strides.
        radius: structure radius in pixels (>= 0; 0 leaves masks unchanged). Ignored for an explicit
            structure tensor.
        structure: ``"cross"`` (1-connectivity; radius r = r iterations of the radius-1 cross),
            ``"box"`` (side 2r+1), ``"ball"`` (Euclidean |o| <= r), or an explicit bool tensor with
            one dim per spatial dim (any sizes; centre at ``size // 2`` as in scipy). An explicit
            structure is read on the host: under torch.compile it causes a graph break (named
            structures trace fully).
        iterations: number of times the dilation is applied (>= 1).

    Returns:
        Tensor of masks' shape and dtype (contiguous).

    Bool masks: identical to ``scipy.ndimage.binary_dilation(mask, structure, iterations)`` per
    sample (``border_value=0``: outside the image is background).

    Label maps: every class grows as if dilated alone (scipy, same structure and iterations); a
    pixel that was foreground keeps its label; a background pixel reached by several classes takes
    the **largest** label.

    Raises:
        TypeError for float masks or non-int radius/iterations; ValueError for a wrong
        dimensionality, negative radius, iterations < 1, an empty structure or negative labels.
    """
    return _apply("dilate", masks, radius, structure, iterations)


def erode(masks: Tensor, radius: int = 1, *, structure: Structure = "cross", iterations: int = 1) -> Tensor:
    """Erosion of bool masks or integer label maps, batched, 2D or 3D.

    Arguments, shapes and dtypes as :func:`dilate`.

    Bool masks: identical to ``scipy.ndimage.binary_erosion(mask, structure, iterations)`` per sample,
    with scipy's default ``border_value=0``: positions outside the image count as background, so a
    foreground pixel whose (iterated) structure reaches outside the image is eroded. A mask touching
    the image border therefore shrinks away from the border as well.

    Label maps: every class shrinks as if eroded alone (scipy, same structure and iterations): a
    pixel keeps class c only if every position its iterated structure covers is inside the image
    and holds c; otherwise it becomes background (0). With a structure that contains its centre (every
    named one), classes never grow.
    """
    return _apply("erode", masks, radius, structure, iterations)
