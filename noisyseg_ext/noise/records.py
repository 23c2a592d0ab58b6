"""What corrupt_labels did to each sample."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Optional


@dataclass(frozen=True)
class NoiseRecord:
    """One sample's corruption.

    index: the sample's dataset index; corrupted: whether its mask was changed by the protocol;
    operation: ``"dilate"``, ``"erode"`` or ``"elastic"`` (None when not corrupted);
    params: the drawn parameters (e.g. ``{"structure": "cross", "radius": 1, "iterations": 5}`` or
    ``{"sigma": 10.0, "points": 3}``; empty when not corrupted).
    """

    index: int
    corrupted: bool
    operation: Optional[str] = None
    params: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
