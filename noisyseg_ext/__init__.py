"""noisyseg_ext: training segmentation networks on noisy pixel labels, with fused CPU/CUDA ops."""

__version__ = "0.1.0"

from noisyseg_ext._build_info import build_info
from noisyseg_ext.ops import (McUncertainty, PintLossResult, UncertaintyAccumulator, dilate, distance_transform,
                              elastic_deform, erode, mc_uncertainty, pint_loss, random_displacement,
                              random_elastic_deform, weighted_ce)
from noisyseg_ext import metrics
from noisyseg_ext.noise import corrupt_labels

__all__ = ["__version__", "McUncertainty", "PintLossResult", "UncertaintyAccumulator", "build_info", "corrupt_labels",
           "dilate", "distance_transform", "elastic_deform", "erode", "mc_uncertainty", "metrics", "pint_loss",
           "random_displacement", "random_elastic_deform", "weighted_ce"]
