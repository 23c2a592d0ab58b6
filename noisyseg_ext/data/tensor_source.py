"""Datasets given as tensors from Python (and the embedded HC18 sample, which is stored as arrays)."""

from __future__ import annotations

from typing import Optional, Sequence, Union

import numpy as np
import torch
from torch import Tensor

from noisyseg_ext.errors import DataError
from noisyseg_ext.data.items import check_dims, check_size, mask_dtype, prepare_image, prepare_mask
from noisyseg_ext.data.mask_values import dataset_classes, mask_to_classes
from noisyseg_ext.data.segmentation_set import SegmentationSet
from noisyseg_ext.data.subjects import subjects_of
from noisyseg_ext.data.transforms import resized_spacing

TensorItems = Union[Tensor, np.ndarray, Sequence[Union[Tensor, np.ndarray]]]


def _items(x: TensorItems, what: str) -> list[Tensor]:
    if isinstance(x, (Tensor, np.ndarray)):
        return list(torch.as_tensor(x).unbind(0)) if x.ndim else []
    if isinstance(x, (list, tuple)):
        return [torch.as_tensor(v) for v in x]
    raise DataError(f"{what} must be a tensor or a list of tensors; got {type(x).__name__}")


def from_tensors(images: TensorItems, masks: TensorItems, names: Optional[Sequence[str]] = None, *,
                 noisy_masks: Optional[TensorItems] = None, size: Optional[Sequence[int]] = None,
                 normalize: str = "zscore", subject_regex: Optional[str] = None, num_classes: Optional[int] = None,
                 description: str = "tensors") -> SegmentationSet:
    """A SegmentationSet from images (N, C, *sp), (N, *sp) or a list of (C, *sp) / (*sp), and masks
    (N, *sp) or a list of (*sp) (bool / integer / whole-number float, the mask rule of
    :func:`noisyseg_ext.data.load_dataset`); names default to ``item_0000``...; spacing 1.0."""
    image_items, mask_items = _items(images, "images"), _items(masks, "masks")
    if len(image_items) != len(mask_items):
        raise DataError(f"{description}: {len(image_items)} images but {len(mask_items)} masks")
    if not mask_items:
        raise DataError(f"{description}: no images")
    names = [f"item_{i:04d}" for i in range(len(mask_items))] if names is None else [str(n) for n in names]
    if len(names) != len(mask_items):
        raise DataError(f"{description}: {len(names)} names for {len(mask_items)} images")
    if len(set(names)) != len(names):
        raise DataError(f"{description}: names are not unique")
    noisy_items = None if noisy_masks is None else _items(noisy_masks, "noisy_masks")
    if noisy_items is not None and len(noisy_items) != len(mask_items):
        raise DataError(f"{description}: {len(noisy_items)} noisy masks for {len(mask_items)} images")

    classes, noisy_classes, prepared, shapes = [], [], [], []
    for i, (image, mask) in enumerate(zip(image_items, mask_items)):
        where = f"{description}[{i}] ({names[i]})"
        c = mask_to_classes(mask.detach().cpu().numpy().copy(), where)  # never share the caller's memory
        spatial = tuple(c.labels.shape)
        check_dims(spatial, f"mask {where}")
        check_size(size, spatial, where)
        if image.dim() == len(spatial):
            image = image[None]
        if tuple(image.shape[1:]) != spatial:
            raise DataError(f"image {where} has shape {tuple(image.shape)} but its mask is {spatial}")
        if noisy_items is not None:
            nc = mask_to_classes(noisy_items[i].detach().cpu().numpy().copy(), f"noisy {where}")
            if tuple(nc.labels.shape) != spatial:
                raise DataError(f"noisy mask {where} has shape {tuple(nc.labels.shape)} but the mask is {spatial}")
            nc.labels = prepare_mask(torch.from_numpy(nc.labels), size)
            noisy_classes.append(nc)
        c.labels = prepare_mask(torch.from_numpy(c.labels), size)
        classes.append(c)
        prepared.append(prepare_image(image.detach().cpu().clone(), size, normalize))
        shapes.append(spatial)
    wheres = [f"{description}[{i}]" for i in range(len(names))]
    n_classes = dataset_classes(classes, wheres, num_classes)
    if noisy_items is not None:
        dataset_classes(noisy_classes, wheres, n_classes, "the clean masks")
    channel_counts = {p.shape[0] for p in prepared}
    if len(channel_counts) > 1:
        raise DataError(f"{description}: images have different channel counts {sorted(channel_counts)}")
    dims = {len(s) for s in shapes}
    if len(dims) > 1:
        raise DataError(f"{description} mixes 2D and 3D data")
    dtype = mask_dtype(n_classes)
    spacing = [(1.0,) * len(s) if size is None else resized_spacing((1.0,) * len(s), s, size) for s in shapes]
    return SegmentationSet(
        images=prepared, masks=[c.labels.to(dtype) for c in classes],
        noisy_masks=None if noisy_items is None else [c.labels.to(dtype) for c in noisy_classes],
        names=names, subjects=subjects_of(names, subject_regex), spacings=spacing,
        affines=[None] * len(names), original_shapes=shapes, sources=[""] * len(names), num_classes=n_classes,
        dims=dims.pop(), in_channels=channel_counts.pop(), subject_regex=subject_regex, description=description)
