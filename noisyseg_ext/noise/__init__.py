"""Synthetic label noise: the papers' corruption protocols, records, a dataset wrapper, reports."""

from noisyseg_ext.noise.dataset import NoisyMaskDataset
from noisyseg_ext.noise.overlap import dice_per_sample
from noisyseg_ext.noise.protocols import DEFAULTS, PROTOCOLS, corrupt_labels
from noisyseg_ext.noise.records import NoiseRecord

__all__ = ["DEFAULTS", "PROTOCOLS", "NoiseRecord", "NoisyMaskDataset", "corrupt_labels", "dice_per_sample"]
