"""A dataset wrapper that serves a training set with synthetically corrupted masks.

The noisy masks of the whole set are made once (corrupt_labels over all dataset indices, in chunks),
kept in memory and optionally saved to / loaded from a file, so every epoch sees the same noise.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any, Optional, Union

import torch
from torch import Tensor
from torch.utils.data import Dataset

from noisyseg_ext.noise.protocols import corrupt_labels, resolve_params
from noisyseg_ext.noise.records import NoiseRecord


def _fingerprint(masks: Tensor) -> str:
    return hashlib.sha1(masks.contiguous().cpu().numpy().tobytes()).hexdigest()


class NoisyMaskDataset(Dataset):
    """Wraps ``base`` (items are tuples/lists holding a mask at position ``mask_index``) and
    returns the same items with the mask replaced by its corrupted version.

    Args:
        base: map-style dataset; ``base[i][mask_index]`` is an (*spatial) bool / integer mask
            (tensor or array), all of one shape.
        protocol, ratio, seed, params: as :func:`noisyseg_ext.corrupt_labels`; the subset is drawn
            over ``len(base)`` and sample i uses dataset index i.
        mask_index: position of the mask in each item.
        cache_path: optional file (torch.save) holding the noisy masks; reused when its protocol,
            ratio, seed, parameters and clean-mask fingerprint match, rewritten otherwise.
        device: where the corruption runs (e.g. "cuda"); the result is kept on the CPU.
        chunk: number of masks corrupted per call.

    Attributes:
        clean_masks, noisy_masks: (len(base), *spatial) CPU tensors; records: one NoiseRecord each.
    """

    def __init__(self, base, protocol: str, ratio: float, *, seed: int, mask_index: int = 1,
                 cache_path: Optional[Union[str, os.PathLike]] = None,
                 device: Union[str, torch.device] = "cpu", chunk: int = 256, **params):
        self.base, self.mask_index = base, mask_index
        self.clean_masks = torch.stack([torch.as_tensor(base[i][mask_index]) for i in range(len(base))]) \
            if len(base) else torch.zeros(0, 1, 1, dtype=torch.uint8)
        resolved = resolve_params(protocol, params)  # checks the parameters before any work
        key = {"protocol": protocol, "ratio": float(ratio), "seed": int(seed),
               "params": {k: (list(v) if isinstance(v, tuple) else v) for k, v in resolved.items()},
               "clean": _fingerprint(self.clean_masks)}
        cached = self._load(cache_path, key)
        if cached is None:
            noisy, records = [], []
            n = len(self.clean_masks)
            for start in range(0, n, chunk):
                rows = list(range(start, min(n, start + chunk)))
                out, rec = corrupt_labels(self.clean_masks[start:start + chunk].to(device), protocol, ratio,
                                          seed=seed, indices=rows, num_samples=n, **params)
                noisy.append(out.cpu())
                records.extend(rec)
            self.noisy_masks = torch.cat(noisy) if noisy else self.clean_masks.clone()
            self.records = records
            if cache_path is not None:
                torch.save({"key": key, "noisy": self.noisy_masks,
                            "records": [r.to_dict() for r in records]}, cache_path)
        else:
            self.noisy_masks, self.records = cached

    @staticmethod
    def _load(path, key: dict[str, Any]):
        if path is None or not os.path.exists(path):
            return None
        blob = torch.load(path, weights_only=True)
        if blob.get("key") != key:
            return None
        return blob["noisy"], [NoiseRecord(**r) for r in blob["records"]]

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int):
        item = list(self.base[i])
        item[self.mask_index] = self.noisy_masks[i]
        return tuple(item)
