"""Replaying a forward's random draws (dropout masks) in a later forward.

The forward-mode meta-gradient recomputes the training forward inside ``torch.func.jvp``; with
dropout active it must draw the same masks as the real forward did, or the tangent would be the
derivative of another function than the loss the virtual step differentiated. Capturing the
generator state before the real forward and replaying it around the recomputation does that, and
restores the generator afterwards so the rest of the step draws exactly what it would have.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Optional

import torch


@dataclass(frozen=True)
class RngState:
    """The CPU generator's state and, for a CUDA device, that device's generator state."""

    cpu: torch.Tensor
    device: Optional[torch.device] = None
    accelerator: Optional[torch.Tensor] = None

    @classmethod
    def capture(cls, device: torch.device) -> "RngState":
        """The current states (no device synchronisation: CUDA states are host-side seed/offset)."""
        device = torch.device(device)
        if device.type == "cuda":
            return cls(torch.get_rng_state(), device, torch.cuda.get_rng_state(device))
        return cls(torch.get_rng_state())

    def _set(self) -> None:
        torch.set_rng_state(self.cpu)
        if self.accelerator is not None:
            torch.cuda.set_rng_state(self.accelerator, self.device)

    @contextmanager
    def replay(self) -> Iterator[None]:
        """Within the block the generators start from this state; on exit they are back where they
        were on entry (also after an exception)."""
        current = RngState.capture(self.device or torch.device("cpu"))
        self._set()
        try:
            yield
        finally:
            current._set()
