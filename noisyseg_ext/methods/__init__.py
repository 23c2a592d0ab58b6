"""Training-method helpers (mean-teacher schedules, ...)."""

from noisyseg_ext.methods.ramps import consistency_weight, sigmoid_rampup, uamt_threshold

__all__ = ["uamt_threshold", "sigmoid_rampup", "consistency_weight"]
