"""save_mask: PNG, NIfTI (with the affine), NPY, TIFF; read back through the loaders."""

import nibabel as nib
import numpy as np
import pytest
import torch
from PIL import Image

from noisyseg_ext.data import load_dataset, mask_file_name, save_mask
from noisyseg_ext.data.readers import read_file
from noisyseg_ext.errors import DataError


def test_png_binary_is_0_255_and_loads_back(tmp_path):
    mask = torch.zeros(6, 9, dtype=torch.long)
    mask[1:4, 2:7] = 1
    save_mask(tmp_path / "masks" / "a.png", mask, num_classes=2)
    stored = np.asarray(Image.open(tmp_path / "masks" / "a.png"))
    assert stored.dtype == np.uint8 and set(np.unique(stored).tolist()) == {0, 255}
    (tmp_path / "images").mkdir()
    Image.fromarray(np.zeros((6, 9), np.uint8)).save(tmp_path / "images" / "a.png")
    assert torch.equal(load_dataset(tmp_path).masks[0], mask.to(torch.uint8))


def test_png_multiclass_keeps_class_values(tmp_path):
    mask = torch.tensor([[0, 1], [2, 1]], dtype=torch.uint8)
    save_mask(tmp_path / "m.png", mask, num_classes=3)
    assert np.asarray(Image.open(tmp_path / "m.png")).tolist() == [[0, 1], [2, 1]]
    with pytest.raises(DataError, match="PNG holds 2D masks"):
        save_mask(tmp_path / "v.png", torch.zeros(2, 3, 4, dtype=torch.long))
    with pytest.raises(DataError, match="unsupported ending '.jpg'"):
        save_mask(tmp_path / "m.jpg", mask)


def test_nifti_round_trip_with_affine(tmp_path):
    affine = np.array([[0.0, 0.0, 2.5, -30.0], [0.0, -0.8, 0.0, 40.0], [0.7, 0.0, 0.0, 5.0], [0, 0, 0, 1]])
    mask = torch.zeros(5, 6, 7, dtype=torch.long)
    mask[1:3, 2:5, 3:6] = 2
    save_mask(tmp_path / "p.nii.gz", mask, affine=affine)
    img = nib.load(tmp_path / "p.nii.gz")
    assert np.allclose(img.affine, affine) and np.asarray(img.dataobj).dtype == np.uint8
    assert np.array_equal(np.asarray(img.dataobj), mask.numpy())
    back = read_file(str(tmp_path / "p.nii.gz"), "mask")
    assert back.spacing == pytest.approx((0.7, 0.8, 2.5))
    save_mask(tmp_path / "q.nii", mask, like=tmp_path / "p.nii.gz")  # the affine of the input image
    assert np.allclose(nib.load(tmp_path / "q.nii").affine, affine)
    save_mask(tmp_path / "flat.nii.gz", mask[0])
    assert nib.load(tmp_path / "flat.nii.gz").shape == (6, 7, 1)
    assert read_file(str(tmp_path / "flat.nii.gz"), "mask").array.shape == (6, 7)


def test_npy_and_tiff(tmp_path):
    mask = torch.randint(0, 300, (4, 5))
    save_mask(tmp_path / "m.npy", mask)
    assert np.array_equal(np.load(tmp_path / "m.npy"), mask.numpy())
    save_mask(tmp_path / "m.tif", mask[:2] % 3)
    assert np.array_equal(read_file(str(tmp_path / "m.tif"), "mask").array, (mask[:2] % 3).numpy())


def test_mask_file_names():
    assert mask_file_name("012_HC.png") == "012_HC.png" and mask_file_name("la_003", ".nii.gz") == "la_003.nii.gz"
    assert mask_file_name("case.nii.gz", ".png") == "case.png" and mask_file_name("v1.2_scan", ".npy") == "v1.2_scan.npy"
