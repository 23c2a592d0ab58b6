"""Data: the embedded HC18 sample and dataset loaders."""

from noisyseg_ext.data.hc18 import HC18Data, HC18Dataset, load_hc18, split_names, subject_of
from noisyseg_ext.data.sample import load_hc18_sample

__all__ = ["HC18Data", "HC18Dataset", "load_hc18", "load_hc18_sample", "split_names", "subject_of"]
