"""Fused ops: torch.library custom ops over the compiled kernels, with autograd."""

from noisyseg_ext.ops.mc_uncertainty import McUncertainty, UncertaintyAccumulator, mc_uncertainty
from noisyseg_ext.ops.pint_loss import PintLossResult, image_gate, pint_loss
from noisyseg_ext.ops.weighted_ce import weighted_ce

__all__ = ["weighted_ce", "mc_uncertainty", "McUncertainty", "UncertaintyAccumulator", "pint_loss",
           "PintLossResult", "image_gate"]
