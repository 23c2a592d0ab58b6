"""Device plumbing shared by the benchmark files (imported as a sibling module: pytest puts
benchmarks/ on sys.path because it has no __init__.py).

* every benchmark is parametrised over "cpu" and "cuda"; the CUDA cases are always collected and
  skipped at run time when torch.cuda.is_available() is False, so
  ``pytest benchmarks/ --collect-only -q -k cuda`` lists exactly what a GPU run will time;
* our op runs once for each CPU instruction-set variant of the kernels this machine runs
  (csrc/common/cpu_isa.h), in the same group as the baselines: :func:`variants` gives the impl ids
  (``fused`` = the default variant, the best one, and ``fused-avx2``, ``fused-baseline`` for the
  lower ones; those are skipped on CUDA), :func:`run_variant` switches to the variant and records
  it in the benchmark's name and ``extra_info["cpu_isa"]``. With ``NOISYSEG_CPU_ISA`` set only
  that variant runs (as ``fused``);
* :func:`run_pedantic` times a step with pytest-benchmark's pedantic mode. On CUDA the timed
  callable ends with ``torch.cuda.synchronize()`` (device work is asynchronous), and an untimed
  setup before every round overwrites a 256 MiB buffer so that the inputs come from HBM, not from
  the 50 MB L2 of an H100 (several inputs here fit in it: repeated runs over one buffer would time
  the cache, not the memory roofline that the issues ask about). On CPU it is exactly the plain
  ``benchmark.pedantic(fn, args, rounds=..., iterations=1, warmup_rounds=...)`` the files used before.
"""

from __future__ import annotations

import contextlib
import os

import pytest
import torch

from noisyseg_ext.ops import _kernels

HAS_CUDA = torch.cuda.is_available()
SKIP_NO_CUDA = pytest.mark.skipif(not HAS_CUDA, reason="no CUDA device (torch.cuda.is_available() is False)")
DEVICES = ["cpu", "cuda"]


def device_param(device: str, *values, id=None):
    """pytest.param(*values) with the skip-without-CUDA mark when device is "cuda"."""
    marks = [SKIP_NO_CUDA] if device == "cuda" else []
    return pytest.param(*values, marks=marks, id=id)


DEVICE_PARAMS = [device_param(d, d, id=d) for d in DEVICES]


def _cpu_isas() -> list[str]:
    if os.environ.get("NOISYSEG_CPU_ISA", "").lower() not in ("", "auto"):
        return [_kernels.active_cpu_isa()]
    return _kernels.cpu_isas()[::-1]  # best first


CPU_ISAS = _cpu_isas()


def variants(name: str) -> list[str]:
    """Impl ids for our op: ``name`` (the default CPU variant; CUDA's kernels on a GPU), then
    ``name-<isa>`` for every lower CPU variant this machine runs."""
    return [name] + [f"{name}-{isa}" for isa in CPU_ISAS[1:]]


def split_variant(impl: str) -> tuple[str, str | None]:
    """"fused-avx2" -> ("fused", "avx2"); "fused", "eager" -> (impl, None)."""
    base, _, isa = impl.rpartition("-")
    return (base, isa) if base and isa in ("baseline", "avx2", "avx512") else (impl, None)


@contextlib.contextmanager
def run_variant(benchmark, impl: str, device: str, ours: bool = True, name: str | None = None):
    """Runs the block under the CPU variant that ``impl`` names (:func:`variants`) and yields the
    impl without the variant; skips a lower variant on CUDA. For our op on the CPU the benchmark's
    name becomes ``name`` (default: the impl) with the variant, e.g. ``fused [avx2]``, and
    ``extra_info["cpu_isa"]`` records it."""
    base, isa = split_variant(impl)
    if isa is not None and device != "cpu":
        pytest.skip("the lower CPU variants run on the CPU only")
    if device != "cpu" or not ours or not CPU_ISAS:
        if device == "cpu" and name:
            benchmark.name = name
        yield base
        return
    isa = isa or CPU_ISAS[0]
    benchmark.extra_info["cpu_isa"] = isa
    benchmark.name = f"{name or base} [{isa}]"
    with _kernels.use_cpu_isa(isa):
        yield base


def require_kernels(device: str) -> None:
    """Refuse to time the pure-torch fallback: fail (not skip) when the build lacks the kernels of
    ``device``; a GPU run that silently timed the fallback would report meaningless numbers."""
    if not _kernels.has_kernel(torch.device(device)):
        why = _kernels.IMPORT_ERROR if _kernels.C is None else "this build has no CUDA kernels"
        pytest.fail(f"noisyseg_ext has no compiled kernels for {device}: {why}")


def device_name(device: str) -> str:
    return torch.cuda.get_device_name() if device == "cuda" else "cpu"


_FLUSH: dict = {}


def flush_l2() -> None:
    """Untimed: evict the inputs from the GPU's L2 (50 MB on H100, 60 MB on H200) and wait."""
    if "buf" not in _FLUSH:
        _FLUSH["buf"] = torch.empty(64 * 1024 * 1024, dtype=torch.int32, device="cuda")  # 256 MiB
    _FLUSH["buf"].zero_()
    torch.cuda.synchronize()


def sync(device: str) -> None:
    """Waits for the device (a no-op on the CPU)."""
    if device == "cuda":
        torch.cuda.synchronize()


def trainer_steps(trainer, batch: dict):
    """A callable that runs the trainer's next training step on ``batch`` (step 0, 1, 2, ...; its
    ``count`` attribute says how many ran), for :func:`run_pedantic`, which waits for the device
    after each call."""

    def step():
        trainer._train_step(batch, step.count)
        step.count += 1

    step.count = 0
    return step


def run_pedantic(benchmark, fn, args=(), *, device: str, rounds: int, warmup_rounds: int = 1):
    """benchmark.pedantic with one iteration per round; see the module docstring for CUDA."""
    if device != "cuda":
        return benchmark.pedantic(fn, args=args, rounds=rounds, iterations=1, warmup_rounds=warmup_rounds)

    def synced(*a):
        out = fn(*a)
        torch.cuda.synchronize()
        return out

    return benchmark.pedantic(synced, args=args, setup=flush_l2, rounds=rounds, iterations=1,
                              warmup_rounds=warmup_rounds)
