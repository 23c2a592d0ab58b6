"""Checkpoints: atomic writes, clear errors for damaged files, RNG states."""

import os
import random

import numpy as np
import pytest
import torch

from noisyseg_ext.errors import CheckpointError
from noisyseg_ext.training.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state


def test_round_trip(tmp_path):
    path = str(tmp_path / "c" / "last.pt")
    save_checkpoint(path, {"step": 3, "net": {"w": torch.arange(4.0)}})
    blob = load_checkpoint(path)
    assert blob["step"] == 3 and torch.equal(blob["net"]["w"], torch.arange(4.0))
    assert [f for f in os.listdir(tmp_path / "c")] == ["last.pt"]  # no temporary file left


def test_failed_write_keeps_the_old_file(tmp_path):
    path = str(tmp_path / "last.pt")
    save_checkpoint(path, {"step": 1})

    class Boom:
        def __reduce__(self):
            raise RuntimeError("cannot pickle")

    with pytest.raises(RuntimeError):
        save_checkpoint(path, {"step": 2, "x": Boom()})
    assert load_checkpoint(path)["step"] == 1
    assert os.listdir(tmp_path) == ["last.pt"]


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty", "other"])
def test_damaged_checkpoints_raise_checkpoint_error(tmp_path, damage):
    path = str(tmp_path / "last.pt")
    save_checkpoint(path, {"step": 1, "net": {"w": torch.randn(1000)}})
    data = open(path, "rb").read()
    if damage == "truncate":
        open(path, "wb").write(data[: len(data) // 2])
    elif damage == "garbage":
        open(path, "wb").write(b"not a checkpoint at all" * 10)
    elif damage == "empty":
        open(path, "wb").close()
    else:
        torch.save({"weights": 1}, path)
    with pytest.raises(CheckpointError, match="last.pt"):
        load_checkpoint(path)


def test_missing_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(str(tmp_path / "none.pt"))


def test_rng_states_restore_every_generator():
    state = rng_state()
    a = (torch.rand(3), np.random.rand(3), random.random())
    set_rng_state(state)
    b = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2]
