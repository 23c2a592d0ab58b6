"""Seeds for the noise protocols: one seed gives the same noisy set on any device, batch size or
sample order.

* Which samples are corrupted: a permutation of the DATASET indices 0..num_samples-1 drawn from
  (seed, stream 0); the first round(ratio * num_samples) are corrupted.
* Each sample's random parameters: a CPU ``torch.Generator`` seeded from (seed, stream 1, index),
  so a sample draws the same parameters whether it is corrupted alone or in any batch.
Seeds are mixed with ``numpy.random.SeedSequence`` (stable across platforms and versions).
"""

from __future__ import annotations

import math

import numpy as np
import torch

_SELECT, _SAMPLE = 0, 1


def _mixed(seed: int, *key: int) -> int:
    state = np.random.SeedSequence(entropy=int(seed), spawn_key=tuple(int(k) for k in key)).generate_state(2, np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


def num_corrupted(ratio: float, num_samples: int) -> int:
    """round(ratio * num_samples), halves rounded up."""
    return int(math.floor(ratio * num_samples + 0.5))


def corrupted_indices(seed: int, ratio: float, num_samples: int) -> set[int]:
    """The dataset indices whose masks are corrupted: exactly num_corrupted(ratio, num_samples)."""
    g = torch.Generator().manual_seed(_mixed(seed, _SELECT))
    perm = torch.randperm(num_samples, generator=g)
    return set(perm[: num_corrupted(ratio, num_samples)].tolist())


def sample_generator(seed: int, index: int) -> torch.Generator:
    """The CPU generator that draws sample ``index``'s parameters."""
    return torch.Generator().manual_seed(_mixed(seed, _SAMPLE, index))
