"""``train_batches``: the endless stream of training batches, in the main process or DataLoader workers.

With workers, a ``torch.utils.data.DataLoader`` runs over a batch sampler that yields each step's
positions; every worker builds whole samples with :meth:`TrainSet.sample` from the (seed, key)
generators, so the tensors are exactly those of ``workers=0``, in the same order.
"""

from __future__ import annotations

import itertools
from typing import Iterator

import torch
from torch.utils.data import DataLoader, Dataset

from noisyseg_ext.data.batch_order import BatchOrder
from noisyseg_ext.data.train_set import TrainSet, stack_samples


class _PositionSamples(Dataset):
    """Item p = the TrainSet's sample at global position p of the order."""

    def __init__(self, train: TrainSet, order: BatchOrder):
        self.train, self.order = train, order

    def __getitem__(self, position: int):
        return self.train.sample(self.order.index(position), key=position)


class _StepPositions:
    """Batch sampler: the positions of steps start, start + 1, ... (endless)."""

    def __init__(self, order: BatchOrder, start_step: int):
        self.order, self.start_step = order, start_step

    def __iter__(self):
        for step in itertools.count(self.start_step):
            yield self.order.positions(step)


def _one_thread(_worker_id: int) -> None:
    # Each worker builds one sample at a time; OpenMP teams inside it would only fight the
    # main process (the training step) for the cores.
    torch.set_num_threads(1)


def train_batches(train: TrainSet, order: BatchOrder, start_step: int = 0, workers: int = 0) -> Iterator[dict]:
    """Batches for steps start_step, start_step + 1, ... forever: ``train.batch(order.positions(step),
    order)`` (image (B, C, *sp) float32, label / clean (B, *sp) int64, index (B,) int64).

    workers > 0: built in that many DataLoader worker processes (persistent, 2 batches ahead each,
    no pinned memory), yielding the same tensors as workers == 0. Close the generator (or drop it)
    to stop the workers."""
    if workers <= 0:
        for step in itertools.count(start_step):
            yield train.batch(order.positions(step), order)
        return
    loader = DataLoader(_PositionSamples(train, order), batch_sampler=_StepPositions(order, start_step),
                        num_workers=workers, collate_fn=stack_samples, persistent_workers=True, pin_memory=False,
                        prefetch_factor=2, worker_init_fn=_one_thread)
    it = iter(loader)
    try:
        yield from it
    finally:
        shutdown = getattr(it, "_shutdown_workers", None)  # stop the workers now, not at garbage collection
        if shutdown is not None:
            shutdown()
