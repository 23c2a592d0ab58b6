"""Input validation shared by the ops: clear Python errors instead of crashes or garbage."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from noisyseg_ext.ops._kernels import FLOAT_DTYPES, LABEL_DTYPES


def check_tensor(name: str, t, op: str) -> None:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{op}: {name} must be a torch.Tensor, got {type(t).__name__}")


def check_floating(name: str, t: torch.Tensor, op: str, dtypes: Sequence[torch.dtype] = FLOAT_DTYPES) -> None:
    check_tensor(name, t, op)
    if t.dtype not in dtypes:
        allowed = ", ".join(str(d).replace("torch.", "") for d in dtypes)
        raise TypeError(f"{op}: {name} must have dtype {allowed}; got {t.dtype}")


def check_labels(name: str, t: torch.Tensor, op: str, dtypes: Sequence[torch.dtype] = LABEL_DTYPES) -> None:
    check_tensor(name, t, op)
    if t.dtype not in dtypes:
        allowed = ", ".join(str(d).replace("torch.", "") for d in dtypes)
        raise TypeError(f"{op}: {name} must hold integer class indices ({allowed}); got {t.dtype}")


def check_shape(name: str, t: torch.Tensor, expected: Sequence[int], op: str, why: str = "") -> None:
    if tuple(t.shape) != tuple(expected):
        extra = f" ({why})" if why else ""
        raise ValueError(f"{op}: {name} has shape {tuple(t.shape)}, expected {tuple(expected)}{extra}")


def check_same_device(op: str, **tensors: torch.Tensor | None) -> None:
    present = {k: v for k, v in tensors.items() if v is not None}
    devices = {v.device for v in present.values()}
    if len(devices) > 1:
        where = ", ".join(f"{k} on {v.device}" for k, v in present.items())
        raise ValueError(f"{op}: all tensors must be on one device; got {where}")


def raise_bad_label(op: str, target: torch.Tensor, num_classes: int, ignore_index: int) -> None:
    """Raises the ValueError for a label outside [0, num_classes) that is not ignore_index, naming
    the first such value of ``target`` (the kernels only count them; this, the rare path, finds
    one with torch)."""
    t = target.long()
    bad = (t != ignore_index) & ((t < 0) | (t >= num_classes))
    value = int(t[bad][0])
    raise ValueError(f"{op}: target holds {value}, outside [0, {num_classes}) and not ignore_index={ignore_index}")


def check_choice(name: str, value, choices: Sequence, op: str) -> None:
    if value not in choices:
        raise ValueError(f"{op}: {name} must be one of {list(choices)}; got {value!r}")
