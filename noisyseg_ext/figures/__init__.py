"""Figures of a run (matplotlib, PNG): progress curves, test overlays, corrupted training masks,
metric against noise ratio, and image panels."""

from noisyseg_ext.figures.overlays import foreground_dice, plot_corruption, plot_overlays, select_slice
from noisyseg_ext.figures.panels import mid_slice, plot_panels
from noisyseg_ext.figures.progress import moving_average, plot_progress
from noisyseg_ext.figures.ratio_curves import plot_ratio_curves

__all__ = ["mid_slice", "plot_panels", "plot_progress", "moving_average", "plot_overlays", "plot_corruption",
           "select_slice", "foreground_dice", "plot_ratio_curves"]
