"""Segmentation metrics per image and class (METHODS.md section 6), batched, CPU or CUDA.

Overlap: :func:`dice`, :func:`iou`, :func:`mean_iou`. Surface distances (exact Euclidean distance
transform kernels): :func:`hausdorff` (HD, HD95 with ``percentile=95``), and
:func:`average_surface_distance` (ASD, or ASSD with ``symmetric=True``). Accumulation over an
evaluation loop: :class:`CumulativeMetric`; NaN-aware reductions: :func:`reduce_metric`,
:func:`nanmean`.

Inputs: label maps (N, *spatial) with ``num_classes``, or one-hot masks (N, C, *spatial).
Outputs: float32 (N, C) on the input's device. Conventions: both masks empty -> NaN; for the
surface distances exactly one empty -> +inf (or ``empty_penalty``).
"""

from noisyseg_ext.metrics.cumulative import METRICS, CumulativeMetric
from noisyseg_ext.metrics.overlap import dice, iou, mean_iou
from noisyseg_ext.metrics.reduction import nanmean, reduce_metric
from noisyseg_ext.metrics.surface import HAUSDORFF_MODES, SurfaceDistances, average_surface_distance, hausdorff

__all__ = ["dice", "iou", "mean_iou", "hausdorff", "average_surface_distance", "CumulativeMetric", "METRICS",
           "reduce_metric", "nanmean", "SurfaceDistances", "HAUSDORFF_MODES"]
