"""Every user error of the data layer is a one-line DataError naming the file(s) and the values."""

import json
import os

import nibabel as nib
import numpy as np
import pytest
import torch
from PIL import Image

from noisyseg_ext.data import TrainSet, load_dataset, synthetic_dataset
from noisyseg_ext.errors import DataError


def _folder(root, images=(), masks=(), shape=(8, 10), mask=None):
    os.makedirs(root / "images", exist_ok=True)
    os.makedirs(root / "masks", exist_ok=True)
    for n in images:
        Image.fromarray(np.zeros(shape, np.uint8)).save(root / "images" / n)
    for n in masks:
        m = np.zeros(shape, np.uint8) if mask is None else mask
        m = m.copy()
        if mask is None:
            m[1:3, 1:3] = 255
        Image.fromarray(m).save(root / "masks" / n)


def _raises(match, fn, *args, **kwargs):
    with pytest.raises(DataError, match=match) as info:
        fn(*args, **kwargs)
    assert "\n" not in str(info.value)  # the CLI prints it as one line
    return str(info.value)


def test_missing_and_empty_folders(tmp_path):
    _raises("does not exist", load_dataset, tmp_path / "nowhere")
    (tmp_path / "plain").mkdir()
    _raises(r"has no images/ and no masks/ folder", load_dataset, tmp_path / "plain")
    _folder(tmp_path / "empty")
    (tmp_path / "empty" / "images" / "notes.txt").write_text("not an image")
    _raises("hold no image files", load_dataset, tmp_path / "empty")


def test_unpaired_names_are_listed(tmp_path):
    _folder(tmp_path, images=["a.png", "b.png", "c.png"], masks=["a.png", "d.png"])
    msg = _raises("images without masks: b.png, c.png; masks without images: d.png", load_dataset, tmp_path)
    assert str(tmp_path) in msg


@pytest.mark.parametrize("values, match", [
    ((0, 128, 255), r"m\.png holds values \[0, 128, 255\]: 255 is allowed only in 0/255"),
    ((0, 7), r"never \[1, 2, 3, 4, 5, 6\]"),          # a grey-level code, not classes 0..C-1
])
def test_bad_png_mask_values(tmp_path, values, match):
    m = np.zeros((8, 10), np.uint8)
    for k, v in enumerate(values):
        m[k, :] = v
    _folder(tmp_path, images=["m.png"], masks=["m.png"], mask=m)
    _raises(match, load_dataset, tmp_path)


def test_bad_npy_and_nifti_mask_values(tmp_path):
    _folder(tmp_path / "neg", images=["a.png"])
    np.save(tmp_path / "neg" / "images" / "x.npy", np.zeros((4, 4), np.float32))
    np.save(tmp_path / "neg" / "masks" / "x.npy", np.array([[0, -1], [2, 0]], np.int32).repeat(2, 0).repeat(2, 1))
    os.remove(tmp_path / "neg" / "images" / "a.png")
    _raises(r"x\.npy holds negative values \[-1\]", load_dataset, tmp_path / "neg")
    root = tmp_path / "frac"
    _folder(root)
    vol = np.zeros((4, 5, 3), np.float32)
    vol[0, 0, 0] = 0.5
    for sub in ("images", "masks"):
        nib.save(nib.Nifti1Image(vol, np.eye(4)), root / sub / "v.nii.gz")
    _raises(r"v\.nii\.gz holds non-integer values \[0\.5\]", load_dataset, root)


def test_colour_mask_and_mixed_conventions(tmp_path):
    rgb = np.zeros((8, 10, 3), np.uint8)
    rgb[2, 3] = (255, 0, 0)
    _folder(tmp_path / "c", images=["a.png"])
    Image.fromarray(rgb).save(tmp_path / "c" / "masks" / "a.png")
    _raises(r"mask .*a\.png is a colour image .*\(255, 0, 0\) at pixel \(2, 3\)", load_dataset, tmp_path / "c")
    multi = np.zeros((8, 10), np.uint8)
    multi[0, :3] = [1, 2, 0]
    _folder(tmp_path / "m", images=["a.png", "b.png"], masks=["a.png"])
    Image.fromarray(multi).save(tmp_path / "m" / "masks" / "b.png")
    _raises(r"mix 0/255 binary masks \(.*a\.png\) with multi-class masks \(.*b\.png", load_dataset, tmp_path / "m")


def test_nnunet_errors(tmp_path):
    root = tmp_path / "nn"
    os.makedirs(root / "imagesTr")
    os.makedirs(root / "labelsTr")
    _raises("has no dataset.json", load_dataset, root)
    json.dump({"channel_names": {"0": "CT", "1": "PET"}, "labels": {"background": 0, "tumour": 1},
               "file_ending": ".png"}, open(root / "dataset.json", "w"))
    img, lab = np.zeros((6, 6), np.uint8), np.zeros((6, 6), np.uint8)
    lab[1, 1] = 2
    for name in ("a_0000.png", "a_0001.png", "b_0000.png", "c_0000.png", "c_0001.png"):
        Image.fromarray(img).save(root / "imagesTr" / name)
    for name in ("a.png", "b.png", "c.png", "d.png"):
        Image.fromarray(lab).save(root / "labelsTr" / name)
    _raises("labels without images: d", load_dataset, root)
    os.remove(root / "labelsTr" / "d.png")
    _raises(r"imagesTr/ lacks b_0001\.png", load_dataset, root)
    Image.fromarray(img).save(root / "imagesTr" / "b_0001.png")
    _raises(r"a\.png holds values \[2\] but .*dataset\.json declares 2 classes", load_dataset, root)
    Image.fromarray(img).save(root / "imagesTr" / "e.png")
    _raises(r"imagesTr/e\.png lacks the channel suffix", load_dataset, root)


def test_size_and_shape_errors(tmp_path):
    _folder(tmp_path, images=["a.png"], masks=["a.png"])
    _raises(r"--size 4x4x4 has 3 axes but .*a\.png is 2D \(8x10\)", load_dataset, tmp_path, size=(4, 4, 4))
    Image.fromarray(np.zeros((8, 11), np.uint8)).save(tmp_path / "images" / "a.png")
    _raises(r"image .*a\.png has shape 8x11 but its mask is 8x10", load_dataset, tmp_path)


def test_mixed_sizes_need_size_for_whole_images(tmp_path):
    _folder(tmp_path, images=["a.png"], masks=["a.png"], shape=(8, 10))
    _folder(tmp_path, images=["b.png"], masks=["b.png"], shape=(12, 10))
    data = load_dataset(tmp_path)  # loading allows it (3D patch training)...
    msg = _raises(r"images differ in size \(a\.png 8x10, b\.png 12x10\): pass --size", TrainSet, data, noise="none")
    assert "--patch" in msg                     # ...whole-image training does not
    _raises("differ in size", data.require_same_size)
    assert TrainSet(data, noise="none", patch=(8, 8)).sample(1, 0)["image"].shape == (1, 8, 8)
    same = load_dataset(tmp_path, size=(8, 8))
    assert same.require_same_size() == (8, 8)


def test_subject_regex_errors(tmp_path):
    _folder(tmp_path, images=["a.png", "b1.png"], masks=["a.png", "b1.png"])
    _raises(r"--subject-regex '\\\\d' does not match a\.png", load_dataset, tmp_path, subject_regex=r"\d")
    _raises("not a valid regular expression", load_dataset, tmp_path, subject_regex="(")


def test_train_set_patch_errors():
    data = synthetic_dataset(2, (16, 16, 8))
    _raises(r"--patch 8x8 has 2 axes but the data is 3D", TrainSet, data, noise="none", patch=(8, 8))
    _raises(r"--patch 12x8x8: every size must be a positive multiple of 8", TrainSet, data, noise="none",
            patch=(12, 8, 8))


def test_tensor_source_errors():
    masks = torch.zeros(2, 4, 4, dtype=torch.long)
    _raises(r"2 images but 3 masks", load_dataset, (torch.rand(2, 4, 4), torch.zeros(3, 4, 4)))
    _raises(r"item_0001\) holds non-integer values \[0\.25\]", load_dataset,
            (torch.rand(2, 4, 4), torch.tensor([[[0.0]], [[0.25]]]).expand(2, 4, 4)))
    _raises(r"image tensors\[0\] \(item_0000\) has shape", load_dataset, (torch.rand(2, 1, 4, 5), masks))
    _raises("normalize must be one of", load_dataset, (torch.rand(2, 4, 4), masks), normalize="robust")
