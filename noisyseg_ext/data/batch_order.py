"""The order in which training samples are visited, as a pure function of (seed, position).

Samples are numbered by a global *position* 0, 1, 2, ...: position p lies in epoch p // n and is
the sample perm_epoch[p % n], perm_epoch a permutation of range(n) drawn from (seed, epoch). Step
s's global batch is positions [s * B, (s + 1) * B); under DDP rank r takes the contiguous slice
[s * B + r * B / W, s * B + (r + 1) * B / W). Nothing depends on what was visited before, so a
resumed run, any worker count and any world size see the same samples at the same step.
"""

from __future__ import annotations

from collections import OrderedDict

import torch

from noisyseg_ext.errors import DataError
from noisyseg_ext.data.seeding import ORDER_STREAM, generator


class BatchOrder:
    """Args: num_samples n (>= 1); batch_size B, the GLOBAL batch (divisible by world_size);
    seed; rank and world_size (DDP); stream: another int gives an independent order under the
    same seed (e.g. 1 for the meta set, so its batches are not drawn in step with the train set's)."""

    _CACHED_EPOCHS = 4

    def __init__(self, num_samples: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1, *,
                 stream: int = 0):
        if num_samples < 1:
            raise DataError(f"cannot draw batches from an empty split (num_samples={num_samples})")
        if batch_size < 1 or world_size < 1 or not 0 <= rank < world_size:
            raise DataError(f"BatchOrder: need batch_size >= 1, world_size >= 1, 0 <= rank < world_size; got "
                            f"batch_size={batch_size}, rank={rank}, world_size={world_size}")
        if batch_size % world_size:
            raise DataError(f"--batch {batch_size} is not divisible by the {world_size} processes")
        self.num_samples, self.batch_size, self.seed = int(num_samples), int(batch_size), int(seed)
        self.rank, self.world_size, self.stream = int(rank), int(world_size), int(stream)
        self.local_batch = self.batch_size // self.world_size
        self._perms: OrderedDict[int, list[int]] = OrderedDict()

    def __repr__(self) -> str:
        return (f"BatchOrder(num_samples={self.num_samples}, batch_size={self.batch_size}, seed={self.seed}, "
                f"rank={self.rank}, world_size={self.world_size}, stream={self.stream})")

    def positions(self, step: int) -> list[int]:
        """This rank's global sample positions of ``step`` (its B / world_size of the global batch)."""
        start = step * self.batch_size + self.rank * self.local_batch
        return list(range(start, start + self.local_batch))

    def global_positions(self, step: int) -> list[int]:
        """Every rank's positions of ``step``: [step * B, (step + 1) * B)."""
        return list(range(step * self.batch_size, (step + 1) * self.batch_size))

    def epoch(self, position: int) -> int:
        return position // self.num_samples

    def permutation(self, epoch: int) -> list[int]:
        """Epoch ``epoch``'s permutation of range(n) (the last few epochs are cached)."""
        perm = self._perms.get(epoch)
        if perm is None:
            g = generator(self.seed, ORDER_STREAM, self.stream, epoch)
            perm = torch.randperm(self.num_samples, generator=g).tolist()
            self._perms[epoch] = perm
            if len(self._perms) > self._CACHED_EPOCHS:
                self._perms.popitem(last=False)
        else:
            self._perms.move_to_end(epoch)
        return perm

    def index(self, position: int) -> int:
        """The sample (0..n-1) at global ``position``."""
        if position < 0:
            raise IndexError(f"BatchOrder.index: position must be >= 0; got {position}")
        epoch, offset = divmod(int(position), self.num_samples)
        return self.permutation(epoch)[offset]
