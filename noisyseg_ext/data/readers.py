"""Reading one image or mask file into a numpy array, with its voxel spacing and NIfTI affine.

Formats and the axis order each gives (the tensors of a dataset keep these orders):

* PNG / JPEG / BMP (PIL) and TIFF (tifffile), 2D: (H, W) rows then columns. A colour image
  becomes (3, H, W) (alpha dropped; palette images converted to RGB), or (H, W) when its three
  channels are equal everywhere. A TIFF with a channel axis (tifffile's ``S`` or ``C``) has it
  moved first; any other extra axis (``Z``, ``Q``...) makes it a volume (D, H, W). Spacing 1.0.
* NPY: the array as stored, no axis moved. Whether a leading axis holds channels is decided by the
  loader from the mask: an image with one axis more than its mask is channels-first (C, *spatial).
* NIfTI (nibabel): (X, Y, Z) in voxel-index order as stored, spacing from the header's zooms, the
  4 x 4 affine kept; a 4D image (X, Y, Z, C) has its channels moved first; a singleton last
  spatial axis (X, Y, 1) is dropped, making a 2D (X, Y) image (nnU-Net's 2D NIfTI datasets).

Masks are read without any conversion of their values (palette PNG masks give their palette
indices); a colour mask is accepted only when its R, G and B channels are equal (alpha ignored).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

import numpy as np
from PIL import Image

from noisyseg_ext.errors import DataError

PIL_ENDINGS = (".png", ".jpg", ".jpeg", ".bmp")
TIFF_ENDINGS = (".tif", ".tiff")
NIFTI_ENDINGS = (".nii", ".nii.gz")
IMAGE_ENDINGS = PIL_ENDINGS + TIFF_ENDINGS + (".npy",) + NIFTI_ENDINGS
# JPEG is lossy: its masks would hold values other than the classes, so it is not a mask format.
MASK_ENDINGS = tuple(e for e in IMAGE_ENDINGS if e not in (".jpg", ".jpeg"))


def file_ending(name: str) -> str:
    """The lower-case ending of a file name, ``.nii.gz`` counted as one (``"a.NII.GZ"`` -> ``".nii.gz"``)."""
    lower = name.lower()
    if lower.endswith(".nii.gz"):
        return ".nii.gz"
    return os.path.splitext(lower)[1]


@dataclass
class ArrayFile:
    """What a file holds. array: numpy array in the axis order above; channel_axis: True when
    ``array`` has a leading channel axis, False when it has none, None when unknown (NPY);
    colour: True for an RGB file kept as 3 channels; spacing: per spatial axis or None (unknown,
    1.0 is used); affine: NIfTI 4 x 4 float64 affine or None."""

    array: np.ndarray
    channel_axis: Optional[bool]
    colour: bool = False
    spacing: Optional[tuple[float, ...]] = None
    affine: Optional[np.ndarray] = None


def _rgb_or_grey(rgb: np.ndarray, path: str, role: str) -> ArrayFile:
    """(H, W, 3+) channels-last colour data -> grey (H, W) when R == G == B, else (3, H, W)."""
    rgb = rgb[..., :3]
    if (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 0] == rgb[..., 2]).all():
        return ArrayFile(np.ascontiguousarray(rgb[..., 0]), False)
    if role == "mask":
        where = np.argwhere((rgb[..., 0] != rgb[..., 1]) | (rgb[..., 0] != rgb[..., 2]))[0]
        raise DataError(f"mask {path} is a colour image (R, G, B differ, e.g. {tuple(rgb[tuple(where)].tolist())} "
                        f"at pixel {tuple(where.tolist())}): masks must be grey class maps")
    return ArrayFile(np.ascontiguousarray(np.moveaxis(rgb, -1, 0)), True, colour=True)


def _read_pil(path: str, role: str) -> ArrayFile:
    with Image.open(path) as im:
        mode = im.mode
        if mode == "1":
            return ArrayFile(np.asarray(im, dtype=bool) if role == "mask" else np.asarray(im.convert("L")), False)
        if mode in ("L", "I", "F") or mode.startswith("I;16"):
            return ArrayFile(np.asarray(im), False)
        if mode in ("LA", "La"):
            return ArrayFile(np.asarray(im.getchannel("L")), False)
        if mode in ("P", "PA") and role == "mask":
            return ArrayFile(np.asarray(im.convert("P") if mode == "PA" else im), False)  # palette indices
        rgb = np.asarray(im if mode in ("RGB", "RGBA", "RGBa", "RGBX") else im.convert("RGB"))
    return _rgb_or_grey(rgb, path, role)


def _read_tiff(path: str, role: str) -> ArrayFile:
    import tifffile

    with tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        axes, array = series.axes, series.asarray()
    channel_axes = [k for k, a in enumerate(axes) if a in "SC"]
    if len(channel_axes) > 1:
        raise DataError(f"{role} {path} has several channel axes (tifffile axes {axes!r}, shape {array.shape})")
    if not channel_axes:
        return ArrayFile(array, False)
    k = channel_axes[0]
    if axes[k] == "S" and array.shape[k] in (3, 4) and array.ndim == 3:  # an RGB(A) picture
        return _rgb_or_grey(np.moveaxis(array, k, -1), path, role)
    if role == "mask":
        raise DataError(f"mask {path} has a channel axis (tifffile axes {axes!r}, shape {array.shape}): "
                        "masks must be single-channel class maps")
    return ArrayFile(np.ascontiguousarray(np.moveaxis(array, k, 0)), True)


def _read_nifti(path: str, role: str) -> ArrayFile:
    import nibabel as nib

    img = nib.load(path)
    # Masks keep their stored values (integers, unless the header scales them); images as float32.
    array = np.asanyarray(img.dataobj) if role == "mask" else img.get_fdata(dtype=np.float32)
    zooms = tuple(float(z) for z in img.header.get_zooms())
    if array.ndim == 5 and array.shape[3] == 1:  # (X, Y, Z, 1, C): a vector image, time axis empty
        array = array[:, :, :, 0]
    channel_axis = False
    if array.ndim == 4:
        if role == "mask":
            if array.shape[3] != 1:
                raise DataError(f"mask {path} is 4D {array.shape}: masks must be 2D or 3D class maps")
            array = array[..., 0]
        else:
            array, channel_axis = np.moveaxis(array, -1, 0), True
    spatial = array.shape[1:] if channel_axis else array.shape
    if len(spatial) == 3 and spatial[2] == 1:   # (X, Y, 1): a 2D image stored as NIfTI
        array = array[..., 0]
        spatial = spatial[:2]
    if len(spatial) not in (2, 3):
        raise DataError(f"{role} {path} has shape {img.shape}: expected 2D or 3D data (channels last for 4D images)")
    return ArrayFile(np.ascontiguousarray(array), channel_axis, spacing=zooms[:len(spatial)],
                     affine=np.asarray(img.affine, dtype=np.float64))


def read_file(path: str, role: str) -> ArrayFile:
    """Reads ``path`` as an ``"image"`` or a ``"mask"`` (``role``); axis orders in the module docstring.

    Raises DataError naming the file when it cannot be read or its layout is not supported."""
    ending = file_ending(path)
    allowed = IMAGE_ENDINGS if role == "image" else MASK_ENDINGS
    if ending not in allowed:
        raise DataError(f"{role} {path}: unsupported file type {ending!r}; expected one of {', '.join(allowed)}")
    try:
        if ending in PIL_ENDINGS:
            out = _read_pil(path, role)
        elif ending in TIFF_ENDINGS:
            out = _read_tiff(path, role)
        elif ending in NIFTI_ENDINGS:
            out = _read_nifti(path, role)
        else:
            out = ArrayFile(np.load(path, allow_pickle=False), None)
    except DataError:
        raise
    except ImportError as exc:
        raise DataError(f"{role} {path}: reading {ending} files needs a package that is not installed ({exc})") from None
    except Exception as exc:  # a truncated or corrupt file: name it, keep the reader's reason
        raise DataError(f"cannot read {role} {path}: {type(exc).__name__}: {exc}") from None
    # PIL's arrays are read-only views: torch.from_numpy needs writable, contiguous memory.
    out.array = np.require(out.array, requirements=["C", "W"])
    return out
