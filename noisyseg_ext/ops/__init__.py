"""Fused ops: torch.library custom ops over the compiled kernels, with autograd."""

from noisyseg_ext.ops.morphology import dilate, erode
from noisyseg_ext.ops.weighted_ce import weighted_ce

__all__ = ["dilate", "erode", "weighted_ce"]
