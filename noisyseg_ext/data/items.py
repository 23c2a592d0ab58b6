"""Turning one item's arrays into the dataset's tensors: channel axis, size checks, resize, normalise."""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import torch
from torch import Tensor

from noisyseg_ext.errors import DataError
from noisyseg_ext.data.transforms import normalize, resize_image, resize_mask


def fmt_shape(shape: Sequence[int]) -> str:
    return "x".join(str(int(s)) for s in shape)


def channels_first(array: np.ndarray, channel_axis: Optional[bool], spatial: Sequence[int], where: str) -> np.ndarray:
    """image array -> (C, *spatial): ``channel_axis`` True: its first axis holds channels; False:
    no channel axis; None (NPY): decided by comparing with the mask's ``spatial`` shape (one axis
    more: channels first). DataError naming ``where`` when the shapes do not fit the mask's."""
    if channel_axis is None:
        channel_axis = array.ndim == len(spatial) + 1
    out = array if channel_axis else array[None]
    if tuple(out.shape[1:]) != tuple(spatial):
        raise DataError(f"image {where} has shape {fmt_shape(array.shape)} but its mask is {fmt_shape(spatial)} "
                        "(images are (*spatial) or channels-first (C, *spatial), the mask's spatial shape)")
    return out


def check_size(size: Optional[Sequence[int]], spatial: Sequence[int], where: str) -> None:
    """DataError when ``size`` (the --size option) has another number of axes than the data."""
    if size is not None and len(size) != len(spatial):
        raise DataError(f"--size {fmt_shape(size)} has {len(size)} axes but {where} is {len(spatial)}D "
                        f"({fmt_shape(spatial)})")


def check_dims(spatial: Sequence[int], where: str) -> None:
    if len(spatial) not in (2, 3):
        raise DataError(f"{where} has shape {fmt_shape(spatial)}: expected a 2D or 3D mask")


def prepare_image(image: np.ndarray | Tensor, size: Optional[Sequence[int]], how: str) -> Tensor:
    """(C, *spatial) numbers -> (C, *size) float32, resized (bilinear / trilinear) then normalised."""
    t = torch.as_tensor(image).to(torch.float32)
    if size is not None:
        t = resize_image(t, size)
    return normalize(t.contiguous(), how)


def prepare_mask(labels: np.ndarray | Tensor, size: Optional[Sequence[int]]) -> Tensor:
    """(*spatial) class map -> (*size) same dtype, nearest neighbour."""
    t = torch.as_tensor(labels)
    if size is not None:
        t = resize_mask(t, size)
    return t.contiguous()


def mask_dtype(num_classes: int) -> torch.dtype:
    """uint8 for up to 256 classes, else int64."""
    return torch.uint8 if num_classes <= 256 else torch.int64


def fit_channels(image: Tensor, channels: int, expandable: bool, where: str) -> Tensor:
    """A grey picture (1 channel from PNG/TIFF, ``expandable``) is repeated to a colour dataset's 3
    channels; any other channel count differing from the dataset's ``channels`` is a DataError."""
    if image.shape[0] == channels:
        return image
    if expandable and image.shape[0] == 1 and channels == 3:
        return image.expand(3, *image.shape[1:]).contiguous()
    raise DataError(f"image {where} has {image.shape[0]} channel(s) but the dataset has {channels}")
