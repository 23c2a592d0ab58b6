"""Every user error of `noisyseg` ends with one line on stderr, exit status 2, and no traceback
(each case a real subprocess, as a user runs the command)."""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from trainer_helpers import tiny_data, tiny_run


def _folder(root, images=("a.png", "b.png"), masks=("a.png", "b.png"), shapes=None, mask_value=255):
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    for i, n in enumerate(images):
        shape = shapes[i] if shapes else (16, 16)
        Image.fromarray((np.random.rand(*shape) * 255).astype(np.uint8)).save(root / "images" / n)
    for i, n in enumerate(masks):
        shape = shapes[i] if shapes else (16, 16)
        m = np.zeros(shape, np.uint8)
        m[4:10, 4:10] = mask_value
        Image.fromarray(m).save(root / "masks" / n)
    return str(root)


def _noisyseg(*args, cwd=None):
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    return subprocess.run([sys.executable, "-m", "noisyseg_ext.cli.main", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=300)


def _expect_error(result, *fragments):
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("noisyseg: error:"), result.stderr
    for f in fragments:
        assert f in lines[0], (f, lines[0])


TRAIN = ["train", "--steps", "1", "--quiet"]


@pytest.mark.parametrize("case", ["missing", "empty", "no_masks", "no_images", "mask_values", "mixed_sizes"])
def test_data_errors(tmp_path, case):
    if case == "missing":
        data, expected = str(tmp_path / "nowhere"), ("does not exist",)
    elif case == "empty":
        data, expected = _folder(tmp_path / "d", images=(), masks=()), ("no image",)
    elif case == "no_masks":
        data, expected = _folder(tmp_path / "d", masks=("a.png",)), ("images without masks", "b.png")
    elif case == "no_images":
        data, expected = _folder(tmp_path / "d", images=("a.png",)), ("masks without images", "b.png")
    elif case == "mask_values":
        data, expected = _folder(tmp_path / "d", mask_value=128), ("128", "a.png")
    else:
        data, expected = _folder(tmp_path / "d", shapes=[(16, 16), (16, 24)]), ("--size",)
    _expect_error(_noisyseg(*TRAIN, "--data", data, "--out", str(tmp_path / "run")), *expected)


@pytest.mark.parametrize("args, expected", [
    (["--method", "magic"], ("unknown method 'magic'", "baseline")),
    (["--noise", "blur"], ("--noise", "blur")),
    (["--net", "resnet"], ("--net", "resnet")),
    (["--ratio", "1.5"], ("--ratio", "[0, 1]")),
    (["--ratio", "-0.1"], ("--ratio",)),
    (["--no-such-option", "1"], ("unrecognized arguments",)),
])
def test_option_errors(tmp_path, args, expected):
    _expect_error(_noisyseg(*TRAIN, "--out", str(tmp_path / "run"), *args), *expected)


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_bad_checkpoints(tmp_path, damage):
    _, trainer = tiny_run(tmp_path / "run", steps=2, eval_every=2)
    path = tmp_path / "run" / "checkpoints" / "last.pt"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3] if damage == "truncated" else b"\x00garbage" * 50)
    _expect_error(_noisyseg("eval", "--checkpoint", str(path)), "last.pt", "truncated or corrupt")
    _expect_error(_noisyseg("eval", "--checkpoint", str(tmp_path / "none.pt")), "does not exist")


def test_resume_with_other_config_and_occupied_out(tmp_path):
    sample_run = tmp_path / "run"
    common = ["--steps", "2", "--eval-every", "2", "--base", "4", "--depth", "2", "--batch", "4", "--quiet",
              "--out", str(sample_run)]
    assert _noisyseg("train", *common).returncode == 0
    _expect_error(_noisyseg("train", *common), "holds another run", "--overwrite")
    _expect_error(_noisyseg("train", *common, "--resume", "--lr", "0.5", "--batch", "8"), "differs", "lr", "batch")
    ok = _noisyseg("train", *common, "--overwrite")
    assert ok.returncode == 0, ok.stderr
