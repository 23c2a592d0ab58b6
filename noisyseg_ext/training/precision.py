"""Mixed precision (``--amp``): the autocast context of a step and the fp16 GradScaler."""

from __future__ import annotations

import contextlib
from typing import Callable, Optional

import torch

from noisyseg_ext.errors import ConfigError


def autocast_factory(amp: str, device: torch.device) -> Callable[[], contextlib.AbstractContextManager]:
    """A function returning the autocast context for ``--amp``: ``off`` -> a no-op context;
    ``bf16`` -> bfloat16 autocast on the CPU or CUDA; ``fp16`` -> float16 autocast (CUDA only:
    float16 on the CPU is slow and has no GradScaler support here)."""
    if amp == "off":
        return contextlib.nullcontext
    if amp == "bf16":
        return lambda: torch.autocast(device.type, dtype=torch.bfloat16)
    if amp == "fp16":
        if device.type != "cuda":
            raise ConfigError("--amp fp16 needs a CUDA device; use --amp bf16 on the CPU")
        return lambda: torch.autocast("cuda", dtype=torch.float16)
    raise ConfigError(f"unknown --amp {amp!r}; choose off, bf16 or fp16")


def grad_scaler(amp: str, device: torch.device) -> Optional[torch.amp.GradScaler]:
    """A GradScaler for fp16 (loss scaling keeps small fp16 gradients from underflowing); None otherwise
    (bf16 has float32's range and needs none)."""
    if amp == "fp16":
        return torch.amp.GradScaler(device.type)
    return None
