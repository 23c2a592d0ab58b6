"""Loading a list of file cases (from the folder or nnU-Net layout) into a :class:`SegmentationSet`.

Files are read in a thread pool (PIL, tifffile, nibabel and torch release the GIL while decoding
and resizing), in the cases' order; the first bad file raises its DataError.
"""

from __future__ import annotations

import contextlib
import functools
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch
from torch import Tensor

from noisyseg_ext.errors import DataError
from noisyseg_ext.data.folder_layout import FileCase
from noisyseg_ext.data.items import (channels_first, check_dims, check_size, fit_channels, fmt_shape, mask_dtype,
                                     prepare_image, prepare_mask)
from noisyseg_ext.data.mask_values import MaskClasses, dataset_classes, mask_to_classes
from noisyseg_ext.data.readers import read_file
from noisyseg_ext.data.segmentation_set import LazyImages, SegmentationSet
from noisyseg_ext.data.subjects import subjects_of
from noisyseg_ext.data.transforms import resized_spacing


@contextlib.contextmanager
def single_torch_thread():
    """One intra-op thread while the pool's threads run small torch ops in parallel: OpenMP teams
    per op on a busy machine cost far more than they save (measured 47 ms vs 1 ms to normalise a
    216 x 320 image on 2 shared cores). The previous count is restored."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass
class _Loaded:
    image: Optional[Tensor]          # (C, *size) float32; None when images are lazy
    channels: int
    expandable: bool                 # a 1-channel PNG/TIFF picture (may join a colour dataset)
    mask: MaskClasses                # labels already resized
    noisy: Optional[MaskClasses]
    spacing: tuple[float, ...]
    affine: Optional[np.ndarray]
    original_shape: tuple[int, ...]


def _read_image(case: FileCase, spatial: Sequence[int]):
    """The case's channel files stacked as (C, *spatial) float32, with the first file's spacing,
    affine, and whether it is an expandable grey picture."""
    arrays, first = [], None
    for path in case.image_paths:
        f = read_file(path, "image")
        first = first or f
        arrays.append(channels_first(f.array, f.channel_axis, spatial, path))
    image = np.concatenate(arrays, 0).astype(np.float32, copy=False) if len(arrays) > 1 else \
        arrays[0].astype(np.float32, copy=False)
    expandable = first.channel_axis is False and len(arrays) == 1 and not case.image_paths[0].lower().endswith(
        (".npy", ".nii", ".nii.gz"))
    return image, expandable, first.spacing, first.affine


def _read_mask(path: str, spatial: Optional[Sequence[int]] = None) -> MaskClasses:
    f = read_file(path, "mask")
    classes = mask_to_classes(f.array, path)
    check_dims(classes.labels.shape, f"mask {path}")
    if spatial is not None and tuple(classes.labels.shape) != tuple(spatial):
        raise DataError(f"noisy mask {path} is {fmt_shape(classes.labels.shape)} but the clean mask is "
                        f"{fmt_shape(spatial)}")
    return classes


def _load_case(case: FileCase, size, how: str, lazy: bool) -> _Loaded:
    mask_file = read_file(case.mask_path, "mask")
    mask = mask_to_classes(mask_file.array, case.mask_path)
    spatial = tuple(mask.labels.shape)
    check_dims(spatial, f"mask {case.mask_path}")
    check_size(size, spatial, case.mask_path)
    noisy = _read_mask(case.noisy_path, spatial) if case.noisy_path else None
    image, expandable, spacing, affine = _read_image(case, spatial)
    spacing = spacing or mask_file.spacing or (1.0,) * len(spatial)
    channels = image.shape[0]
    prepared = None if lazy else prepare_image(image, size, how)
    if size is not None:
        spacing = resized_spacing(spacing, spatial, size)
        mask.labels = prepare_mask(mask.labels, size).numpy()
        if noisy is not None:
            noisy.labels = prepare_mask(noisy.labels, size).numpy()
    return _Loaded(prepared, channels, expandable, mask, noisy, tuple(spacing),
                   affine if affine is not None else mask_file.affine, spatial)


def _lazy_image(key: tuple[FileCase, tuple[int, ...]], *, size, how: str, channels: int) -> Tensor:
    """One image of a lazily loaded set (key: its case and mask shape), read and prepared exactly as
    the eager loader does. A module-level function: picklable for spawned DataLoader workers."""
    case, spatial = key
    image, expandable, _, _ = _read_image(case, spatial)
    return fit_channels(prepare_image(image, size, how), channels, expandable, case.image_paths[0])


def _dataset_channels(loaded: list[_Loaded], cases: list[FileCase], declared: Optional[int]) -> int:
    """The dataset's channel count: the declared one (nnU-Net), else the only one present, else 3
    when grey pictures join colour ones (they are repeated); DataError otherwise."""
    counts = {x.channels for x in loaded}
    if declared is None and len(counts) == 1:
        return counts.pop()
    target = declared if declared is not None else max(counts)
    for x, case in zip(loaded, cases):
        if x.channels == target or (x.expandable and x.channels == 1 and target == 3):
            continue
        if declared is not None:
            raise DataError(f"image {case.image_paths[0]} has {x.channels} channel(s) but dataset.json declares "
                            f"{declared}")
        y, other = next((y, c) for y, c in zip(loaded, cases) if y.channels != x.channels)
        raise DataError(f"images have different channel counts: {case.image_paths[0]} has {x.channels}, "
                        f"{other.image_paths[0]} has {y.channels}")
    return target


def load_cases(cases: list[FileCase], *, size: Optional[Sequence[int]], normalize: str,
               subject_regex: Optional[str], description: str, num_classes: Optional[int] = None,
               classes_declared_by: str = "num_classes", channels: Optional[int] = None,
               lazy_images: bool = False) -> SegmentationSet:
    """Reads, checks, resizes and normalises ``cases`` (see :func:`noisyseg_ext.data.load_dataset`)."""
    if not cases:
        raise DataError(f"{description} holds no images")
    subjects = subjects_of([c.name for c in cases], subject_regex)
    workers = min(8, (os.cpu_count() or 1) + 2, len(cases))
    load = functools.partial(_load_case, size=size, how=normalize, lazy=lazy_images)
    with single_torch_thread(), ThreadPoolExecutor(max_workers=workers) as pool:
        loaded = list(pool.map(load, cases))
    dims = {x.mask.labels.ndim for x in loaded}
    if len(dims) > 1:
        a = next(c for x, c in zip(loaded, cases) if x.mask.labels.ndim == 2)
        b = next(c for x, c in zip(loaded, cases) if x.mask.labels.ndim == 3)
        raise DataError(f"{description} mixes 2D and 3D data ({a.mask_path}, {b.mask_path})")
    n_classes = dataset_classes([x.mask for x in loaded], [c.mask_path for c in cases], num_classes,
                                classes_declared_by)
    has_noisy = cases[0].noisy_path is not None
    if has_noisy:
        dataset_classes([x.noisy for x in loaded], [c.noisy_path for c in cases], n_classes, "the clean masks")
    in_channels = _dataset_channels(loaded, cases, channels)
    dtype = mask_dtype(n_classes)
    if lazy_images:
        images: Sequence[Tensor] = LazyImages(
            functools.partial(_lazy_image, size=size, how=normalize, channels=in_channels),
            [(c, x.original_shape) for c, x in zip(cases, loaded)])
    else:
        images = [fit_channels(x.image, in_channels, x.expandable, c.image_paths[0]) for x, c in zip(loaded, cases)]
    return SegmentationSet(
        images=images,
        masks=[torch.from_numpy(x.mask.labels).to(dtype) for x in loaded],
        noisy_masks=[torch.from_numpy(x.noisy.labels).to(dtype) for x in loaded] if has_noisy else None,
        names=[c.name for c in cases], subjects=subjects, spacings=[x.spacing for x in loaded],
        affines=[x.affine for x in loaded], original_shapes=[x.original_shape for x in loaded],
        sources=[c.image_paths[0] for c in cases], num_classes=n_classes, dims=dims.pop(),
        in_channels=in_channels, subject_regex=subject_regex, description=description)
