"""Dataset loaders."""

from noisyseg_ext.data.hc18 import HC18Data, HC18Dataset, load_hc18, split_names, subject_of

__all__ = ["HC18Data", "HC18Dataset", "load_hc18", "split_names", "subject_of"]
