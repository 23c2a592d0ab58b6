"""nnU-Net's raw dataset layout: ``dataset.json``, ``imagesTr/CASE_0000<ending>`` (one file per
channel: ``_0000``, ``_0001``...) and ``labelsTr/CASE<ending>``.

Read from dataset.json: ``file_ending`` (default ``.nii.gz``; ``.png``, ``.tif``, ``.nii`` and
``.npy`` work too), ``channel_names`` (v2; v1's ``modality``) for the channel count, and
``labels`` for the class count: v2 ``{"background": 0, "tumour": 1}`` or v1
``{"0": "background", "1": "tumour"}``. Region-based labels (lists) and the ``ignore`` label are
not supported. ``imagesTs/`` (no labels) is not read.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import Optional

from noisyseg_ext.errors import DataError
from noisyseg_ext.data.folder_layout import FileCase, data_files, listed, noisy_paths, require_folder, unpaired_error

_CHANNEL_SUFFIX = re.compile(r"^(.+)_(\d{4})$")


def is_nnunet_folder(root: str) -> bool:
    """Whether ``root`` looks like an nnU-Net raw dataset (it has dataset.json or imagesTr/)."""
    return os.path.isfile(os.path.join(root, "dataset.json")) or os.path.isdir(os.path.join(root, "imagesTr"))


@dataclass
class NnunetDataset:
    """What a raw nnU-Net folder declares and holds: its cases (sorted by identifier), the number
    of channels and classes from dataset.json, and its file ending."""

    cases: list[FileCase]
    channels: int          # declared in dataset.json (the images' total channel count)
    num_classes: int
    file_ending: str


def _read_json(path: str) -> dict:
    if not os.path.isfile(path):
        raise DataError(f"nnU-Net dataset {os.path.dirname(path)} has no dataset.json")
    try:
        with open(path, encoding="utf-8") as f:
            value = json.load(f)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None
    if not isinstance(value, dict):
        raise DataError(f"{path} must hold a JSON object")
    return value


def _num_classes(labels, path: str) -> int:
    """The class count from dataset.json's ``labels`` (v1 or v2 form); classes must be 0..C-1."""
    if not isinstance(labels, dict) or not labels:
        raise DataError(f"{path}: 'labels' must be a non-empty object, e.g. {{\"background\": 0, \"head\": 1}}")
    if all(isinstance(k, str) and k.isdigit() for k in labels) and all(isinstance(v, str) for v in labels.values()):
        values = [int(k) for k in labels]                     # v1: {"0": "background", ...}
    else:
        if "ignore" in labels:
            raise DataError(f"{path}: the 'ignore' label is not supported")
        bad = {k: v for k, v in labels.items() if isinstance(v, bool) or not isinstance(v, int)}
        if bad:
            raise DataError(f"{path}: labels must map names to class integers (region-based labels are not "
                            f"supported); got {bad}")
        values = list(labels.values())
    if sorted(values) != list(range(len(values))):
        raise DataError(f"{path}: label values must be 0..C-1 once each; got {sorted(values)}")
    return len(values)


def names_of(by_case: dict[str, dict[int, str]]) -> str:
    case = sorted(by_case)[0]
    return ", ".join(os.path.basename(p) for _, p in sorted(by_case[case].items()))


def nnunet_dataset(root: str, noisy_dir: Optional[str] = None) -> NnunetDataset:
    """Reads the layout of the raw nnU-Net dataset ``root`` (module docstring). DataError naming the
    problem: no dataset.json, no imagesTr/ or labelsTr/, no files with the declared ending, image
    files without the ``_0000`` suffix, a case lacking a channel, unpaired images and labels."""
    require_folder(root, "data folder")
    meta_path = os.path.join(root, "dataset.json")
    meta = _read_json(meta_path)
    ending = str(meta.get("file_ending", ".nii.gz")).lower()
    channel_names = meta.get("channel_names", meta.get("modality"))
    if not isinstance(channel_names, dict) or not channel_names:
        raise DataError(f"{meta_path}: 'channel_names' must be a non-empty object, e.g. {{\"0\": \"CT\"}}")
    channels = len(channel_names)
    num_classes = _num_classes(meta.get("labels"), meta_path)
    images_dir, labels_dir = os.path.join(root, "imagesTr"), os.path.join(root, "labelsTr")
    for d in (images_dir, labels_dir):
        require_folder(d, "nnU-Net folder")
    image_files, label_files = data_files(images_dir, (ending,)), data_files(labels_dir, (ending,))
    if not image_files and not label_files:
        raise DataError(f"nnU-Net dataset {root}: imagesTr/ and labelsTr/ hold no {ending} files "
                        f"(dataset.json's file_ending)")
    by_case: dict[str, dict[int, str]] = {}
    for f in image_files:
        m = _CHANNEL_SUFFIX.match(f[: -len(ending)])
        if m is None:
            raise DataError(f"nnU-Net dataset {root}: imagesTr/{f} lacks the channel suffix (_0000{ending})")
        by_case.setdefault(m.group(1), {})[int(m.group(2))] = os.path.join(images_dir, f)
    labels = {f[: -len(ending)]: os.path.join(labels_dir, f) for f in label_files}
    images_only, labels_only = sorted(set(by_case) - set(labels)), sorted(set(labels) - set(by_case))
    if images_only or labels_only:
        raise unpaired_error(f"nnU-Net dataset {root}", images_only, labels_only, "images", "labels")
    # Channel files must be _0000.._{k-1} with one k for every case; k may be below the declared
    # channel count when a file holds several channels (an RGB PNG): the loader checks the total.
    per_case = max(len(files) for files in by_case.values()) if by_case else 0
    for case, files in sorted(by_case.items()):
        if sorted(files) != list(range(per_case)):
            missing = [f"{case}_{c:04d}{ending}" for c in range(per_case) if c not in files]
            raise DataError(f"nnU-Net dataset {root}: imagesTr/ lacks {listed(missing)} (other cases have "
                            f"{per_case} channel file(s))")
    if per_case > channels:
        raise DataError(f"nnU-Net dataset {root}: dataset.json declares {channels} channel(s) but cases have "
                        f"{per_case} channel files (e.g. {names_of(by_case)})")
    names = sorted(by_case)
    noisy = (noisy_paths(noisy_dir, [n + ending for n in names]) if noisy_dir is not None else [None] * len(names))
    cases = [FileCase(n, tuple(by_case[n][c] for c in range(per_case)), labels[n], p) for n, p in zip(names, noisy)]
    return NnunetDataset(cases, channels, num_classes, ending)
