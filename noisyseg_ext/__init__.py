"""noisyseg_ext: training segmentation networks on noisy pixel labels, with fused CPU/CUDA ops."""

__version__ = "0.1.0"

from noisyseg_ext._build_info import build_info
from noisyseg_ext import metrics
from noisyseg_ext.ops import distance_transform, weighted_ce

__all__ = ["__version__", "build_info", "weighted_ce", "distance_transform", "metrics"]
