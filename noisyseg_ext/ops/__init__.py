"""Fused ops: torch.library custom ops over the compiled kernels, with autograd."""

from noisyseg_ext.ops.distance_transform import distance_transform, mask_surface
from noisyseg_ext.ops.elastic import elastic_deform, random_displacement, random_elastic_deform
from noisyseg_ext.ops.label_checks import check_deferred as check_deferred_labels, label_check_mode, set_label_check_mode
from noisyseg_ext.ops.mc_uncertainty import McUncertainty, UncertaintyAccumulator, mc_uncertainty
from noisyseg_ext.ops.morphology import dilate, erode
from noisyseg_ext.ops.pint_loss import PintLossResult, image_gate, pint_loss
from noisyseg_ext.ops.weighted_ce import weighted_ce

__all__ = ["McUncertainty", "PintLossResult", "UncertaintyAccumulator", "check_deferred_labels", "dilate",
           "distance_transform", "elastic_deform", "erode", "image_gate", "label_check_mode", "mask_surface",
           "mc_uncertainty", "pint_loss", "random_displacement", "random_elastic_deform", "set_label_check_mode",
           "weighted_ce"]
