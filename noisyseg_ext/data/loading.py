"""``load_dataset``: every data source (folder, nnU-Net raw, the embedded sample, tensors) as one
:class:`SegmentationSet`."""

from __future__ import annotations

import os
from typing import Optional, Sequence, Union

from noisyseg_ext.errors import DataError
from noisyseg_ext.data.file_loading import load_cases
from noisyseg_ext.data.folder_layout import folder_cases, require_folder
from noisyseg_ext.data.nnunet_layout import is_nnunet_folder, nnunet_dataset
from noisyseg_ext.data.segmentation_set import SegmentationSet
from noisyseg_ext.data.subjects import HC18_SUBJECT_REGEX, looks_like_hc18
from noisyseg_ext.data.tensor_source import from_tensors
from noisyseg_ext.data.transforms import NORMALIZATIONS

HC18_SAMPLE = "hc18-sample"


def _check_size(size) -> Optional[tuple[int, ...]]:
    if size is None:
        return None
    size = tuple(int(s) for s in size)
    if len(size) not in (2, 3) or any(s < 1 for s in size):
        raise DataError(f"--size must be HxW or DxHxW with positive sizes; got {'x'.join(map(str, size))}")
    return size


def load_hc18_sample_set(*, size=None, normalize: str = "zscore",
                         subject_regex: Optional[str] = None) -> SegmentationSet:
    """The embedded HC18 sample (64 images 108 x 160, one per subject) as a SegmentationSet."""
    from noisyseg_ext.data.sample import load_hc18_sample

    images, masks, names = load_hc18_sample()
    return from_tensors(images, masks, names, size=size, normalize=normalize,
                        subject_regex=subject_regex or HC18_SUBJECT_REGEX, description=HC18_SAMPLE)


def load_dataset(source: Union[str, os.PathLike, tuple], *, size: Optional[Sequence[int]] = None,
                 subject_regex: Optional[str] = None, noisy_masks=None, normalize: str = "zscore",
                 num_classes: Optional[int] = None, lazy_images: bool = False) -> SegmentationSet:
    """Loads a segmentation dataset.

    Args:
        source: one of
            * a folder with ``images/`` and ``masks/`` holding the same file names (PNG, TIFF, NPY,
              NIfTI; as ../shared/data/hc18);
            * an nnU-Net raw dataset folder (``dataset.json``, ``imagesTr/CASE_0000<ending>``, one
              file per channel, ``labelsTr/CASE<ending>``), recognised by its dataset.json or
              imagesTr/; 2D (``.png``...) or 3D (``.nii.gz``) per dataset.json's ``file_ending``;
            * ``"hc18-sample"``: the 64 HC18 images embedded in the package (108 x 160);
            * a tuple ``(images, masks)`` or ``(images, masks, names)`` of tensors / arrays: images
              (N, C, *spatial), (N, *spatial) or a list of (C, *spatial) / (*spatial); masks
              (N, *spatial) or a list of (*spatial).
        size: resize every item to (H, W) or (D1, D2, D3) (tensor axis order): images bilinear /
            trilinear, masks nearest; spacings become spacing * old / new. None: as stored.
        subject_regex: groups files into subjects (group 1, or the whole match); default: HC18's
            leading number for HC18 names (``NNN_HC``, ``NNN_2HC``) and the sample, else one
            subject per file.
        noisy_masks: real noisy training labels: a folder with the mask file names (folder
            layout) or ``CASE<ending>`` files (nnU-Net); for tensor sources a tensor / list like
            ``masks``. The clean masks are then the evaluation reference only.
        normalize: per image and channel: ``"zscore"`` (mean 0, std 1; only the mean is removed
            when the std is 0), ``"minmax"`` ([0, 1]) or ``"none"``.
        num_classes: declare C (values must lie below it; no check that every class occurs).
            nnU-Net datasets declare it in dataset.json's ``labels``.
        lazy_images: keep only the masks in memory and read each image when it is indexed (large
            sets; every image is still read once here to check it).

    Axis conventions (see ``noisyseg_ext.data.readers``): PNG / TIFF (H, W), colour files
    (3, H, W) unless R == G == B everywhere (then 1 channel; a grey picture in a colour dataset is
    repeated to 3 channels), TIFF channel axes moved first and other extra axes making a volume;
    NPY as stored, an image with one axis more than its mask being channels-first (C, *spatial);
    NIfTI (X, Y, Z) as stored with the header's spacing and affine, 4D images (X, Y, Z, C) with
    channels moved first, (X, Y, 1) read as 2D (X, Y).

    Mask rule: a mask whose values are {0, 255} (or {255}) is binary (255 -> 1); otherwise its
    values must be whole numbers 0..C-1 (so 0/1 is binary too), with C = the largest class over
    the dataset + 1 (at least 2) and every class 1..C-1 present in some mask, or C as declared
    (dataset.json, ``num_classes``). Colour masks must have R == G == B. Anything else (e.g.
    {0, 128, 255}, negative or fractional values, 0/255 masks mixed with multi-class masks,
    values at or above a declared C) is a DataError naming the file and the values.

    Returns:
        A :class:`SegmentationSet`: images (C_in, *spatial) float32 normalised, masks (*spatial)
        uint8 (int64 above 256 classes), sorted by name for folders.

    Raises:
        DataError: a missing or empty folder, unpaired images / masks (named), unreadable files,
        unexpected mask values, images whose shape does not match their mask, mixed channel
        counts or dimensionalities, a ``size`` with the wrong number of axes, a regex that does
        not match a name. Mixed image sizes are allowed here (3D patch training);
        :meth:`SegmentationSet.require_same_size` and whole-image :class:`TrainSet` refuse them.
    """
    size = _check_size(size)
    if normalize not in NORMALIZATIONS:
        raise DataError(f"normalize must be one of {', '.join(NORMALIZATIONS)}; got {normalize!r}")
    if isinstance(source, tuple):
        if len(source) not in (2, 3):
            raise DataError(f"a tensor source is (images, masks) or (images, masks, names); got {len(source)} items")
        if noisy_masks is not None and isinstance(noisy_masks, (str, os.PathLike)):
            raise DataError("with a tensor source, noisy_masks must be tensors like the masks, not a folder")
        return from_tensors(*source, noisy_masks=noisy_masks, size=size, normalize=normalize,
                            subject_regex=subject_regex, num_classes=num_classes)
    if not isinstance(source, (str, os.PathLike)):
        raise DataError(f"data source must be a folder, '{HC18_SAMPLE}' or a tuple of tensors; got "
                        f"{type(source).__name__}")
    source = os.fspath(source)
    if source == HC18_SAMPLE:
        if noisy_masks is not None:
            raise DataError(f"--noisy-masks cannot be used with {HC18_SAMPLE}")
        return load_hc18_sample_set(size=size, normalize=normalize, subject_regex=subject_regex)
    if noisy_masks is not None and not isinstance(noisy_masks, (str, os.PathLike)):
        raise DataError("with a folder source, --noisy-masks must be a folder")
    noisy_dir = None if noisy_masks is None else os.fspath(noisy_masks)
    if not os.path.exists(source):
        raise DataError(f"data folder {source} does not exist (a folder with images/ and masks/, an nnU-Net "
                        f"dataset, or '{HC18_SAMPLE}')")
    require_folder(source, "data folder")
    if is_nnunet_folder(source):
        nn = nnunet_dataset(source, noisy_dir)
        if num_classes is not None and num_classes != nn.num_classes:
            raise DataError(f"num_classes={num_classes} but {source}/dataset.json declares {nn.num_classes}")
        return load_cases(nn.cases, size=size, normalize=normalize, subject_regex=subject_regex,
                          description=f"nnU-Net dataset {source}", num_classes=nn.num_classes,
                          classes_declared_by=f"{source}/dataset.json", channels=nn.channels,
                          lazy_images=lazy_images)
    cases = folder_cases(source, noisy_dir)
    if subject_regex is None and looks_like_hc18([c.name for c in cases]):
        subject_regex = HC18_SUBJECT_REGEX
    return load_cases(cases, size=size, normalize=normalize, subject_regex=subject_regex,
                      description=f"data folder {source}", num_classes=num_classes, lazy_images=lazy_images)
