"""Subject splits train / meta / val / test and their splits.json."""

import json
import os

import pytest
import torch

from noisyseg_ext.data import SPLIT_NAMES, load_dataset, load_splits, make_splits, save_splits, synthetic_dataset
from noisyseg_ext.errors import DataError


def _hc18_like(subjects=40):
    """Tensors named like HC18: subjects with 1-3 images each (NNN_HC, NNN_2HC, NNN_3HC)."""
    names = [f"{s:03d}_{t}HC.png" for s in range(subjects) for t in ["", "2", "3"][: 1 + s % 3]]
    masks = torch.zeros(len(names), 4, 4, dtype=torch.long)
    masks[:, 1, 1] = 1
    return load_dataset((torch.rand(len(names), 4, 4), masks, names), subject_regex=r"^(\d+)_")


def test_split_by_subject_covers_everything_once():
    data = _hc18_like()
    splits = make_splits(data, seed=3, meta_fraction=0.1, val_fraction=0.1, test_fraction=0.2)
    all_indices = sorted(i for k in SPLIT_NAMES for i in splits[k])
    assert all_indices == list(range(len(data)))
    subjects = {k: {data.subjects[i] for i in splits[k]} for k in SPLIT_NAMES}
    for a in SPLIT_NAMES:
        for b in SPLIT_NAMES:
            assert a == b or not subjects[a] & subjects[b], (a, b)
    assert {k: len(v) for k, v in subjects.items()} == {"train": 24, "meta": 4, "val": 4, "test": 8}
    assert all(splits[k] == sorted(splits[k]) for k in SPLIT_NAMES)
    assert splits.seed == 3 and splits.fractions == {"meta": 0.1, "val": 0.1, "test": 0.2}


def test_deterministic_in_seed_and_test_set_stable_under_other_fractions():
    data = _hc18_like()
    a = make_splits(data, seed=0)
    assert dict(a) == dict(make_splits(data, seed=0))
    assert dict(a) != dict(make_splits(data, seed=1))
    b = make_splits(data, seed=0, meta_fraction=0.25, val_fraction=0.05)
    assert b["test"] == a["test"] and len(b["meta"]) > len(a["meta"])


def test_zero_fractions_and_tiny_data():
    data = synthetic_dataset(5, (8, 8))
    none = make_splits(data, seed=0, meta_fraction=0.0, val_fraction=0.0, test_fraction=0.0)
    assert none["train"] == list(range(5)) and not (none["meta"] or none["val"] or none["test"])
    tiny = make_splits(data, seed=0, meta_fraction=0.01, val_fraction=0.01, test_fraction=0.01)
    assert [len(tiny[k]) for k in SPLIT_NAMES] == [2, 1, 1, 1]  # one subject each, train keeps the rest
    with pytest.raises(DataError, match=r"has 3 subject\(s\): too few for train plus meta 1, val 1, test 1"):
        make_splits(synthetic_dataset(3, (8, 8)), seed=0, meta_fraction=0.1, val_fraction=0.1, test_fraction=0.1)
    with pytest.raises(DataError, match="leave no training split"):
        make_splits(data, seed=0, meta_fraction=0.5, val_fraction=0.3, test_fraction=0.2)


def test_hc18_sample_split_keeps_counts():
    data = load_dataset("hc18-sample")
    s = make_splits(data, seed=0)
    assert s.counts() == {"train": 39, "meta": 6, "val": 6, "test": 13}  # 64 subjects: round(f * 64)


def test_save_load_round_trip(tmp_path):
    data = _hc18_like(12)
    splits = make_splits(data, seed=5, meta_fraction=0.2, val_fraction=0.1, test_fraction=0.2)
    path = tmp_path / "run" / "splits.json"
    save_splits(path, splits, data)
    assert os.listdir(tmp_path / "run") == ["splits.json"]  # no temporary file left behind
    blob = json.loads(path.read_text())
    assert blob["train"] == [data.names[i] for i in splits["train"]] and blob["seed"] == 5
    assert blob["subject_regex"] == r"^(\d+)_" and blob["fractions"]["meta"] == 0.2
    back = load_splits(path, data)
    assert dict(back) == dict(splits) and back.seed == 5
    # the same names in another order of the dataset map to the new indices
    shuffled = data.subset(list(range(len(data)))[::-1])
    again = load_splits(path, shuffled)
    assert sorted(shuffled.names[i] for i in again["test"]) == sorted(blob["test"])


def _write(path, **splits):
    blob = {k: [] for k in SPLIT_NAMES}
    blob.update(splits)
    path.write_text(json.dumps(blob))


def test_load_errors_name_the_names(tmp_path):
    data = synthetic_dataset(4, (8, 8))
    names = data.names
    p = tmp_path / "s.json"
    _write(p, train=names[:3] + ["ghost_1"], test=names[3:])
    with pytest.raises(DataError, match=r"names not in the dataset: ghost_1"):
        load_splits(p, data)
    _write(p, train=names[:2], test=names[3:])
    with pytest.raises(DataError, match=r"dataset files in no split: synthetic_002"):
        load_splits(p, data)
    _write(p, train=names, test=names[3:])
    with pytest.raises(DataError, match=r"names listed twice: synthetic_003 \(train, test\)"):
        load_splits(p, data)
    p.write_text(json.dumps({"train": names}))
    with pytest.raises(DataError, match="has no list meta, val, test"):
        load_splits(p, data)
    p.write_text("{not json")
    with pytest.raises(DataError, match="cannot read --splits"):
        load_splits(p, data)
    with pytest.raises(DataError, match="does not exist"):
        load_splits(tmp_path / "absent.json", data)
