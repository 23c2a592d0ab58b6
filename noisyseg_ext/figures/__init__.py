"""Figures of a run (matplotlib, PNG)."""

from noisyseg_ext.figures.panels import mid_slice, plot_panels

__all__ = ["mid_slice", "plot_panels"]
