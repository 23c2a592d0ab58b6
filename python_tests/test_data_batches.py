"""BatchOrder and train_batches: order as a function of (seed, position); DDP sharding; workers."""

import itertools

import pytest
import torch

from noisyseg_ext.data import BatchOrder, TrainSet, synthetic_dataset, train_batches
from noisyseg_ext.errors import DataError


def test_each_epoch_is_a_permutation_and_cache_free():
    order = BatchOrder(7, 3, seed=2)
    for epoch in range(3):
        assert sorted(order.index(epoch * 7 + k) for k in range(7)) == list(range(7))
    fresh = BatchOrder(7, 3, seed=2)
    late = [fresh.index(p) for p in range(60, 40, -1)]  # visited backwards, from a later epoch first
    assert late == [order.index(p) for p in range(60, 40, -1)]
    assert [order.index(p) for p in range(7)] != [order.index(p) for p in range(7, 14)]
    assert [BatchOrder(7, 3, seed=3).index(p) for p in range(14)] != [order.index(p) for p in range(14)]
    assert order.positions(2) == [6, 7, 8]  # batches cross epoch boundaries by position


def test_ddp_shards_are_contiguous_and_cover_the_global_batch():
    single = BatchOrder(10, 6, seed=0)
    ranks = [BatchOrder(10, 6, seed=0, rank=r, world_size=3) for r in range(3)]
    for step in range(5):
        shards = [o.positions(step) for o in ranks]
        assert list(itertools.chain(*shards)) == single.positions(step) == single.global_positions(step)
        assert [[o.index(p) for p in s] for o, s in zip(ranks, shards)] == \
            [[single.index(p) for p in s] for s in shards]
    with pytest.raises(DataError, match="--batch 6 is not divisible by the 4 processes"):
        BatchOrder(10, 6, seed=0, rank=0, world_size=4)
    with pytest.raises(DataError, match="empty split"):
        BatchOrder(0, 2, seed=0)


def test_ddp_batches_union_equals_single_process_batch():
    train = TrainSet(synthetic_dataset(5, (16, 16)), noise="dilation", ratio=0.6, seed=1)
    single = train.batch(BatchOrder(5, 4, seed=9).positions(3), BatchOrder(5, 4, seed=9))
    parts = []
    for r in range(2):
        o = BatchOrder(5, 4, seed=9, rank=r, world_size=2)
        parts.append(train.batch(o.positions(3), o))
    for k in single:
        assert torch.equal(torch.cat([p[k] for p in parts]), single[k])


def _take(it, n):
    out = [next(it) for _ in range(n)]
    it.close()
    return out


def test_workers_yield_the_same_batches_and_resume_exactly():
    train = TrainSet(synthetic_dataset(6, (16, 24)), noise="dilation", ratio=0.5, seed=2)
    order = BatchOrder(len(train), 4, seed=2)
    main = _take(train_batches(train, order, start_step=0, workers=0), 5)
    assert main[0]["image"].shape == (4, 1, 16, 24) and main[0]["label"].dtype == torch.int64
    assert main[0]["index"].tolist() == [order.index(p) for p in range(4)]
    pooled = _take(train_batches(train, order, start_step=2, workers=2), 3)
    resumed = _take(train_batches(train, order, start_step=2, workers=0), 3)
    for a, b, c in zip(main[2:], pooled, resumed):
        for k in a:
            assert torch.equal(a[k], b[k]) and torch.equal(a[k], c[k])
