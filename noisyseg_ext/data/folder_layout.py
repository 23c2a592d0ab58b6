"""The plain folder layout: ``images/`` and ``masks/`` holding the same file names (as ../shared/data/hc18),
optionally a folder of real noisy masks with those names too."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

from noisyseg_ext.errors import DataError
from noisyseg_ext.data.readers import IMAGE_ENDINGS, MASK_ENDINGS, file_ending


@dataclass(frozen=True)
class FileCase:
    """One item's files: name (its identifier in splits.json), image_paths (one file, or one per
    channel for nnU-Net), mask_path, noisy_path (a real noisy mask, or None)."""

    name: str
    image_paths: tuple[str, ...]
    mask_path: str
    noisy_path: Optional[str] = None


def listed(names, limit: int = 5) -> str:
    """'a, b, c' or 'a, b, c, d, e and 7 more'."""
    names = sorted(names)
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def data_files(folder: str, endings) -> list[str]:
    """Sorted names of the files in ``folder`` with one of ``endings`` (hidden files skipped)."""
    return sorted(n for n in os.listdir(folder)
                  if not n.startswith(".") and file_ending(n) in endings and os.path.isfile(os.path.join(folder, n)))


def require_folder(path: str, what: str) -> None:
    if not os.path.exists(path):
        raise DataError(f"{what} {path} does not exist")
    if not os.path.isdir(path):
        raise DataError(f"{what} {path} is not a folder")


def unpaired_error(where: str, images_only, masks_only, image_word="images", mask_word="masks") -> DataError:
    parts = []
    if images_only:
        parts.append(f"{image_word} without {mask_word}: {listed(images_only)}")
    if masks_only:
        parts.append(f"{mask_word} without {image_word}: {listed(masks_only)}")
    return DataError(f"{where}: " + "; ".join(parts))


def noisy_paths(noisy_dir: str, mask_names: list[str]) -> list[str]:
    """The file of each mask name in ``noisy_dir`` (``--noisy-masks``): exactly the same names."""
    require_folder(noisy_dir, "--noisy-masks folder")
    present = set(data_files(noisy_dir, MASK_ENDINGS))
    missing = sorted(set(mask_names) - present)
    extra = sorted(present - set(mask_names))
    if missing or extra:
        parts = ([f"no noisy mask for {listed(missing)}"] if missing else []) + \
                ([f"noisy masks without images: {listed(extra)}"] if extra else [])
        raise DataError(f"--noisy-masks {noisy_dir}: " + "; ".join(parts))
    return [os.path.join(noisy_dir, n) for n in mask_names]


def folder_cases(root: str, noisy_dir: Optional[str] = None) -> list[FileCase]:
    """The cases of ``root/images`` + ``root/masks`` paired by file name, sorted by name.

    DataError when a folder is missing or holds no image files, or when names are unpaired
    (listing the images without masks and the masks without images)."""
    require_folder(root, "data folder")
    images_dir, masks_dir = os.path.join(root, "images"), os.path.join(root, "masks")
    absent = [d for d in ("images", "masks") if not os.path.isdir(os.path.join(root, d))]
    if absent:
        raise DataError(f"data folder {root} has no {' and no '.join(a + '/' for a in absent)} folder: expected "
                        "images/ and masks/ with the same file names, or an nnU-Net dataset (dataset.json, "
                        "imagesTr/, labelsTr/)")
    images, masks = data_files(images_dir, IMAGE_ENDINGS), data_files(masks_dir, MASK_ENDINGS)
    if not images and not masks:
        raise DataError(f"data folder {root}: images/ and masks/ hold no image files "
                        f"({', '.join(IMAGE_ENDINGS)})")
    images_only, masks_only = sorted(set(images) - set(masks)), sorted(set(masks) - set(images))
    if images_only or masks_only:
        raise unpaired_error(f"data folder {root}", images_only, masks_only)
    noisy = noisy_paths(noisy_dir, masks) if noisy_dir is not None else [None] * len(masks)
    return [FileCase(n, (os.path.join(images_dir, n),), os.path.join(masks_dir, n), p) for n, p in zip(images, noisy)]
