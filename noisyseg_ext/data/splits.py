"""Train / meta / val / test splits by subject, and their ``splits.json``.

``make_splits`` shuffles the sorted subjects with a generator seeded by ``seed`` and cuts the
permutation into test, val, meta (in that order) and train (the rest). Each split with a
fraction f > 0 gets round(f * subjects) subjects, at least one; train must keep at least one.
Cutting test first means the test set depends only on (seed, subjects, test fraction): changing
the meta or val fraction never moves a subject into or out of the test set.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Mapping
from typing import Any, Iterator, Optional

import torch

from noisyseg_ext.errors import DataError
from noisyseg_ext.data.folder_layout import listed
from noisyseg_ext.data.segmentation_set import SegmentationSet
from noisyseg_ext.data.seeding import SPLIT_STREAM, generator

SPLIT_NAMES = ("train", "meta", "val", "test")


class Splits(Mapping):
    """Mapping ``"train"``, ``"meta"``, ``"val"``, ``"test"`` -> sorted list[int] of indices into the
    dataset, plus how it was drawn: seed (None when unknown), fractions {"meta", "val", "test"},
    subject_regex."""

    def __init__(self, indices: Mapping[str, list[int]], *, seed: Optional[int] = None,
                 fractions: Optional[Mapping[str, float]] = None, subject_regex: Optional[str] = None):
        self._indices = {k: sorted(int(i) for i in indices.get(k, ())) for k in SPLIT_NAMES}
        self.seed, self.subject_regex = seed, subject_regex
        self.fractions = dict(fractions or {})

    def __getitem__(self, name: str) -> list[int]:
        return self._indices[name]

    def __iter__(self) -> Iterator[str]:
        return iter(SPLIT_NAMES)

    def __len__(self) -> int:
        return len(SPLIT_NAMES)

    def __repr__(self) -> str:
        sizes = ", ".join(f"{k}={len(v)}" for k, v in self._indices.items())
        return f"Splits({sizes}, seed={self.seed})"

    def counts(self) -> dict[str, int]:
        """Items per split."""
        return {k: len(v) for k, v in self._indices.items()}


def _round(x: float) -> int:
    return int(math.floor(x + 0.5))


def make_splits(data: SegmentationSet, *, seed: int, meta_fraction: float = 0.1, val_fraction: float = 0.1,
                test_fraction: float = 0.2) -> Splits:
    """Splits ``data`` by subject (module docstring); deterministic in ``seed``.

    Fractions are of SUBJECTS, each in [0, 1), summing below 1; the image counts follow them
    only approximately when subjects have several images. DataError when the subjects are too
    few for one per split with a fraction > 0 plus one for train (saying how many there are)."""
    fractions = {"meta": float(meta_fraction), "val": float(val_fraction), "test": float(test_fraction)}
    bad = {k: v for k, v in fractions.items() if not 0.0 <= v < 1.0}
    if bad:
        raise DataError(f"split fractions must lie in [0, 1); got {bad}")
    if sum(fractions.values()) >= 1.0:
        raise DataError(f"meta + val + test fractions = {sum(fractions.values()):g} leave no training split")
    subjects = sorted(set(data.subjects))
    n = len(subjects)
    counts = {k: (max(1, _round(f * n)) if f > 0 else 0) for k, f in fractions.items()}
    if sum(counts.values()) >= n:
        wanted = ", ".join(f"{k} {c}" for k, c in counts.items() if c)
        raise DataError(f"{data.description or 'the dataset'} has {n} subject(s): too few for train plus "
                        f"{wanted} (each split with a fraction > 0 needs one)")
    perm = torch.randperm(n, generator=generator(seed, SPLIT_STREAM)).tolist()
    which: dict[str, str] = {}
    start = 0
    for name in ("test", "val", "meta"):
        for i in perm[start:start + counts[name]]:
            which[subjects[i]] = name
        start += counts[name]
    for i in perm[start:]:
        which[subjects[i]] = "train"
    indices = {k: [i for i, s in enumerate(data.subjects) if which[s] == k] for k in SPLIT_NAMES}
    return Splits(indices, seed=seed, fractions=fractions, subject_regex=data.subject_regex)


def save_splits(path: str | os.PathLike, splits: Splits, data: SegmentationSet) -> None:
    """Writes ``splits`` as JSON: {"train": [names], "meta": [...], "val": [...], "test": [...],
    "seed", "fractions", "subject_regex", "counts"}; atomically (a temporary file in the same
    folder, then renamed), so a crash never leaves half a file."""
    blob: dict[str, Any] = {k: [data.names[i] for i in splits[k]] for k in SPLIT_NAMES}
    blob.update(seed=splits.seed, fractions=splits.fractions, subject_regex=splits.subject_regex,
                counts=splits.counts())
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".splits-", suffix=".json.tmp", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(blob, f, indent=1)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load_splits(path: str | os.PathLike, data: SegmentationSet) -> Splits:
    """Reads a splits.json written by :func:`save_splits` and maps its names onto ``data``.

    DataError naming the file and the names when it cannot be read, lacks a split, names files
    the dataset does not have, leaves some of the dataset's files out, or lists a name twice."""
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as f:
            blob = json.load(f)
    except FileNotFoundError:
        raise DataError(f"--splits {path} does not exist") from None
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read --splits {path}: {exc}") from None
    if not isinstance(blob, dict):
        raise DataError(f"--splits {path} must hold a JSON object with {', '.join(SPLIT_NAMES)}")
    absent = [k for k in SPLIT_NAMES if not isinstance(blob.get(k), list)]
    if absent:
        raise DataError(f"--splits {path} has no list {', '.join(absent)}")
    position = {n: i for i, n in enumerate(data.names)}
    seen: dict[str, str] = {}
    duplicated, unknown = [], []
    indices: dict[str, list[int]] = {}
    for k in SPLIT_NAMES:
        indices[k] = []
        for name in blob[k]:
            name = str(name)
            if name in seen:
                duplicated.append(f"{name} ({seen[name]}, {k})" if seen[name] != k else f"{name} (twice in {k})")
                continue
            seen[name] = k
            if name not in position:
                unknown.append(name)
            else:
                indices[k].append(position[name])
    missing = [n for n in data.names if n not in seen]
    problems = ([f"names not in the dataset: {listed(unknown)}"] if unknown else []) + \
               ([f"dataset files in no split: {listed(missing)}"] if missing else []) + \
               ([f"names listed twice: {listed(duplicated)}"] if duplicated else [])
    if problems:
        raise DataError(f"--splits {path} does not match {data.description or 'the dataset'}: " + "; ".join(problems))
    seed = blob.get("seed")
    return Splits(indices, seed=seed if isinstance(seed, int) else None, fractions=blob.get("fractions") or {},
                  subject_regex=blob.get("subject_regex"))
