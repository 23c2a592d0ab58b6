"""Noise protocols (corrupt_labels), their dataset wrapper, the HC18 loader and the Dice report."""

import os
import sys
import types

import numpy as np
import pytest
import scipy.ndimage as ndi
import torch
from PIL import Image

import noisyseg_ext
from noisyseg_ext.data.hc18 import HC18Dataset, load_hc18, split_names, subject_of
from noisyseg_ext.noise import DEFAULTS, NoisyMaskDataset, corrupt_labels, dice_per_sample
from noisyseg_ext.noise import report
from noisyseg_ext.ops.morphology import structure_tensor

MORPH_PROTOCOLS = ["dilation", "erode_dilate", "pick_and_learn"]


def ellipses(n, shape=(40, 48), labels=1, gen_seed=0):
    """Filled ellipses (like HC18 heads), one per sample, label 1 (and 2 for a second blob)."""
    g = torch.Generator().manual_seed(gen_seed)
    H, W = shape
    yy, xx = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
    out = torch.zeros((n, H, W), dtype=torch.int64)
    for i in range(n):
        cy, cx = (torch.rand(2, generator=g) * torch.tensor([H / 2, W / 2]) + torch.tensor([H / 4, W / 4])).tolist()
        ry, rx = (torch.rand(2, generator=g) * 6 + 6).tolist()
        out[i][((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1] = 1
        if labels > 1:
            out[i][((yy - 4) ** 2 + (xx - 5) ** 2) <= 9] = 2
    return out


def balls(n, shape=(14, 16, 12), gen_seed=0):
    g = torch.Generator().manual_seed(gen_seed)
    zz, yy, xx = torch.meshgrid(*[torch.arange(s) for s in shape], indexing="ij")
    out = torch.zeros((n, *shape), dtype=torch.bool)
    for i in range(n):
        c = [s / 2 + float(torch.rand(1, generator=g)) * 2 - 1 for s in shape]
        out[i] = (zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2 <= 16
    return out


def scipy_apply(mask: np.ndarray, record) -> np.ndarray:
    """Independent re-computation of a morphology record with scipy (binary masks)."""
    p = record.params
    if "side" in p:
        s = np.ones((p["side"],) * mask.ndim, bool)
    else:
        s = structure_tensor(p["structure"], p["radius"], mask.ndim).numpy()
    fn = ndi.binary_dilation if record.operation == "dilate" else ndi.binary_erosion
    return fn(mask, s, iterations=p["iterations"])


# ----------------------------------------------------------------------------------------------
# corrupt_labels

@pytest.mark.parametrize("protocol", MORPH_PROTOCOLS)
@pytest.mark.parametrize("ratio", [0.0, 0.25, 0.6, 1.0])
def test_subset_size_and_untouched_samples(protocol, ratio):
    masks = ellipses(20)
    noisy, records = corrupt_labels(masks, protocol, ratio, seed=3)
    assert noisy.shape == masks.shape and noisy.dtype == masks.dtype and noisy.data_ptr() != masks.data_ptr()
    hit = [r.corrupted for r in records]
    assert sum(hit) == round(ratio * 20) and [r.index for r in records] == list(range(20))
    for i, r in enumerate(records):
        if not r.corrupted:
            assert r.operation is None and torch.equal(noisy[i], masks[i])


@pytest.mark.parametrize("protocol", MORPH_PROTOCOLS)
def test_morphology_protocols_match_scipy_with_recorded_params(device, protocol):
    masks = ellipses(16, gen_seed=1).bool()
    noisy, records = corrupt_labels(masks.to(device), protocol, 1.0, seed=7)
    assert noisy.device.type == device.type
    ops = set()
    for i, r in enumerate(records):
        ops.add(r.operation)
        expected = scipy_apply(masks[i].numpy(), r)
        assert np.array_equal(noisy[i].cpu().numpy(), expected), r
    if protocol != "dilation":
        assert ops == {"dilate", "erode"}  # 16 fair coins: both show up for this seed


def test_protocols_3d(device):
    masks = balls(6)
    small = {"dilation": {"iterations": (1, 3)}, "erode_dilate": {"side": (2, 5)}, "pick_and_learn": {"pixels": (1, 3)}}
    for protocol in MORPH_PROTOCOLS:
        noisy, records = corrupt_labels(masks.to(device), protocol, 0.5, seed=2, **small[protocol])
        assert sum(r.corrupted for r in records) == 3
        for i, r in enumerate(records):
            expected = scipy_apply(masks[i].numpy(), r) if r.corrupted else masks[i].numpy()
            assert np.array_equal(noisy[i].cpu().numpy(), expected), (protocol, r)


def test_recorded_parameters_follow_defaults_and_overrides():
    masks = ellipses(40)
    _, recs = corrupt_labels(masks, "dilation", 1.0, seed=0)
    its = {r.params["iterations"] for r in recs}
    assert its <= set(range(1, 9)) and len(its) > 3
    assert all(r.params["structure"] == "cross" and r.params["radius"] == 1 for r in recs)
    _, recs = corrupt_labels(masks, "dilation", 1.0, seed=0, iterations=3, structure="box")
    assert all(r.params == {"structure": "box", "radius": 1, "iterations": 3} for r in recs)
    _, recs = corrupt_labels(masks, "erode_dilate", 1.0, seed=0)
    sides = {r.params["side"] for r in recs}
    assert sides <= set(range(3, 16)) and len(sides) > 5
    _, recs = corrupt_labels(masks, "pick_and_learn", 1.0, seed=0, pixels=(5, 13))
    assert {r.params["radius"] for r in recs} <= set(range(5, 14))
    _, recs = corrupt_labels(masks, "pick_and_learn", 1.0, seed=0, p_dilate=1.0)
    assert {r.operation for r in recs} == {"dilate"}
    assert DEFAULTS["elastic"] == {"sigma": 10.0, "points": 3}


def test_same_seed_same_noise_different_seed_different_noise():
    masks = ellipses(12)
    a, ra = corrupt_labels(masks, "erode_dilate", 0.5, seed=11)
    b, rb = corrupt_labels(masks, "erode_dilate", 0.5, seed=11)
    c, rc = corrupt_labels(masks, "erode_dilate", 0.5, seed=12)
    assert torch.equal(a, b) and ra == rb
    assert not torch.equal(a, c)


@pytest.mark.parametrize("protocol", MORPH_PROTOCOLS)
def test_independent_of_batch_size_and_order(protocol):
    """Each dataset index gets the same corruption alone, in shuffled batches, or all at once."""
    masks = ellipses(15, labels=2)
    full, rec_full = corrupt_labels(masks, protocol, 0.4, seed=5)
    order = torch.randperm(15, generator=torch.Generator().manual_seed(0))
    for batch in (order[:4], order[4:11], order[11:]):
        out, rec = corrupt_labels(masks[batch], protocol, 0.4, seed=5, indices=batch, num_samples=15)
        assert torch.equal(out, full[batch])
        assert rec == [rec_full[i] for i in batch.tolist()]
    for i in range(15):  # alone
        out, rec = corrupt_labels(masks[i:i + 1], protocol, 0.4, seed=5, indices=[i], num_samples=15)
        assert torch.equal(out[0], full[i]) and rec[0] == rec_full[i]


def test_label_maps_keep_their_classes():
    masks = ellipses(8, labels=2)
    noisy, recs = corrupt_labels(masks, "dilation", 1.0, seed=0)
    assert set(noisy.unique().tolist()) <= {0, 1, 2}
    for i, r in enumerate(recs):  # foreground never changes class under dilation
        fg = masks[i] != 0
        assert torch.equal(noisy[i][fg], masks[i][fg])


def test_cpu_and_cuda_agree(cuda_device):
    masks = ellipses(10, labels=2)
    for protocol in MORPH_PROTOCOLS:
        a, ra = corrupt_labels(masks, protocol, 0.7, seed=4)
        b, rb = corrupt_labels(masks.to(cuda_device), protocol, 0.7, seed=4)
        assert torch.equal(a, b.cpu()) and ra == rb


@pytest.mark.any_cpu_isa
def test_bad_inputs():
    m = ellipses(4)
    with pytest.raises(ValueError, match="unknown protocol"):
        corrupt_labels(m, "blur", 0.5, seed=0)
    with pytest.raises(ValueError, match="no parameter"):
        corrupt_labels(m, "dilation", 0.5, seed=0, sigma=3)
    with pytest.raises(ValueError, match="ratio"):
        corrupt_labels(m, "dilation", 1.5, seed=0)
    with pytest.raises(ValueError, match="seed"):
        corrupt_labels(m, "dilation", 0.5, seed=-1)
    with pytest.raises(ValueError, match="points"):
        corrupt_labels(m, "elastic", 0.5, seed=0, points=1)
    with pytest.raises(ValueError, match="sigma"):
        corrupt_labels(m, "elastic", 0.5, seed=0, sigma=-2.0)
    with pytest.raises(ValueError, match="iterations"):
        corrupt_labels(m, "dilation", 0.5, seed=0, iterations=(5, 2))
    with pytest.raises(ValueError, match="iterations"):
        corrupt_labels(m, "dilation", 0.5, seed=0, iterations=-1)
    with pytest.raises(ValueError, match="structure"):
        corrupt_labels(m, "pick_and_learn", 0.5, seed=0, structure="star")
    with pytest.raises(ValueError, match="num_samples"):
        corrupt_labels(m, "dilation", 0.5, seed=0, indices=[0, 1, 2, 3])
    with pytest.raises(ValueError, match="indices"):
        corrupt_labels(m, "dilation", 0.5, seed=0, indices=[0, 1, 2, 9], num_samples=5)
    with pytest.raises(ValueError, match="indices"):
        corrupt_labels(m, "dilation", 0.5, seed=0, indices=[0, 1], num_samples=5)
    with pytest.raises(TypeError, match="float32"):
        corrupt_labels(m.float(), "dilation", 0.5, seed=0)
    with pytest.raises(ValueError, match="shape"):
        corrupt_labels(m[0], "dilation", 0.5, seed=0)


# ----------------------------------------------------------------------------------------------
# elastic protocol

def test_elastic_protocol_real_module(device):
    pytest.importorskip("noisyseg_ext.ops.elastic")
    masks = ellipses(6, labels=2).to(device)
    a, ra = corrupt_labels(masks, "elastic", 1.0, seed=1, sigma=4.0)
    b, _ = corrupt_labels(masks[3:], "elastic", 1.0, seed=1, sigma=4.0, indices=[3, 4, 5], num_samples=6)
    assert a.dtype == masks.dtype and set(a.unique().tolist()) <= {0, 1, 2}
    assert torch.equal(a[3:], b) and all(r.operation == "elastic" for r in ra)
    d = dice_per_sample(a, masks)
    assert bool((d > 0.3).all()) and bool((d < 1).any())


@pytest.mark.any_cpu_isa
def test_elastic_protocol_draws_grids_and_calls_elastic_deform(monkeypatch):
    """The protocol's plumbing, with a stand-in for noisyseg_ext.ops.elastic (a shift by the mean
    displacement): grid shape (N, ndim, points, ..., points), N(0, sigma^2), per-sample seeds."""
    calls = []

    def fake_elastic_deform(x, displacement, *, order=0, **kw):
        calls.append((x.shape, x.dtype, displacement.clone(), order))
        assert displacement.dtype == torch.float32 and displacement.shape[:2] == (x.shape[0], x.dim() - 1)
        return torch.stack([torch.roll(xi, int(di[0].mean().round()), 0) for xi, di in zip(x, displacement)])

    fake = types.ModuleType("noisyseg_ext.ops.elastic")
    fake.elastic_deform = fake_elastic_deform
    monkeypatch.setitem(sys.modules, "noisyseg_ext.ops.elastic", fake)
    masks = ellipses(50)
    noisy, recs = corrupt_labels(masks, "elastic", 0.5, seed=3, sigma=6.0, points=4)
    (shape, dtype, disp, order), = calls
    assert shape == (25, 40, 48) and dtype == torch.float32 and order == 0
    assert disp.shape == (25, 2, 4, 4)
    assert 4.5 < float(disp.std()) < 7.5 and abs(float(disp.mean())) < 1.5
    assert noisy.dtype == masks.dtype and all(r.params == {"sigma": 6.0, "points": 4} for r in recs if r.corrupted)
    # one sample alone draws the same grid
    i = next(r.index for r in recs if r.corrupted)
    corrupt_labels(masks[i:i + 1], "elastic", 0.5, seed=3, sigma=6.0, points=4, indices=[i], num_samples=50)
    row = [r.index for r in recs if r.corrupted].index(i)
    assert torch.equal(calls[1][2][0], disp[row])


@pytest.mark.any_cpu_isa
def test_elastic_protocol_without_module_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "noisyseg_ext.ops.elastic", None)  # import raises ImportError
    with pytest.raises(RuntimeError, match="noisyseg_ext.ops.elastic"):
        corrupt_labels(ellipses(2), "elastic", 1.0, seed=0)


# ----------------------------------------------------------------------------------------------
# dataset wrapper

class _Pairs(torch.utils.data.Dataset):
    def __init__(self, masks):
        self.masks = masks

    def __len__(self):
        return len(self.masks)

    def __getitem__(self, i):
        return torch.full((1, 2, 2), float(i)), self.masks[i].numpy()


@pytest.mark.any_cpu_isa
def test_noisy_dataset_serves_the_corrupted_set_and_caches(tmp_path, monkeypatch):
    masks = ellipses(9)
    base = _Pairs(masks)
    path = tmp_path / "noise.pt"
    ds = NoisyMaskDataset(base, "dilation", 0.5, seed=2, cache_path=path, chunk=4, iterations=(2, 4))
    expected, records = corrupt_labels(masks, "dilation", 0.5, seed=2, iterations=(2, 4))
    assert torch.equal(ds.noisy_masks, expected) and ds.records == records
    image, mask = ds[3]
    assert float(image[0, 0, 0]) == 3.0 and torch.equal(mask, expected[3]) and len(ds) == 9
    assert path.exists()

    import noisyseg_ext.noise.dataset as dsmod

    def boom(*a, **k):
        raise AssertionError("recomputed instead of loading the cache")

    monkeypatch.setattr(dsmod, "corrupt_labels", boom)
    again = NoisyMaskDataset(base, "dilation", 0.5, seed=2, cache_path=path, iterations=(2, 4))
    assert torch.equal(again.noisy_masks, expected) and again.records == records
    with pytest.raises(AssertionError, match="recomputed"):  # another seed does not reuse the file
        NoisyMaskDataset(base, "dilation", 0.5, seed=3, cache_path=path, iterations=(2, 4))


# ----------------------------------------------------------------------------------------------
# Dice, HC18 loader, report

def test_dice_per_sample():
    a = torch.tensor([[[1, 1, 0, 0]], [[0, 0, 0, 0]], [[1, 0, 0, 0]], [[2, 2, 0, 0]]])
    b = torch.tensor([[[1, 0, 0, 0]], [[0, 0, 0, 0]], [[0, 0, 0, 0]], [[1, 1, 0, 0]]])
    d = dice_per_sample(a, b)
    assert abs(float(d[0]) - 2 / 3) < 1e-12 and torch.isnan(d[1]) and float(d[2]) == 0.0 and float(d[3]) == 1.0


def _fake_hc18(root, names, shape=(20, 30)):
    os.makedirs(root / "images")
    os.makedirs(root / "masks")
    for k, n in enumerate(names):
        img = np.full(shape, 5 * k % 256, np.uint8)
        msk = np.zeros(shape, np.uint8)
        msk[5:12, 8:20] = 255
        Image.fromarray(img).save(root / "images" / n)
        Image.fromarray(msk).save(root / "masks" / n)


@pytest.mark.any_cpu_isa
def test_hc18_loader_split_by_subject(tmp_path):
    names = [f"{s:03d}_{t}HC.png" for s in range(20) for t in ("", "2")] + ["007_3HC.png"]
    _fake_hc18(tmp_path, names)
    assert subject_of("012_2HC.png") == 12
    splits = split_names(sorted(names), seed=1)
    assert splits == split_names(sorted(names), seed=1)
    subjects = {k: {subject_of(n) for n in v} for k, v in splits.items()}
    assert not (subjects["train"] & subjects["val"] or subjects["train"] & subjects["test"]
                or subjects["val"] & subjects["test"])
    assert sum(len(v) for v in splits.values()) == len(names) and len(subjects["train"]) == 14
    data = load_hc18(str(tmp_path), "test", size=(10, 15), pad_multiple=4)
    assert data.images.shape == (len(splits["test"]), 1, 12, 16) and data.images.dtype == torch.float32
    assert data.masks.dtype == torch.uint8 and set(data.masks.unique().tolist()) == {0, 1}
    assert not data.masks[:, 10:].any() and not data.masks[:, :, 15:].any()  # zero padding
    full = load_hc18(str(tmp_path))
    assert full.masks.shape == (len(names), 20, 30) and full.masks.sum(dim=(1, 2)).tolist() == [84] * len(names)
    image, mask = HC18Dataset(full)[2]
    k = names.index(full.names[2])  # the grey value _fake_hc18 wrote for this file
    assert image.shape == (1, 20, 30) and abs(float(image.max()) - 5 * k / 255) < 1e-6


@pytest.mark.any_cpu_isa
def test_report_prints_a_table(tmp_path, capsys):
    _fake_hc18(tmp_path, [f"{s:03d}_HC.png" for s in range(10)])
    assert report.main(["--data", str(tmp_path), "--ratios", "0.3", "0.6", "--protocols", "dilation",
                        "erode_dilate", "--param", "dilation.iterations=2,3"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| dilation") or line.startswith("| erode")]
    assert len(rows) == 4 and "3 / 10" in rows[0] and "6 / 10" in rows[1] and "iterations=(2, 3)" in rows[0]
    dice = float(rows[0].split("|")[5])
    assert 0.3 < dice < 1.0


def test_noise_table_matches_direct_dice():
    masks = ellipses(10)
    rows = report.noise_table(masks, ["dilation"], [0.5], seed=0)
    noisy, recs = corrupt_labels(masks, "dilation", 0.5, seed=0)
    hit = torch.tensor([r.corrupted for r in recs])
    assert abs(rows[0]["mean"] - float(dice_per_sample(noisy[hit], masks[hit]).mean())) < 1e-12
    assert rows[0]["corrupted"] == 5


@pytest.mark.any_cpu_isa
def test_top_level_name():
    assert noisyseg_ext.corrupt_labels is corrupt_labels


@pytest.mark.any_cpu_isa
def test_hc18_shared_copy_split():
    root = "/work/shared/data/hc18"
    if not os.path.isdir(os.path.join(root, "masks")):
        pytest.skip("shared HC18 copy not present")
    from noisyseg_ext.data.hc18 import list_names

    names = list_names(root)
    splits = split_names(names)
    assert {k: len(v) for k, v in splits.items()} == {"train": 705, "val": 100, "test": 194}
    subjects = [{subject_of(n) for n in v} for v in splits.values()]
    assert sum(len(s) for s in subjects) == len(set().union(*subjects)) == 806
    data = load_hc18(root, "val", size=(108, 160), pad_multiple=16, limit=5)
    assert data.images.shape == (5, 1, 112, 160) and data.masks.shape == (5, 112, 160)
