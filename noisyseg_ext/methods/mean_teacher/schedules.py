"""Step-dependent constants of the mean-teacher methods, from the ramps of
:mod:`noisyseg_ext.methods.ramps` (plain Python floats: op arguments, no tensors, no sync).

* pixel threshold ``H(t) = (start + (end − start) · r(t)) · ln C`` with ``r(t) = exp(−5 (1 − t/ramp)²)``;
  the defaults 0.75 / 1 are UA-MT's :func:`~noisyseg_ext.methods.ramps.uamt_threshold`;
* image threshold ``H_img(t) = image_threshold · ln C · H(t) / H(ramp)``: the same ramp, ending at
  ``image_threshold · ln C``;
* UA-MT's consistency weight ``λ(t) = uamt_consistency · r(t)``
  (:func:`~noisyseg_ext.methods.ramps.consistency_weight`). UA-MT ramps it over 40 "epochs" of 150
  iterations, i.e. its 6000 iterations, in steps of 150; here it ramps smoothly over ``ramp``.
"""

from __future__ import annotations

import math
from typing import Optional

from noisyseg_ext.methods.ramps import consistency_weight, sigmoid_rampup


def ramp_length(ramp_steps: Optional[int], max_steps: int) -> int:
    """``--ramp-steps``, or the run's number of steps when it is None."""
    return int(ramp_steps) if ramp_steps is not None else int(max_steps)


def pixel_threshold(step: int, ramp: int, num_classes: int, start: float = 0.75, end: float = 1.0) -> float:
    """H(t) in nats: ``(start + (end − start) · exp(−5 (1 − t/ramp)²)) · ln C``."""
    return (start + (end - start) * sigmoid_rampup(step, ramp)) * math.log(num_classes)


def image_threshold(step: int, ramp: int, num_classes: int, image_threshold: float, start: float = 0.75,
                    end: float = 1.0) -> float:
    """H_img(t) in nats: ``image_threshold · ln C`` scaled by the pixel threshold's ramp H(t) / H(ramp)."""
    return image_threshold * math.log(num_classes) * (start + (end - start) * sigmoid_rampup(step, ramp)) / end


def uamt_weight(step: int, ramp: int, max_weight: float) -> float:
    """UA-MT's consistency weight λ(t) = max_weight · exp(−5 (1 − t/ramp)²)."""
    return consistency_weight(step, ramp, max_weight)
