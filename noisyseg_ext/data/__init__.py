"""Data: loading datasets (folders, nnU-Net raw, the embedded HC18 sample, tensors), subject
splits, the corrupted training set with its augmented samples and batch order, mask writing.

The older HC18-only loader (``load_hc18``, ``split_names``...) stays for the noise report."""

from noisyseg_ext.data.augment import Augmentation, augment
from noisyseg_ext.data.batch_order import BatchOrder
from noisyseg_ext.data.batches import train_batches
from noisyseg_ext.data.hc18 import HC18Data, HC18Dataset, load_hc18, split_names, subject_of
from noisyseg_ext.data.loading import HC18_SAMPLE, load_dataset
from noisyseg_ext.data.mask_writer import mask_file_name, save_mask
from noisyseg_ext.data.sample import load_hc18_sample
from noisyseg_ext.data.segmentation_set import LazyImages, SegmentationSet
from noisyseg_ext.data.splits import SPLIT_NAMES, Splits, load_splits, make_splits, save_splits
from noisyseg_ext.data.subjects import HC18_SUBJECT_REGEX
from noisyseg_ext.data.synthetic import synthetic_dataset
from noisyseg_ext.data.train_set import TrainSet, stack_samples
from noisyseg_ext.data.transforms import normalize, pad_to, padded_shape, resize_image, resize_mask

__all__ = ["Augmentation", "BatchOrder", "HC18Data", "HC18Dataset", "HC18_SAMPLE", "HC18_SUBJECT_REGEX", "LazyImages",
           "SPLIT_NAMES", "SegmentationSet", "Splits", "TrainSet", "augment", "load_dataset", "load_hc18",
           "load_hc18_sample", "load_splits", "make_splits", "mask_file_name", "normalize", "pad_to", "padded_shape", "resize_image",
           "resize_mask", "save_mask", "save_splits", "split_names", "stack_samples", "subject_of", "synthetic_dataset",
           "train_batches"]
