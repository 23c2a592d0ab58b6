"""load_dataset on every source: folders (PNG, TIFF, NPY), nnU-Net raw (2D PNG, 3D NIfTI), the
embedded HC18 sample, tensors; resizing with spacing, normalisation, lazily read images."""

import json
import os
import pickle

import nibabel as nib
import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from noisyseg_ext.data import HC18_SUBJECT_REGEX, LazyImages, load_dataset


def _box_mask(shape, value=255, box=(slice(2, 6), slice(3, 9))):
    m = np.zeros(shape, np.uint8)
    m[box] = value
    return m


def write_png_folder(root, names, shape=(12, 16), mask_value=255):
    os.makedirs(root / "images")
    os.makedirs(root / "masks")
    for k, n in enumerate(names):
        Image.fromarray(np.full(shape, 10 + k, np.uint8) + np.arange(shape[1], dtype=np.uint8)).save(root / "images" / n)
        Image.fromarray(_box_mask(shape, mask_value)).save(root / "masks" / n)


def test_png_folder_binary_0_255(tmp_path):
    write_png_folder(tmp_path, ["b.png", "a.png", "c.png"])
    data = load_dataset(tmp_path, normalize="none")
    assert data.names == ["a.png", "b.png", "c.png"] and data.subjects == data.names  # one subject per file
    assert len(data) == 3 and data.dims == 2 and data.in_channels == 1 and data.num_classes == 2
    assert data.images[0].shape == (1, 12, 16) and data.images[0].dtype == torch.float32
    assert data.masks[0].dtype == torch.uint8 and data.masks[0].sum() == 4 * 6  # 255 -> 1
    assert set(data.masks[0].unique().tolist()) == {0, 1}
    assert float(data.images[0][0, 0, 0]) == 11.0 and float(data.images[2][0, 0, 5]) == 17.0  # raw values, a.png written 2nd
    assert data.spacings == [(1.0, 1.0)] * 3 and data.affines == [None] * 3
    assert data.original_shapes == [(12, 16)] * 3 and data.noisy_masks is None
    assert data.sources[1] == str(tmp_path / "images" / "b.png")


def test_png_folder_0_1_masks_and_hc18_subjects(tmp_path):
    names = ["001_HC.png", "001_2HC.png", "002_HC.png", "010_3HC.png"]
    write_png_folder(tmp_path, names, mask_value=1)
    data = load_dataset(str(tmp_path))
    assert data.subject_regex == HC18_SUBJECT_REGEX
    assert dict(zip(data.names, data.subjects)) == {"001_2HC.png": "001", "001_HC.png": "001", "002_HC.png": "002",
                                                    "010_3HC.png": "010"}
    assert data.num_classes == 2 and int(data.masks[0].sum()) == 24
    own = load_dataset(str(tmp_path), subject_regex=r"(\d)_\d*HC")  # group 1: the number's last digit
    assert own.subjects == ["1", "1", "2", "0"] and own.subject_regex == r"(\d)_\d*HC"
    whole = load_dataset(str(tmp_path), subject_regex=r"^\d\d")  # no group: the whole match
    assert whole.subjects == ["00", "00", "00", "01"]


def test_tiff_folder_rgb_and_grey_pictures(tmp_path):
    os.makedirs(tmp_path / "images")
    os.makedirs(tmp_path / "masks")
    rgb = np.zeros((10, 14, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 10, 20, 30
    tifffile.imwrite(tmp_path / "images" / "colour.tif", rgb)
    grey_rgb = np.repeat(np.arange(140, dtype=np.uint8).reshape(10, 14, 1), 3, axis=2)
    tifffile.imwrite(tmp_path / "images" / "grey.tif", grey_rgb)  # R == G == B: one channel, then repeated
    for n in ("colour.tif", "grey.tif"):
        tifffile.imwrite(tmp_path / "masks" / n, _box_mask((10, 14), 2))
    Image.fromarray(_box_mask((10, 14), 1)).save(tmp_path / "masks" / "x.png")
    Image.fromarray(np.zeros((10, 14, 3), np.uint8)).save(tmp_path / "images" / "x.png")
    data = load_dataset(tmp_path, normalize="none", num_classes=3)
    assert data.in_channels == 3 and data.names == ["colour.tif", "grey.tif", "x.png"]
    assert data.images[0][:, 0, 0].tolist() == [10.0, 20.0, 30.0]
    g = data.images[1]
    assert g.shape == (3, 10, 14) and torch.equal(g[0], g[2]) and float(g[0, 1, 0]) == 14.0
    assert data.num_classes == 3 and int(data.masks[0].max()) == 2
    assert torch.equal(data.images[2], torch.zeros(3, 10, 14))  # an RGB PNG with equal channels, repeated


def test_npy_folder_channels_first_multiclass(tmp_path):
    os.makedirs(tmp_path / "images")
    os.makedirs(tmp_path / "masks")
    rng = np.random.default_rng(0)
    for k in range(3):
        np.save(tmp_path / "images" / f"c{k}.npy", rng.normal(5, 2, (2, 8, 10)).astype(np.float32))
        mask = np.zeros((8, 10), np.int16)
        mask[1:4, 1:4], mask[5:7, 5:9] = 1, 2 + (k == 2)  # classes 0..3 over the set
        np.save(tmp_path / "masks" / f"c{k}.npy", mask)
    data = load_dataset(tmp_path)
    assert data.in_channels == 2 and data.num_classes == 4 and data.images[0].shape == (2, 8, 10)
    assert data.masks[2].dtype == torch.uint8 and set(data.masks[2].unique().tolist()) == {0, 1, 3}
    for c in range(2):  # z-score per image and channel
        assert abs(float(data.images[1][c].mean())) < 1e-5 and abs(float(data.images[1][c].std(correction=0)) - 1) < 1e-4


def _nifti(path, array, zooms, dtype=np.float32):
    affine = np.diag([*zooms, 1.0])
    affine[:3, 3] = [10.0, -20.0, 5.0]
    nib.save(nib.Nifti1Image(array.astype(dtype), affine), path)
    return affine


def _nnunet_3d(root, cases=("la_001", "la_002"), shape=(10, 12, 6), zooms=(0.5, 0.7, 2.0), channels=2):
    os.makedirs(root / "imagesTr")
    os.makedirs(root / "labelsTr")
    json.dump({"channel_names": {str(c): f"mod{c}" for c in range(channels)},
               "labels": {"background": 0, "atrium": 1, "wall": 2}, "numTraining": len(cases),
               "file_ending": ".nii.gz"}, open(root / "dataset.json", "w"))
    affine = None
    for k, case in enumerate(cases):
        for c in range(channels):
            vol = np.full(shape, 100.0 * (c + 1) + k) + np.arange(shape[2])
            affine = _nifti(root / "imagesTr" / f"{case}_{c:04d}.nii.gz", vol, zooms)
        lab = np.zeros(shape, np.uint8)
        lab[2:6, 3:8, 1:4] = 1
        lab[3:5, 4:6, 2:3] = 2
        _nifti(root / "labelsTr" / f"{case}.nii.gz", lab, zooms, np.uint8)
    return affine


def test_nnunet_3d_nifti_spacing_affine_channels(tmp_path):
    affine = _nnunet_3d(tmp_path)
    data = load_dataset(tmp_path, normalize="none")
    assert data.names == ["la_001", "la_002"] and data.dims == 3 and data.in_channels == 2 and data.num_classes == 3
    assert data.images[0].shape == (2, 10, 12, 6) and data.masks[0].shape == (10, 12, 6)
    assert float(data.images[1][0, 0, 0, 3]) == 104.0 and float(data.images[1][1, 0, 0, 0]) == 201.0  # channel order
    assert data.spacings[0] == pytest.approx((0.5, 0.7, 2.0))
    assert np.allclose(data.affines[0], affine) and data.sources[0].endswith("la_001_0000.nii.gz")
    assert int((data.masks[0] == 2).sum()) == 2 * 2 * 1 and int((data.masks[0] == 1).sum()) == 4 * 5 * 3 - 4


def test_resize_scales_spacing_and_keeps_classes(tmp_path):
    _nnunet_3d(tmp_path, shape=(10, 12, 6))
    data = load_dataset(tmp_path, size=(5, 6, 12))
    assert data.images[0].shape == (2, 5, 6, 12) and data.masks[0].shape == (5, 6, 12)
    assert data.spacings[0] == pytest.approx((1.0, 1.4, 1.0))  # 0.5 * 10 / 5, 0.7 * 12 / 6, 2.0 * 6 / 12
    assert data.original_shapes[0] == (10, 12, 6)
    assert set(data.masks[0].unique().tolist()) <= {0, 1, 2} and int(data.masks[0].sum()) > 0


def test_nnunet_2d_png(tmp_path):
    os.makedirs(tmp_path / "imagesTr")
    os.makedirs(tmp_path / "labelsTr")
    json.dump({"channel_names": {"0": "R", "1": "G", "2": "B"}, "labels": {"background": 0, "road": 1},
               "file_ending": ".png"}, open(tmp_path / "dataset.json", "w"))
    rgb = np.zeros((8, 9, 3), np.uint8)
    rgb[..., 1] = 50
    for case in ("img_a", "img_b"):
        Image.fromarray(rgb).save(tmp_path / "imagesTr" / f"{case}_0000.png")  # one RGB file = 3 channels
        Image.fromarray(_box_mask((8, 9), 1)).save(tmp_path / "labelsTr" / f"{case}.png")
    data = load_dataset(tmp_path, size=(16, 18), normalize="none")
    assert data.names == ["img_a", "img_b"] and data.dims == 2 and data.in_channels == 3
    assert data.images[0].shape == (3, 16, 18) and data.spacings[0] == (0.5, 0.5)
    assert float(data.images[0][1, 8, 9]) == pytest.approx(50.0) and data.num_classes == 2


def test_nnunet_2d_nifti_with_singleton_axis(tmp_path):
    os.makedirs(tmp_path / "imagesTr")
    os.makedirs(tmp_path / "labelsTr")
    json.dump({"channel_names": {"0": "MR"}, "labels": {"0": "background", "1": "organ"}},  # v1 labels form
              open(tmp_path / "dataset.json", "w"))
    _nifti(tmp_path / "imagesTr" / "s1_0000.nii.gz", np.random.rand(7, 9, 1), (0.8, 0.9, 1.0))
    _nifti(tmp_path / "labelsTr" / "s1.nii.gz", _box_mask((7, 9), 1)[..., None], (0.8, 0.9, 1.0), np.uint8)
    data = load_dataset(tmp_path)
    assert data.dims == 2 and data.masks[0].shape == (7, 9) and data.spacings[0] == pytest.approx((0.8, 0.9))


def test_hc18_sample():
    data = load_dataset("hc18-sample")
    assert len(data) == 64 and data.dims == 2 and data.num_classes == 2 and data.in_channels == 1
    assert data.images[0].shape == (1, 108, 160) and data.masks[0].shape == (108, 160)
    assert data.subject_regex == HC18_SUBJECT_REGEX and data.subjects[:2] == ["000", "012"]
    assert abs(float(data.images[5].mean())) < 1e-4 and abs(float(data.images[5].std(correction=0)) - 1) < 1e-3
    small = load_dataset("hc18-sample", size=(54, 80), normalize="minmax")
    assert small.images[0].shape == (1, 54, 80) and small.spacings[0] == (2.0, 2.0)
    assert float(small.images[0].min()) == 0.0 and float(small.images[0].max()) == pytest.approx(1.0)


def test_tensor_sources():
    images = torch.rand(3, 2, 6, 7)
    masks = torch.zeros(3, 6, 7, dtype=torch.long)
    masks[:, 1:3, 1:3] = 1
    data = load_dataset((images, masks), normalize="none")
    assert data.names == ["item_0000", "item_0001", "item_0002"] and data.in_channels == 2
    assert torch.equal(data.images[1], images[1]) and data.masks[1].dtype == torch.uint8
    images[1].zero_()  # the set holds its own copy
    assert data.images[1].abs().sum() > 0
    grey = load_dataset((torch.rand(2, 6, 7), masks[:2].bool(), ["x", "y"]), subject_regex=r"^.")
    assert grey.in_channels == 1 and grey.names == ["x", "y"] and grey.subjects == ["x", "y"]
    vols = [torch.rand(1, 4, 5, 6), torch.rand(1, 6, 5, 4)]  # a list: sizes may differ (3D patches)
    labs = [torch.randint(0, 3, (4, 5, 6)), torch.randint(0, 3, (6, 5, 4))]
    vol = load_dataset((vols, labs), noisy_masks=[(m > 0).long() for m in labs])
    assert vol.dims == 3 and vol.num_classes == 3 and vol.masks[1].shape == (6, 5, 4)
    assert torch.equal(vol.noisy_masks[0], (labs[0] > 0).to(torch.uint8))


def test_normalisations_constant_image():
    masks = torch.zeros(1, 4, 4, dtype=torch.long)
    masks[0, 0, 0] = 1
    const = torch.full((1, 1, 4, 4), 7.0)
    assert torch.equal(load_dataset((const, masks)).images[0], torch.zeros(1, 4, 4))       # std 0: mean removed
    assert torch.equal(load_dataset((const, masks), normalize="minmax").images[0], torch.zeros(1, 4, 4))


def test_noisy_masks_folder(tmp_path):
    write_png_folder(tmp_path, ["a.png", "b.png"])
    os.makedirs(tmp_path / "noisy")
    for n in ("a.png", "b.png"):
        Image.fromarray(_box_mask((12, 16), 255, (slice(1, 7), slice(2, 10)))).save(tmp_path / "noisy" / n)
    data = load_dataset(tmp_path, noisy_masks=tmp_path / "noisy")
    assert int(data.noisy_masks[0].sum()) == 6 * 8 and int(data.masks[0].sum()) == 4 * 6


def test_lazy_images_equal_eager(tmp_path):
    write_png_folder(tmp_path, ["a.png", "b.png", "c.png"])
    eager = load_dataset(tmp_path, size=(6, 8))
    lazy = load_dataset(tmp_path, size=(6, 8), lazy_images=True)
    assert isinstance(lazy.images, LazyImages) and len(lazy.images) == 3
    assert all(torch.equal(a, b) for a, b in zip(eager.images, lazy.images))
    sub = lazy.subset([2, 0])
    assert isinstance(sub.images, LazyImages) and torch.equal(sub.images[0], eager.images[2])
    assert sub.names == ["c.png", "a.png"]
    assert torch.equal(pickle.loads(pickle.dumps(sub.images))[1], eager.images[0])  # for spawned workers


def test_shared_hc18_folder_if_present():
    root = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "hc18")
    if not os.path.isdir(os.path.join(root, "masks")):
        pytest.skip("shared HC18 copy not present")
    data = load_dataset(root, size=(54, 80))  # the whole folder, small: also a load-time smoke test
    assert len(data) == 999 and len(set(data.subjects)) == 806 and data.num_classes == 2
    assert data.images[0].shape == (1, 54, 80) and data.spacings[0] == (4.0, 4.0)
