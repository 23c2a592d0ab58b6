"""Shared test fixtures: every test that takes `device` runs on the CPU and, when present, CUDA."""

import pytest
import torch

import noisyseg_ext

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
