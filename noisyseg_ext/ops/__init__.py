"""Fused ops: torch.library custom ops over the compiled kernels, with autograd."""

from noisyseg_ext.ops.distance_transform import distance_transform, mask_surface
from noisyseg_ext.ops.weighted_ce import weighted_ce

__all__ = ["weighted_ce", "distance_transform", "mask_surface"]
