"""When the ops' label checks read their result back.

``weighted_ce``, ``pint_loss`` and ``mc_uncertainty`` count labels outside [0, C) (and not
``ignore_index``) inside their kernels. Reading that count is free on the CPU but a device
synchronisation on CUDA, which stalls a training step. Three modes:

* ``"immediate"`` (default): read after every call; a bad label raises ValueError at once, naming the
  value;
* ``"deferred"``: add the count to a per-op device tensor without reading it; :func:`check_deferred`
  reads all of them (one synchronisation) and raises ValueError if any label was bad since the last
  check. The Trainer uses this on CUDA and checks at its logging steps, after it has validated the
  dataset's labels at load time;
* ``"off"``: no check (garbage labels give garbage losses, never a crash: the kernels skip them).

Use :func:`label_check_mode` as a context manager, or :func:`set_label_check_mode`.
"""

from __future__ import annotations

import contextlib
from typing import Iterator, Optional

import torch
from torch import Tensor

MODES = ("immediate", "deferred", "off")
_mode = "immediate"
_pending: dict[tuple[str, torch.device], Tensor] = {}


def get_label_check_mode() -> str:
    return _mode


def set_label_check_mode(mode: str) -> str:
    """Sets the mode (one of :data:`MODES`) and returns the previous one."""
    global _mode
    if mode not in MODES:
        raise ValueError(f"label check mode must be one of {list(MODES)}; got {mode!r}")
    previous, _mode = _mode, mode
    return previous


@contextlib.contextmanager
def label_check_mode(mode: str) -> Iterator[None]:
    """Context manager: ``with label_check_mode("deferred"): ...``."""
    previous = set_label_check_mode(mode)
    try:
        yield
    finally:
        set_label_check_mode(previous)


def record(op: str, count: Tensor, raise_now) -> None:
    """Called by an op with its bad-label ``count`` (a tensor of any shape, summed) and ``raise_now``,
    a function that raises the op's ValueError naming the value (used in immediate mode)."""
    if _mode == "immediate":
        if float(count.sum()) > 0:  # reads the count: synchronises on CUDA
            raise_now()
    elif _mode == "deferred":
        key = (op, count.device)
        total = count.detach().sum().to(torch.float64)
        _pending[key] = _pending[key] + total if key in _pending else total


def check_deferred() -> None:
    """Reads the deferred counts (one synchronisation per device) and clears them; raises ValueError
    naming the ops that saw labels outside [0, C) since the last check."""
    bad: list[str] = []
    items = list(_pending.items())
    _pending.clear()
    for (op, _), total in items:
        n = float(total)
        if n > 0:
            bad.append(f"{op} ({int(n)} pixel(s))")
    if bad:
        raise ValueError("labels outside [0, C) and not ignore_index reached " + ", ".join(bad) +
                         " since the last check (deferred label checks: rerun with "
                         "noisyseg_ext.ops.label_check_mode('immediate') to find the value)")


def pending() -> Optional[dict]:
    """The deferred counts not yet read (for tests): {(op, device): 0-dim float64 tensor}."""
    return dict(_pending)
