"""Shared test fixtures: every test that takes `device` runs on the CPU and, when present, CUDA.

The CPU runs once for each instruction-set variant of the CPU kernels that this build has and this
CPU runs (``cpu-avx512``, ``cpu-avx2``, ``cpu-baseline``; csrc/common/cpu_isa.h), switched in
process. Tests in the kernel suites that take no `device` run once per variant too (the autouse
`cpu_isa` fixture), except those marked ``any_cpu_isa``: tests of the op registration, tracing and
input checks, which no variant changes, run on the default one. With ``NOISYSEG_CPU_ISA`` set, only
the variant it selects runs. ``pytest -k avx2`` picks one variant.
"""

import atexit
import os
import shutil
import tempfile

import pytest
import torch

import noisyseg_ext
from noisyseg_ext.ops import _kernels

# A fresh Inductor cache for each run: its keys do not cover a custom op's fake (meta) function, so
# code compiled by an earlier build of the package could be reused after an output shape changed.
_inductor_cache = tempfile.mkdtemp(prefix="noisyseg_tests_inductor_")
os.environ["TORCHINDUCTOR_CACHE_DIR"] = _inductor_cache
atexit.register(shutil.rmtree, _inductor_cache, ignore_errors=True)

# Tests must exercise the compiled kernels, not a source tree that shadows the installed package.
assert noisyseg_ext.build_info()["compiled"], (
    f"imported {noisyseg_ext.__file__} without its compiled _C module "
    f"({noisyseg_ext.build_info().get('import_error')}): pip install . and run pytest from python_tests/")


def _cpu_isas() -> list[str]:
    if os.environ.get("NOISYSEG_CPU_ISA", "").lower() not in ("", "auto"):
        return [_kernels.active_cpu_isa()]
    return _kernels.cpu_isas()[::-1]  # best first


CPU_ISAS = _cpu_isas()
# The tests check the kernels of every variant, so the baseline's eager fallback (_kernels.
# EAGER_FALLBACKS) is off; test_cpu_isa.py checks the fallback itself.
_kernels.set_eager_fallback(False)
DEVICES = [f"cpu-{isa}" for isa in CPU_ISAS] + (["cuda"] if torch.cuda.is_available() else [])
# Test modules without CPU kernels of their own (or, for the CLI, a whole demo run) take the default
# variant only.
SINGLE_ISA_MODULES = {"test_cli", "test_ramps", "test_cpu_isa"}


def pytest_configure(config):
    config.addinivalue_line("markers", "any_cpu_isa: run on the default CPU variant only (the test checks "
                                       "nothing a variant changes: registration, tracing, input checks)")


@pytest.fixture(scope="module")
def one_thread():
    """Tiny tensors: one thread is as fast, and immune to the OpenMP barrier stalls of a loaded machine
    (a module opts in with ``pytestmark = pytest.mark.usefixtures("one_thread")``)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def device(request):
    """torch.device("cpu") under one CPU variant, or CUDA (parametrised in pytest_generate_tests)."""
    if request.param.startswith("cpu-"):
        with _kernels.use_cpu_isa(request.param[len("cpu-"):]):
            yield torch.device("cpu")
    else:
        yield torch.device(request.param)


@pytest.fixture(autouse=True)
def cpu_isa(request):
    """The CPU variant a test without `device` runs on (parametrised in pytest_generate_tests)."""
    isa = getattr(request, "param", None)
    if isa is None:
        yield _kernels.active_cpu_isa()
        return
    with _kernels.use_cpu_isa(isa):
        yield isa


def pytest_generate_tests(metafunc):
    names = metafunc.fixturenames
    single = (metafunc.module.__name__.rpartition(".")[2] in SINGLE_ISA_MODULES
              or metafunc.definition.get_closest_marker("any_cpu_isa") is not None)
    if "device" in names:  # every CPU variant and CUDA; the default variant and CUDA if `single`
        devices = [d for d in DEVICES if not (single and d.startswith("cpu-") and d != DEVICES[0])]
        metafunc.parametrize("device", devices, indirect=True, ids=devices)
        return
    if single or "cuda_device" in names:
        return
    metafunc.parametrize("cpu_isa", CPU_ISAS, indirect=True, ids=[f"cpu-{isa}" for isa in CPU_ISAS])


@pytest.fixture
def cuda_device():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    return torch.device("cuda")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def pytest_report_header(config):
    return [f"noisyseg_ext build: {noisyseg_ext.build_info()}", f"CPU variants tested: {CPU_ISAS}"]
