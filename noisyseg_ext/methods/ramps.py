"""Schedules of the mean-teacher family (UA-MT, PINT): the Gaussian "sigmoid" ramp-up
exp(-5 (1 - t/t_max)^2), the uncertainty threshold ramp and the consistency-weight ramp.
Plain Python floats (no tensors), so they can be passed as op arguments under torch.compile."""

from __future__ import annotations

import math


def sigmoid_rampup(step: float, max_steps: float) -> float:
    """exp(-5 (1 - t)^2) with t = clip(step / max_steps, 0, 1): 0.0067 at 0, 1 from max_steps on
    (Laine & Aila's ramp, used by UA-MT). max_steps <= 0 gives 1."""
    if max_steps <= 0:
        return 1.0
    t = min(max(float(step) / float(max_steps), 0.0), 1.0)
    return math.exp(-5.0 * (1.0 - t) ** 2)


def uamt_threshold(step: float, max_steps: float, num_classes: int) -> float:
    """UA-MT's entropy threshold H(t) = (0.75 + 0.25 · rampup(t)) · ln C: from about 0.75 ln C
    to ln C (the largest possible entropy) at max_steps. num_classes >= 1."""
    if num_classes < 1:
        raise ValueError(f"uamt_threshold: num_classes must be >= 1; got {num_classes}")
    return (0.75 + 0.25 * sigmoid_rampup(step, max_steps)) * math.log(num_classes)


def consistency_weight(step: float, max_steps: float, max_weight: float = 0.1) -> float:
    """Consistency weight λ(t) = max_weight · rampup(t) (UA-MT: max_weight 0.1)."""
    return max_weight * sigmoid_rampup(step, max_steps)
