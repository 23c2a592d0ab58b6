"""The papers' label-noise protocols (METHODS.md §1): synthetic corruption of clean masks.

``corrupt_labels(masks, protocol, ratio, seed=...)`` corrupts the masks of a fraction ``ratio`` of a
dataset. Reproducibility (see seeding.py): the corrupted subset is drawn over the dataset indices
from ``seed``, every sample's parameters from (seed, its dataset index); the same sample therefore
gets the same corruption whether it is corrupted alone, in any batch, in any order, on the CPU or
on CUDA (the morphology kernels are exact; parameters are always drawn on the CPU).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any, Optional, Union

import torch
from torch import Tensor

from noisyseg_ext.noise.records import NoiseRecord
from noisyseg_ext.noise.seeding import corrupted_indices, sample_generator
from noisyseg_ext.ops.morphology import MASK_DTYPES, STRUCTURES, dilate, erode

# Every protocol's parameters and defaults. A range (lo, hi) is inclusive at both ends; an int
# fixes the value.
DEFAULTS: dict[str, dict[str, Any]] = {
    # MCPM "Dilation": binary dilation of each foreground class, random iterations of a cross.
    "dilation": {"iterations": (1, 8), "structure": "cross", "radius": 1},
    # MCPM "ElasticDeform": elasticdeform's random grid, points per axis, N(0, sigma^2) pixels.
    "elastic": {"sigma": 10.0, "points": 3},
    # PINT / MTCL LA noise: dilate or erode (p = 1/2) by a square/cube of side randint(3, 15), once.
    "erode_dilate": {"side": (3, 15), "p_dilate": 0.5},
    # Pick-and-learn: erode or dilate by 1-8 pixels (the stronger setting: pixels=(5, 13)).
    "pick_and_learn": {"pixels": (1, 8), "structure": "ball", "p_dilate": 0.5},
}
PROTOCOLS = tuple(DEFAULTS)

_OP = "corrupt_labels"


# ----------------------------------------------------------------------------------------------
# parameter checks

def _int_range(name: str, value, minimum: int) -> tuple[int, int]:
    if isinstance(value, int) and not isinstance(value, bool):
        lo = hi = value
    elif isinstance(value, (tuple, list)) and len(value) == 2 and all(
            isinstance(v, int) and not isinstance(v, bool) for v in value):
        lo, hi = value
    else:
        raise TypeError(f"{_OP}: {name} must be an int or an inclusive (low, high) pair of ints; got {value!r}")
    if lo < minimum or hi < lo:
        raise ValueError(f"{_OP}: {name} must satisfy {minimum} <= low <= high; got {value!r}")
    return lo, hi


def _probability(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"{_OP}: {name} must be a probability in [0, 1]; got {value!r}")
    return float(value)


def _structure_name(value) -> str:
    if value not in STRUCTURES:
        raise ValueError(f"{_OP}: structure must be one of {list(STRUCTURES)}; got {value!r}")
    return value


def resolve_params(protocol: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """The protocol's defaults updated with ``overrides``, checked (unknown names raise)."""
    if protocol not in DEFAULTS:
        raise ValueError(f"{_OP}: unknown protocol {protocol!r}; expected one of {list(PROTOCOLS)}")
    unknown = set(overrides) - set(DEFAULTS[protocol])
    if unknown:
        raise ValueError(f"{_OP}: protocol {protocol!r} has no parameter(s) {sorted(unknown)}; "
                         f"its parameters are {DEFAULTS[protocol]}")
    p = {**DEFAULTS[protocol], **overrides}
    if protocol == "dilation":
        p["iterations"] = _int_range("iterations", p["iterations"], 1)
        p["structure"] = _structure_name(p["structure"])
        p["radius"] = _int_range("radius", p["radius"], 1)
    elif protocol == "elastic":
        if isinstance(p["sigma"], bool) or not isinstance(p["sigma"], (int, float)) or p["sigma"] < 0:
            raise ValueError(f"{_OP}: sigma must be a number >= 0 (pixels); got {p['sigma']!r}")
        p["sigma"] = float(p["sigma"])
        if isinstance(p["points"], bool) or not isinstance(p["points"], int):
            raise TypeError(f"{_OP}: points must be an int; got {p['points']!r}")
        if p["points"] < 2:
            raise ValueError(f"{_OP}: points must be >= 2 (a control grid spanning the image corners); "
                             f"got {p['points']}")
    elif protocol == "erode_dilate":
        p["side"] = _int_range("side", p["side"], 1)
        p["p_dilate"] = _probability("p_dilate", p["p_dilate"])
    elif protocol == "pick_and_learn":
        p["pixels"] = _int_range("pixels", p["pixels"], 1)
        p["structure"] = _structure_name(p["structure"])
        p["p_dilate"] = _probability("p_dilate", p["p_dilate"])
    return p


# ----------------------------------------------------------------------------------------------
# per-sample draws: (operation, recorded params, payload); the draw order is part of the protocol

def _randint(g: torch.Generator, lo_hi: tuple[int, int]) -> int:
    lo, hi = lo_hi
    return int(torch.randint(lo, hi + 1, (1,), generator=g))


def _draw(protocol: str, p: dict[str, Any], g: torch.Generator, ndim: int):
    if protocol == "dilation":
        radius = _randint(g, p["radius"])
        return "dilate", {"structure": p["structure"], "radius": radius,
                          "iterations": _randint(g, p["iterations"])}, None
    if protocol == "erode_dilate":
        op = "dilate" if float(torch.rand(1, generator=g)) < p["p_dilate"] else "erode"
        return op, {"structure": "box", "side": _randint(g, p["side"]), "iterations": 1}, None
    if protocol == "pick_and_learn":
        op = "dilate" if float(torch.rand(1, generator=g)) < p["p_dilate"] else "erode"
        return op, {"structure": p["structure"], "radius": _randint(g, p["pixels"]), "iterations": 1}, None
    # elastic: one control grid per sample, (ndim, points, ..., points) ~ N(0, sigma^2) pixels
    points = p["points"]
    displacement = torch.randn((ndim, *[points] * ndim), generator=g, dtype=torch.float32) * p["sigma"]
    return "elastic", {"sigma": p["sigma"], "points": points}, displacement


def _morph(masks: Tensor, op: str, params: dict[str, Any]) -> Tensor:
    fn = dilate if op == "dilate" else erode
    if "side" in params:  # a square / cube of this side; even sides use scipy's centre (side // 2)
        box = torch.ones((params["side"],) * (masks.dim() - 1), dtype=torch.bool)
        return fn(masks, structure=box, iterations=params["iterations"])
    return fn(masks, params["radius"], structure=params["structure"], iterations=params["iterations"])


def _elastic(masks: Tensor, displacement: Tensor) -> Tensor:
    """Order-0 (nearest) deformation of label maps with noisyseg_ext.ops.elastic (separate module)."""
    try:
        from noisyseg_ext.ops.elastic import elastic_deform
    except ImportError as exc:
        raise RuntimeError("corrupt_labels: the 'elastic' protocol needs noisyseg_ext.ops.elastic "
                           f"(elastic_deform), which this installation lacks ({exc})") from exc
    # Labels travel as float32 (exact for any label below 2**24); nearest sampling keeps them exact.
    deformed = elastic_deform(masks.to(torch.float32), displacement.to(masks.device), order=0)
    return deformed.round().to(masks.dtype)


# ----------------------------------------------------------------------------------------------
# public function

def _as_indices(indices, n: int, num_samples: Optional[int]) -> tuple[list[int], int]:
    if indices is None:
        idx = list(range(n))
        total = n if num_samples is None else num_samples
    else:
        if isinstance(indices, Tensor):
            if indices.dim() != 1 or indices.dtype.is_floating_point or indices.dtype == torch.bool:
                raise TypeError(f"{_OP}: indices must be a 1D integer tensor or a sequence of ints; got "
                                f"{indices.dtype} of shape {tuple(indices.shape)}")
            idx = [int(v) for v in indices.tolist()]
        else:
            idx = [int(v) for v in indices]
        if num_samples is None:
            raise ValueError(f"{_OP}: with indices, pass num_samples (the dataset size): the corrupted "
                             "subset is drawn over the whole dataset")
        total = num_samples
    if isinstance(total, bool) or not isinstance(total, int) or total < 0:
        raise ValueError(f"{_OP}: num_samples must be an int >= 0; got {total!r}")
    if len(idx) != n:
        raise ValueError(f"{_OP}: got {len(idx)} indices for a batch of {n} masks")
    bad = [i for i in idx if not 0 <= i < total]
    if bad:
        raise ValueError(f"{_OP}: indices must lie in [0, num_samples={total}); got {bad[:5]}")
    return idx, total


def corrupt_labels(masks: Tensor, protocol: str, ratio: float, *, seed: int,
                   indices: Union[Sequence[int], Tensor, None] = None, num_samples: Optional[int] = None,
                   **params) -> tuple[Tensor, list[NoiseRecord]]:
    """Corrupts the masks of a fraction ``ratio`` of a dataset with one of the papers' protocols.

    Args:
        masks: (N, H, W) or (N, D, H, W) bool masks or uint8 / int32 / int64 label maps
            (0 = background), CPU or CUDA: a batch of the dataset or all of it.
        protocol: ``"dilation"``, ``"elastic"``, ``"erode_dilate"`` or ``"pick_and_learn"``
            (METHODS.md §1; defaults in ``DEFAULTS``):
            dilation: ``dilate(iterations=randint(1, 8), structure="cross")``;
            elastic: elasticdeform's random grid, ``points=3`` per axis, displacements N(0, sigma^2)
            with ``sigma=10`` pixels, order 0 (needs ``noisyseg_ext.ops.elastic``);
            erode_dilate: with probability 1/2 dilate else erode, once, by a square/cube of side
            randint(3, 15) (even sides: centre at side // 2, as scipy);
            pick_and_learn: with probability 1/2 dilate else erode by a ball of radius randint(1, 8)
            pixels (``pixels=(5, 13)`` for the stronger setting).
            Ranges are inclusive; every default can be overridden through ``params``.
        ratio: fraction in [0, 1] of the DATASET's samples to corrupt: exactly
            round(ratio * num_samples) of them.
        seed: int >= 0; determines the subset and every sample's parameters.
        indices: dataset index of each sample in the batch (default 0..N-1: the batch is the dataset).
        num_samples: dataset size (default N; required with ``indices``).
        params: protocol parameters overriding ``DEFAULTS[protocol]``.

    Returns:
        (noisy masks: a new tensor like masks, one NoiseRecord per sample in batch order).

    The same (seed, ratio, num_samples, protocol, params) gives each dataset index the same noisy
    mask whatever the batch it comes in, its position, and the device.
    """
    if not isinstance(masks, Tensor):
        raise TypeError(f"{_OP}: masks must be a torch.Tensor; got {type(masks).__name__}")
    if masks.dtype not in MASK_DTYPES:
        raise TypeError(f"{_OP}: masks must be bool or integer label maps; got {masks.dtype}")
    if masks.dim() not in (3, 4):
        raise ValueError(f"{_OP}: masks must be (N, H, W) or (N, D, H, W); got shape {tuple(masks.shape)}")
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0.0 <= float(ratio) <= 1.0:
        raise ValueError(f"{_OP}: ratio must be in [0, 1]; got {ratio!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"{_OP}: seed must be an int >= 0; got {seed!r}")
    p = resolve_params(protocol, params)
    idx, total = _as_indices(indices, masks.shape[0], num_samples)
    chosen = corrupted_indices(seed, float(ratio), total)
    ndim = masks.dim() - 1

    records: list[NoiseRecord] = []
    groups: dict[tuple, list[int]] = defaultdict(list)   # morphology: batched by identical params
    elastic_rows: list[int] = []
    displacements: list[Tensor] = []
    for row, index in enumerate(idx):
        if index not in chosen:
            records.append(NoiseRecord(index, False))
            continue
        op, drawn, payload = _draw(protocol, p, sample_generator(seed, index), ndim)
        records.append(NoiseRecord(index, True, op, drawn))
        if op == "elastic":
            elastic_rows.append(row)
            displacements.append(payload)
        else:
            groups[(op, tuple(sorted(drawn.items())))].append(row)

    out = masks.clone(memory_format=torch.contiguous_format)
    for (op, items), rows in groups.items():
        sel = torch.tensor(rows, device=masks.device)
        out[sel] = _morph(masks[sel], op, dict(items))
    if elastic_rows:
        sel = torch.tensor(elastic_rows, device=masks.device)
        out[sel] = _elastic(masks[sel], torch.stack(displacements))
    return out, records
