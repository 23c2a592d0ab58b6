"""Random generators of the data layer, seeded by (seed, stream, key) only, never by global state.

Every random choice of a training sample (its augmentation, its patch location) and of a batch
order (an epoch's permutation) comes from a CPU ``torch.Generator`` built here, so it is the same
in any process, with any number of DataLoader workers and after resuming at any step. Seeds are
mixed with ``numpy.random.SeedSequence`` (stable across platforms and versions), as the noise
protocols do (``noisyseg_ext.noise.seeding``), with streams of their own.
"""

from __future__ import annotations

import numpy as np
import torch

# Stream ids: distinct from the noise protocols' (0, 1), so the noise, the augmentation and the
# order never share a random sequence even under one seed.
SAMPLE_STREAM = 101   # per-sample augmentation and patch location: (seed, SAMPLE_STREAM, stream, key)
ORDER_STREAM = 102    # per-epoch permutation of the samples: (seed, ORDER_STREAM, stream, epoch)
SPLIT_STREAM = 103    # the subject split: (seed, SPLIT_STREAM)


def mixed_seed(seed: int, *key: int) -> int:
    """A 63-bit seed mixed from the int ``seed`` and the ints ``key`` (each >= 0)."""
    entropy = int(seed) if seed >= 0 else (1 << 64) + int(seed)  # SeedSequence takes no negative entropy
    state = np.random.SeedSequence(entropy=entropy, spawn_key=tuple(int(k) for k in key)).generate_state(
        2, np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


def generator(seed: int, *key: int) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded from (seed, *key)."""
    return torch.Generator().manual_seed(mixed_seed(seed, *key))
