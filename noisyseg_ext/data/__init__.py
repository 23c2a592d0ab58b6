"""Data: the embedded HC18 sample and dataset loaders."""

from noisyseg_ext.data.sample import load_hc18_sample

__all__ = ["load_hc18_sample"]
