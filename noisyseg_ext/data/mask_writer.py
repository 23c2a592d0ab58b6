"""``save_mask``: writing a predicted (or any) class map as PNG, TIFF, NPY or NIfTI."""

from __future__ import annotations

import os
from typing import Optional

import numpy as np
from PIL import Image
from torch import Tensor

from noisyseg_ext.errors import DataError
from noisyseg_ext.data.readers import IMAGE_ENDINGS, NIFTI_ENDINGS, TIFF_ENDINGS, file_ending

MASK_WRITE_ENDINGS = (".png",) + TIFF_ENDINGS + (".npy",) + NIFTI_ENDINGS


def mask_file_name(name: str, ending: str = ".png") -> str:
    """The file name of an item's mask: its name without an image ending, plus ``ending``
    (``"012_HC.png"`` -> ``"012_HC.png"``, ``"la_003"`` + ``".nii.gz"`` -> ``"la_003.nii.gz"``)."""
    current = file_ending(name)
    stem = name[: -len(current)] if current in IMAGE_ENDINGS else name
    return stem + ending


def _affine_of(like: Optional[str]) -> Optional[np.ndarray]:
    if like is None or file_ending(os.fspath(like)) not in NIFTI_ENDINGS:
        return None
    import nibabel as nib

    return np.asarray(nib.load(os.fspath(like)).affine, dtype=np.float64)


def save_mask(path: str | os.PathLike, mask: Tensor | np.ndarray, *, like: Optional[str | os.PathLike] = None,
              affine: Optional[np.ndarray] = None, num_classes: Optional[int] = None) -> None:
    """Writes ``mask`` (*spatial) of integer classes 0..C-1 to ``path``, chosen by its ending.

    * ``.png`` (2D only, 8-bit grey): binary masks (``num_classes == 2``, or values in {0, 1}
      when num_classes is None) as 0/255, like the input masks; otherwise the class values.
    * ``.tif`` / ``.tiff`` / ``.npy``: the class values (uint8, or int32 / int64 when larger).
    * ``.nii`` / ``.nii.gz``: the class values with ``affine`` (4 x 4), else the affine of the
      NIfTI file ``like`` (the input image the mask belongs to), else the identity; a 2D mask is
      written as (X, Y, 1).
    Parent folders are created. DataError for another ending, a 3D PNG or values out of range.
    """
    path = os.fspath(path)
    array = mask.detach().cpu().numpy() if isinstance(mask, Tensor) else np.asarray(mask)
    if array.dtype == bool:
        array = array.astype(np.uint8)
    if array.dtype.kind not in "iu":
        raise DataError(f"save_mask {path}: expected an integer class map; got dtype {array.dtype}")
    top = int(array.max()) if array.size else 0
    if array.size and int(array.min()) < 0:
        raise DataError(f"save_mask {path}: negative class values")
    ending = file_ending(path)
    if ending not in MASK_WRITE_ENDINGS:
        raise DataError(f"save_mask {path}: unsupported ending {ending!r}; expected one of "
                        f"{', '.join(MASK_WRITE_ENDINGS)}")
    folder = os.path.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    stored = array.astype(np.uint8 if top <= 255 else (np.int32 if top < 2 ** 31 else np.int64))
    if ending == ".png":
        if array.ndim != 2:
            raise DataError(f"save_mask {path}: PNG holds 2D masks; got shape {array.shape} (use .nii.gz)")
        binary = num_classes == 2 if num_classes is not None else top <= 1
        if top > 255 or (binary and top > 1):
            raise DataError(f"save_mask {path}: values up to {top} do not fit an 8-bit "
                            f"{'binary ' if binary else ''}PNG")
        Image.fromarray(stored * 255 if binary else stored).save(path)
    elif ending in TIFF_ENDINGS:
        import tifffile

        tifffile.imwrite(path, stored)
    elif ending == ".npy":
        np.save(path, stored)
    else:
        import nibabel as nib

        if array.ndim not in (2, 3):
            raise DataError(f"save_mask {path}: NIfTI masks are 2D or 3D; got shape {array.shape}")
        matrix = affine if affine is not None else _affine_of(like)
        matrix = np.eye(4) if matrix is None else np.asarray(matrix, dtype=np.float64)
        if matrix.shape != (4, 4):
            raise DataError(f"save_mask {path}: the affine must be 4 x 4; got {matrix.shape}")
        img = nib.Nifti1Image(stored[..., None] if array.ndim == 2 else stored, matrix)
        img.set_qform(matrix, code=1)
        img.set_sform(matrix, code=1)
        nib.save(img, path)
