"""Glue between torch tensors and the compiled kernels in ``noisyseg_ext._C``.

The extension takes raw pointers, sizes and the CUDA stream; this module owns everything torch:
dtype codes, device selection, stream handles, the error flag and the fallback decision.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from typing import Iterator

import torch

try:
    from noisyseg_ext import _C as C  # noqa: N812

    IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - only without a build
    C = None
    IMPORT_ERROR = repr(exc)

# Must match enum DType in csrc/common/scalar_types.h.
DTYPE_CODES = {
    torch.float16: 0, torch.bfloat16: 1, torch.float32: 2, torch.float64: 3,
    torch.uint8: 4, torch.int32: 5, torch.int64: 6, torch.bool: 7,
}
FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
LABEL_DTYPES = (torch.uint8, torch.int32, torch.int64)

_cuda_compiled = bool(C is not None and C.build_info()["cuda"])
_warned: set[tuple[str, str]] = set()


def has_kernel(device: torch.device) -> bool:
    """Whether a compiled kernel exists for tensors on ``device``."""
    if C is None:
        return False
    if device.type == "cpu":
        return True
    return device.type == "cuda" and _cuda_compiled


def use_kernel(op: str, device: torch.device) -> bool:
    """True when ``op`` runs compiled on ``device``; otherwise warns once and returns False,
    and the caller runs the pure-torch reference."""
    if has_kernel(device):
        return True
    key = (op, device.type)
    if key not in _warned:
        _warned.add(key)
        why = "noisyseg_ext._C failed to import" if C is None else "this build has no CUDA kernels"
        warnings.warn(f"noisyseg_ext.{op}: {why}; using the pure-torch reference on {device.type} "
                      "(slower, same results).", RuntimeWarning, stacklevel=3)
    return False


def cpu_isas() -> list[str]:
    """The CPU kernels' instruction-set variants this build has and this CPU runs, lowest first
    (a subset of ``["baseline", "avx2", "avx512"]``; empty without a compiled module)."""
    return list(C.build_info()["cpu_isa_supported"]) if C is not None else []


def active_cpu_isa() -> str | None:
    """The variant the CPU kernels run now (chosen at import: the best in :func:`cpu_isas`, or the
    one named by the environment variable ``NOISYSEG_CPU_ISA``)."""
    return str(C.cpu_isa()) if C is not None else None


@contextlib.contextmanager
def use_cpu_isa(name: str) -> Iterator[None]:
    """Run the CPU kernels' variant ``name`` inside the block (tests and benchmarks compare the
    variants in one process); raises ValueError when it is not in :func:`cpu_isas`. Not
    thread-safe: the variant is one setting for the whole process."""
    if C is None or name not in cpu_isas():
        raise ValueError(f"CPU variant {name!r} is not available here (available: {cpu_isas()})")
    before = active_cpu_isa()
    C.set_cpu_isa(name)
    try:
        yield
    finally:
        C.set_cpu_isa(before)


# Where the baseline variant's kernels are slower than eager PyTorch, which on a CPU with AVX2
# dispatches to its own AVX2 / AVX-512 kernels (benchmarks/RESULTS.md, "CPU variants"): the op then
# takes its pure-torch path, the same code as the eager baseline. op -> the cases, as build_info()
# says them. Off with NOISYSEG_EAGER_FALLBACK=0 (the tests turn it off to test the kernels).
EAGER_FALLBACKS = {"weighted_ce": "weighted_ce with more than 2 classes, or with a weight that requires grad"}
_eager_fallback_on = os.environ.get("NOISYSEG_EAGER_FALLBACK", "1").lower() not in ("0", "off", "false", "no")
_torch_vectorised = torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512")


def set_eager_fallback(enabled: bool) -> bool:
    """Turns the eager fallback (:data:`EAGER_FALLBACKS`) on or off; returns the previous setting."""
    global _eager_fallback_on
    before, _eager_fallback_on = _eager_fallback_on, bool(enabled)
    return before


def eager_fallbacks_active() -> list[str]:
    """The cases in which ops take the eager path now (the baseline variant is active while torch's
    own CPU kernels are AVX2 or AVX-512); empty otherwise."""
    if not (_eager_fallback_on and _torch_vectorised and C is not None and C.cpu_isa() == "baseline"):
        return []
    return list(EAGER_FALLBACKS.values())


def eager_fallback(op: str, device: torch.device, case: bool = True) -> bool:
    """True when ``op`` should run its pure-torch path on ``device``: the CPU, in a ``case`` of
    :data:`EAGER_FALLBACKS`, with the baseline variant active and torch's kernels vectorised."""
    return (case and device.type == "cpu" and _eager_fallback_on and _torch_vectorised and C is not None
            and op in EAGER_FALLBACKS and C.cpu_isa() == "baseline")


def acc_dtype(dtype: torch.dtype) -> torch.dtype:
    """The kernels' accumulation dtype: float64 for float64 inputs, float32 otherwise."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def ptr(t: torch.Tensor | None) -> int:
    """Data pointer of a contiguous tensor, 0 for None or an empty tensor."""
    if t is None or t.numel() == 0:
        return 0
    return t.data_ptr()


def device_args(t: torch.Tensor) -> tuple[int, int]:
    """(device index, stream handle) for a launch on ``t``'s device: (-1, 0) on CPU."""
    if t.device.type == "cpu":
        return -1, 0
    index = t.device.index if t.device.index is not None else torch.cuda.current_device()
    return index, torch.cuda.current_stream(index).cuda_stream


def num_parts(n: int) -> int:
    """Number of slices for reductions: fixed by the problem size only, so sums are reproducible
    whatever the thread count (about 2048 elements a slice, at most 2048 slices)."""
    return max(1, min(2048, (n + 2047) // 2048))


def new_flag(device: torch.device) -> torch.Tensor:
    """A zeroed int64[2] error flag for a kernel to record a bad input value in."""
    return torch.zeros(2, dtype=torch.int64, device=device)


def flagged_value(flag: torch.Tensor) -> int | None:
    """The bad value a kernel recorded in ``flag``, or None (synchronises on CUDA)."""
    found, value = flag.tolist()
    return value if found else None

