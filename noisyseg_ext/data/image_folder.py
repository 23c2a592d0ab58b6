"""A folder of images without masks, prepared like a training run's images (``noisyseg predict``).

Files: every image file of the folder (PNG, TIFF, NPY, NIfTI, JPEG...); nnU-Net channel files
``CASE_0000.nii.gz``, ``CASE_0001.nii.gz`` are stacked as the channels of one case ``CASE``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
from torch import Tensor

from noisyseg_ext.errors import DataError
from noisyseg_ext.data.folder_layout import data_files, require_folder
from noisyseg_ext.data.items import fit_channels, fmt_shape, prepare_image
from noisyseg_ext.data.readers import IMAGE_ENDINGS, file_ending, read_file

_CHANNEL_SUFFIX = re.compile(r"^(.+)_(\d{4})$")


@dataclass
class InputImage:
    """name: the case (file name without the channel suffix, with its ending for single files);
    image: (C, *size) float32 prepared (resized, normalised); original_shape: spatial shape as read;
    source: the first file; affine: its NIfTI affine or None; ending: its file ending."""

    name: str
    image: Tensor
    original_shape: tuple[int, ...]
    source: str
    affine: Optional[np.ndarray]
    ending: str


def _cases(folder: str) -> list[tuple[str, list[str]]]:
    """(case name, its files in channel order): files named NAME_0000, NAME_0001 (same ending) are one
    case NAME; any other file is a case of its own."""
    groups: dict[tuple[str, str], list[tuple[int, str]]] = {}
    singles = []
    for f in data_files(folder, IMAGE_ENDINGS):
        ending = file_ending(f)
        stem = f[: -len(ending)]
        m = _CHANNEL_SUFFIX.match(stem)
        if m:
            groups.setdefault((m.group(1), ending), []).append((int(m.group(2)), f))
        else:
            singles.append((f, [f]))
    cases = singles
    for (name, ending), files in groups.items():
        files.sort()
        if [c for c, _ in files] != list(range(len(files))):
            raise DataError(f"{folder}: the channel files of {name} are {', '.join(f for _, f in files)}; "
                            "expected _0000, _0001, ... without gaps")
        cases.append((name, [f for _, f in files]))
    return sorted(cases)


def load_image_folder(folder: str, *, dims: int, channels: int, size: Optional[Sequence[int]] = None,
                      normalize: str = "zscore") -> list[InputImage]:
    """Reads and prepares every image of ``folder`` for a network trained on ``dims``-D images with
    ``channels`` channels, with the training run's ``size`` and ``normalize``.

    Raises DataError for a missing or empty folder, an unreadable file, or an image whose
    dimensionality or channel count does not fit the network."""
    require_folder(folder, "--input folder")
    cases = _cases(folder)
    if not cases:
        raise DataError(f"--input folder {folder} holds no image files ({', '.join(IMAGE_ENDINGS)})")
    out = []
    for name, files in cases:
        arrays, first = [], None
        for f in files:
            path = os.path.join(folder, f)
            a = read_file(path, "image")
            first = first or a
            arr = a.array
            has_channels = a.channel_axis if a.channel_axis is not None else arr.ndim == dims + 1
            arrays.append(arr if has_channels else arr[None])
        shapes = {tuple(x.shape[1:]) for x in arrays}
        if len(shapes) > 1:
            raise DataError(f"{folder}: the channel files of {name} differ in size")
        image = np.concatenate(arrays, 0).astype(np.float32, copy=False)
        spatial = tuple(image.shape[1:])
        if len(spatial) != dims:
            raise DataError(f"{os.path.join(folder, files[0])} is {len(spatial)}D ({fmt_shape(spatial)}); the network "
                            f"was trained on {dims}D images")
        path0 = os.path.join(folder, files[0])
        expandable = first.channel_axis is False and len(files) == 1 and file_ending(path0) not in (".npy", ".nii", ".nii.gz")
        t = fit_channels(prepare_image(image, size, normalize), channels, expandable, path0)
        out.append(InputImage(name, t, spatial, path0, first.affine, file_ending(files[0])))
    return out
