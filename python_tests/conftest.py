"""Shared test fixtures: every test that takes `device` runs on the CPU and, when present, CUDA."""

import atexit
import os
import shutil
import tempfile

import pytest
import torch

import noisyseg_ext

# A fresh Inductor cache for each run: its keys do not cover a custom op's fake (meta) function, so
# code compiled by an earlier build of the package could be reused after an output shape changed.
_inductor_cache = tempfile.mkdtemp(prefix="noisyseg_tests_inductor_")
os.environ["TORCHINDUCTOR_CACHE_DIR"] = _inductor_cache
atexit.register(shutil.rmtree, _inductor_cache, ignore_errors=True)

# Tests must exercise the compiled kernels, not a source tree that shadows the installed package.
assert noisyseg_ext.build_info()["compiled"], (
    f"imported {noisyseg_ext.__file__} without its compiled _C module "
    f"({noisyseg_ext.build_info().get('import_error')}): pip install . and run pytest from python_tests/")

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(params=DEVICES)
def device(request):
    return torch.device(request.param)


@pytest.fixture
def cuda_device():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    return torch.device("cuda")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def pytest_report_header(config):
    return f"noisyseg_ext build: {noisyseg_ext.build_info()}"
