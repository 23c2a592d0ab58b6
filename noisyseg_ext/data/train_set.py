"""The training split as served to the trainer: labels corrupted once, then augmented samples.

Each sample's randomness (augmentation, patch location) comes from a generator seeded by
(seed, stream, key) only: ``sample(i, key)`` is the same tensor in any process, with any number
of DataLoader workers and after resuming, and the trainer passes the sample's global position
(see :class:`~noisyseg_ext.data.batch_order.BatchOrder`) as the key.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any, Optional, Sequence

import torch
from torch import Tensor

from noisyseg_ext.errors import ConfigError, DataError
from noisyseg_ext.data.augment import AUGMENT_DRAWS, Augmentation
from noisyseg_ext.data.augment import augment as augment_sample
from noisyseg_ext.data.batch_order import BatchOrder
from noisyseg_ext.data.items import fmt_shape
from noisyseg_ext.data.patches import PATCH_DRAWS, crop, foreground_voxels, patch_start
from noisyseg_ext.data.seeding import SAMPLE_STREAM, generator
from noisyseg_ext.data.segmentation_set import SegmentationSet
from noisyseg_ext.data.transforms import pad_to, padded_shape
from noisyseg_ext.noise.overlap import dice_per_sample
from noisyseg_ext.noise.protocols import PROTOCOLS, corrupt_labels
from noisyseg_ext.noise.records import NoiseRecord

# Masks per corrupt_labels call: up to 64, and at most ~256 MiB of stacked masks (large volumes).
_CHUNK, _CHUNK_BYTES = 64, 256 << 20


def stack_samples(items: Sequence[dict[str, Tensor]]) -> dict[str, Tensor]:
    """Samples -> a batch: each key's tensors stacked along a new first axis."""
    return {k: torch.stack([it[k] for it in items]) for k in items[0]}


class TrainSet:
    """A split prepared for training.

    Args:
        data: the split (e.g. ``data.subset(splits["train"])``), sample i = its item i.
        noise: a protocol of ``corrupt_labels`` or ``"none"``. Ignored when ``data`` has real
            noisy masks: those are the labels.
        ratio, seed, noise_params: as :func:`noisyseg_ext.corrupt_labels`; the corrupted subset is
            drawn over len(data) and sample i uses dataset index i. ``seed`` also seeds the samples.
        augment: random flips and a small affine (see :class:`Augmentation`, ``augmentation``).
        patch: train on patches of this size (one per spatial axis, each divisible by
            ``pad_multiple``; volumes smaller than the patch are zero-padded), else whole images.
        fg_ratio: probability that a patch is centred on a foreground voxel of the (noisy) label.
        pad_multiple: whole images are zero-padded at the end of each axis to a multiple of it.
        stream: another int gives independent augmentation under the same seed (e.g. the meta set).

    Attributes:
        clean, noisy: lists of (*spatial) masks (the dataset's dtype; ``noisy is clean`` items
            are shared, not copied, when nothing is corrupted); records: one NoiseRecord per
            sample (real noisy masks: corrupted = differs from the clean mask); noise_dice: mean
            Dice(noisy, clean) of the corrupted samples (NaN if none); corrupted: list[bool].
    """

    def __init__(self, data: SegmentationSet, *, noise: str = "dilation", ratio: float = 0.6, seed: int = 0,
                 noise_params: Optional[dict[str, Any]] = None, augment: bool = True,
                 patch: Optional[Sequence[int]] = None, fg_ratio: float = 0.33, pad_multiple: int = 8,
                 stream: int = 0, augmentation: Augmentation = Augmentation()):
        if len(data) == 0:
            raise DataError(f"the training split of {data.description or 'the dataset'} is empty")
        if pad_multiple < 1:
            raise DataError(f"pad_multiple must be >= 1; got {pad_multiple}")
        if noise != "none" and noise not in PROTOCOLS:
            raise ConfigError(f"unknown noise {noise!r}; choose one of none, {', '.join(PROTOCOLS)}")
        self.data, self.seed, self.stream = data, int(seed), int(stream)
        self.augment, self.augmentation = bool(augment), augmentation
        self.fg_ratio, self.pad_multiple = float(fg_ratio), int(pad_multiple)
        self.patch = self._check_patch(patch)
        if self.patch is None:
            data.require_same_size("pass --size to resize them (or --patch to train on patches)")
        self.clean = list(data.masks)
        self.noise = "real" if data.noisy_masks is not None else noise
        self.noisy, self.records = self._labels(noise, ratio, noise_params or {})
        self.corrupted = [r.corrupted for r in self.records]
        self.noise_dice = self._noise_dice()
        self._foreground: dict[int, Tensor] = {}  # per-process cache of patch centres

    # ------------------------------------------------------------------------------------------
    # construction

    def _check_patch(self, patch) -> Optional[tuple[int, ...]]:
        if patch is None:
            return None
        patch = tuple(int(p) for p in patch)
        if len(patch) != self.data.dims:
            raise DataError(f"--patch {fmt_shape(patch)} has {len(patch)} axes but the data is {self.data.dims}D")
        bad = [p for p in patch if p < 1 or p % self.pad_multiple]
        if bad:
            raise DataError(f"--patch {fmt_shape(patch)}: every size must be a positive multiple of "
                            f"{self.pad_multiple} (the network's downsampling factor)")
        return patch

    def _labels(self, noise: str, ratio: float, params: dict[str, Any]) -> tuple[list[Tensor], list[NoiseRecord]]:
        n = len(self.clean)
        if self.data.noisy_masks is not None:
            noisy = list(self.data.noisy_masks)
            return noisy, [NoiseRecord(i, bool((a != b).any())) for i, (a, b) in enumerate(zip(noisy, self.clean))]
        if noise == "none":
            return list(self.clean), [NoiseRecord(i, False) for i in range(n)]
        noisy: list[Optional[Tensor]] = [None] * n
        records: list[Optional[NoiseRecord]] = [None] * n
        by_shape: dict[tuple[int, ...], list[int]] = defaultdict(list)
        for i, m in enumerate(self.clean):
            by_shape[tuple(m.shape)].append(i)
        for rows in by_shape.values():
            first = self.clean[rows[0]]
            step = max(1, min(_CHUNK, _CHUNK_BYTES // max(1, first.numel() * first.element_size())))
            for start in range(0, len(rows), step):
                chunk = rows[start:start + step]
                try:
                    out, recs = corrupt_labels(torch.stack([self.clean[i] for i in chunk]), noise, ratio,
                                               seed=self.seed, indices=chunk, num_samples=n, **params)
                except (TypeError, ValueError) as exc:  # bad ratio / noise parameters: the user's option
                    raise ConfigError(f"--noise {noise} --noise-params {params}: {exc}") from None
                for i, mask, rec in zip(chunk, out.unbind(0), recs):
                    noisy[i], records[i] = (mask.clone() if rec.corrupted else self.clean[i]), rec  # clone: frees the chunk
        return noisy, records

    def _noise_dice(self) -> float:
        hit = [i for i, c in enumerate(self.corrupted) if c]
        if not hit:
            return math.nan
        d = torch.cat([dice_per_sample(self.noisy[i][None], self.clean[i][None]) for i in hit])
        return float(d.nanmean())

    # ------------------------------------------------------------------------------------------
    # samples

    def __len__(self) -> int:
        return len(self.clean)

    def _patch_centres(self, index: int, label: Tensor) -> Tensor:
        fg = self._foreground.get(index)
        if fg is None:
            fg = self._foreground[index] = foreground_voxels(label)
        return fg

    def sample(self, index: int, key: int, *, augment: Optional[bool] = None) -> dict[str, Tensor]:
        """Sample ``index`` (0..len-1) transformed with the random numbers of ``key`` (int >= 0);
        ``augment`` False skips the augmentation (None: the set's setting).

        Returns {"image": (C, *sp) float32, "label": (*sp) int64 (noisy), "clean": (*sp) int64,
        "index": () int64}; *sp = the patch size, or the image size padded to pad_multiple."""
        u = torch.rand(AUGMENT_DRAWS + PATCH_DRAWS, generator=generator(self.seed, SAMPLE_STREAM, self.stream, key),
                       dtype=torch.float64)
        image = self.data.images[index]
        labels = torch.stack([self.noisy[index], self.clean[index]]).to(torch.int64)  # moved together
        if self.patch is not None:
            image, labels = pad_to(image, self.patch), pad_to(labels, self.patch)
            start = patch_start(labels.shape[1:], self.patch, self.fg_ratio, u[AUGMENT_DRAWS:],
                                self._patch_centres(index, labels[0]))
            image, labels = crop(image, start, self.patch), crop(labels, start, self.patch)
        if self.augment if augment is None else augment:
            image, labels = augment_sample(image, labels, u[:AUGMENT_DRAWS], self.augmentation)
        if self.patch is None and self.pad_multiple > 1:
            target = padded_shape(labels.shape[1:], self.pad_multiple)
            image, labels = pad_to(image, target), pad_to(labels, target)
        return {"image": image.contiguous(), "label": labels[0].contiguous(), "clean": labels[1].contiguous(),
                "index": torch.tensor(index, dtype=torch.int64)}

    def batch(self, positions: Sequence[int], order: BatchOrder) -> dict[str, Tensor]:
        """The samples at global ``positions`` of ``order``, stacked: image (B, C, *sp) float32, label
        (B, *sp) int64, clean (B, *sp) int64, index (B,) int64; item p = sample(order.index(p), key=p)."""
        return stack_samples([self.sample(order.index(p), key=p) for p in positions])

    def fixed_batch(self, indices: Sequence[int]) -> dict[str, Tensor]:
        """Samples ``indices`` without augmentation (patches drawn with key 0), stacked as :meth:`batch`:
        the same batch at every call, for diagnostics and figures."""
        return stack_samples([self.sample(i, key=0, augment=False) for i in indices])
