"""TrainSet: noise on the train split only, records, deterministic augmented samples, patches, padding."""

import math

import pytest
import torch

from noisyseg_ext import corrupt_labels
from noisyseg_ext.data import Augmentation, TrainSet, augment, load_dataset, make_splits, synthetic_dataset
from noisyseg_ext.errors import ConfigError


def test_noise_only_on_train_and_records_match():
    data = synthetic_dataset(20, (24, 24))
    splits = make_splits(data, seed=0)
    before = [m.clone() for m in data.masks]
    train = TrainSet(data.subset(splits["train"]), noise="dilation", ratio=0.5, seed=4, noise_params={"iterations": 2})
    assert all(torch.equal(a, b) for a, b in zip(before, data.masks))  # the dataset's masks are untouched
    n = len(train)
    assert sum(train.corrupted) == round(0.5 * n) and len(train.records) == n
    for i, rec in enumerate(train.records):
        assert rec.index == i and rec.corrupted == bool((train.noisy[i] != train.clean[i]).any())
    assert 0.3 < train.noise_dice < 1.0
    # sample i is dataset index i of the train subset, as one corrupt_labels call over the split
    direct, _ = corrupt_labels(torch.stack(train.clean), "dilation", 0.5, seed=4, iterations=2)
    assert torch.equal(torch.stack(train.noisy), direct)
    meta = TrainSet(data.subset(splits["meta"]), noise="none", augment=False)
    assert math.isnan(meta.noise_dice) and not any(meta.corrupted)
    assert all(a is b for a, b in zip(meta.noisy, meta.clean))  # "none" shares, copies nothing
    s = meta.sample(0, key=0)
    assert torch.equal(s["label"], s["clean"])


def test_real_noisy_masks_are_the_labels():
    images, masks = torch.rand(4, 8, 8), torch.zeros(4, 8, 8, dtype=torch.long)
    masks[:, 2:5, 2:5] = 1
    noisy = masks.clone()
    noisy[1, 2:6, 2:6] = 1
    data = load_dataset((images, masks), noisy_masks=noisy)
    train = TrainSet(data, noise="dilation", ratio=1.0, augment=False)  # --noise ignored
    assert train.noise == "real" and train.corrupted == [False, True, False, False]
    assert torch.equal(train.sample(1, 0)["label"], noisy[1]) and torch.equal(train.sample(1, 0)["clean"], masks[1])
    assert train.noise_dice == pytest.approx(2 * 9 / (9 + 16))


def test_sample_is_a_function_of_seed_and_key():
    data = synthetic_dataset(3, (32, 24))
    a = TrainSet(data, noise="dilation", ratio=0.5, seed=1, pad_multiple=8)
    b = TrainSet(data, noise="dilation", ratio=0.5, seed=1, pad_multiple=8)
    torch.manual_seed(123)  # the global RNG plays no part
    x = a.sample(2, key=17)
    torch.manual_seed(999)
    _ = b.sample(0, key=3)
    y = b.sample(2, key=17)
    assert all(torch.equal(x[k], y[k]) for k in x)
    assert x["image"].shape == (1, 32, 24) and x["label"].dtype == torch.int64 and int(x["index"]) == 2
    others = [a.sample(2, key=k)["image"] for k in range(8)]
    assert sum(not torch.equal(others[0], o) for o in others[1:]) >= 5  # keys draw different augmentations
    other_stream = TrainSet(data, noise="none", seed=1, stream=1).sample(2, key=17)
    assert not torch.equal(other_stream["image"], x["image"])


def test_augmentation_keeps_image_and_labels_aligned():
    mask = torch.zeros(40, 56, dtype=torch.long)
    mask[8:30, 10:40] = 1
    mask[15:20, 20:25] = 2
    image = mask.float()[None]
    always = Augmentation(flip_p=0.5, affine_p=1.0)
    moved = 0
    for k in range(12):
        u = torch.rand(11, generator=torch.Generator().manual_seed(k), dtype=torch.float64)
        img, labels = augment(image, torch.stack([mask, mask]), u, always)
        assert torch.equal(labels[0], labels[1])
        differ = (img[0] - labels[0].float()).abs() > 0.5
        assert differ.float().mean() < 0.03  # only interpolation at the class edges
        moved += not torch.equal(labels[0], mask)
    assert moved >= 10
    flips_only = Augmentation(flip_p=1.0, affine_p=0.0)  # flips are exact
    img, labels = augment(image, mask[None], torch.zeros(11, dtype=torch.float64), flips_only)
    assert torch.equal(img[0], labels[0].float()) and torch.equal(labels[0], mask.flip(0, 1))


def test_augmentation_3d_alignment():
    mask = torch.zeros(20, 24, 16, dtype=torch.long)
    mask[4:14, 6:18, 3:12] = 1
    u = torch.full((11,), 0.9, dtype=torch.float64)
    u[3] = 0.0  # affine on, every angle near +13.5 degrees
    img, labels = augment(mask.float()[None], mask[None], u, Augmentation())
    assert ((img[0] - labels[0].float()).abs() > 0.5).float().mean() < 0.03
    assert not torch.equal(labels[0], mask) and labels[0].sum() > 0


def test_whole_images_padded_to_multiple():
    data = synthetic_dataset(2, (20, 27))
    train = TrainSet(data, noise="none", augment=False, pad_multiple=8)
    s = train.sample(1, key=0)
    assert s["image"].shape == (1, 24, 32) and s["label"].shape == (24, 32)
    assert torch.equal(s["image"][:, :20, :27], data.images[1]) and s["image"][:, 20:].abs().sum() == 0
    assert s["label"][:, 27:].sum() == 0 and torch.equal(s["label"][:20, :27], data.masks[1].long())


def test_patches_foreground_ratio_and_small_volumes():
    data = synthetic_dataset(4, (32, 32, 24))
    patch = (8, 8, 8)
    share = []
    for ratio in (0.0, 1.0, 0.5):
        t = TrainSet(data, noise="none", augment=False, patch=patch, fg_ratio=ratio)
        hits = [bool(t.sample(k % 4, key=k)["label"][4, 4, 4] != 0) for k in range(200)]
        share.append(sum(hits) / len(hits))
    fg_fraction = float(sum((m != 0).float().mean() for m in data.masks) / 4)
    assert share[1] == 1.0                              # centred on a foreground voxel every time
    assert abs(share[0] - fg_fraction) < 0.12           # uniform: as often as the foreground's volume
    assert abs(share[2] - (0.5 + 0.5 * fg_fraction)) < 0.12
    small = TrainSet(synthetic_dataset(1, (6, 7, 5)), noise="none", patch=(8, 8, 8))
    s = small.sample(0, key=1)
    assert s["image"].shape == (1, 8, 8, 8) and s["clean"].shape == (8, 8, 8)  # zero-padded up to the patch


def test_unknown_noise_and_bad_params_are_config_errors():
    data = synthetic_dataset(2, (8, 8))
    with pytest.raises(ConfigError, match="unknown noise 'blur'"):
        TrainSet(data, noise="blur")
    with pytest.raises(ConfigError, match="has no parameter"):
        TrainSet(data, noise="dilation", noise_params={"sigma": 3})
