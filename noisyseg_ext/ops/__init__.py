"""Fused ops: torch.library custom ops over the compiled kernels, with autograd."""

from noisyseg_ext.ops.elastic import elastic_deform, random_displacement, random_elastic_deform
from noisyseg_ext.ops.morphology import dilate, erode
from noisyseg_ext.ops.weighted_ce import weighted_ce

__all__ = ["dilate", "elastic_deform", "erode", "random_displacement", "random_elastic_deform", "weighted_ce"]
