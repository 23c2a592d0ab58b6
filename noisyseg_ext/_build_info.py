"""What the installed build contains."""

from __future__ import annotations


def build_info() -> dict:
    """Describe the compiled extension.

    Returns a dict with ``version`` (package version), ``compiled`` (whether ``noisyseg_ext._C``
    imported), ``cuda`` (whether CUDA kernels were compiled), ``cuda_architectures`` (list of
    CMake architecture strings, e.g. ``["75-real", ..., "90"]``), ``openmp`` and ``omp_threads``,
    and the CPU kernels' instruction-set variants: ``cpu_isa_compiled`` (those in this build, of
    ``"baseline"`` (x86-64), ``"avx2"`` (AVX2 + FMA, x86-64-v3) and ``"avx512"`` (x86-64-v4)),
    ``cpu_isa_supported`` (those of them this CPU runs) and ``cpu_isa`` (the one the kernels run:
    the best supported one, chosen at import, or a lower one named by the environment variable
    ``NOISYSEG_CPU_ISA``); ``cpu_eager_fallback``: the cases in which ops take their pure-torch
    path instead of the kernels, because the active variant is the baseline, torch's own CPU
    kernels are AVX2 / AVX-512, and there the baseline kernels are slower (empty otherwise;
    ``NOISYSEG_EAGER_FALLBACK=0`` turns it off).
    """
    from noisyseg_ext import __version__
    from noisyseg_ext.ops import _kernels

    info = {"version": __version__, "compiled": _kernels.C is not None, "cuda": False,
            "cuda_architectures": [], "openmp": False, "omp_threads": 1, "cpu_isa_compiled": [],
            "cpu_isa_supported": [], "cpu_isa": None, "cpu_eager_fallback": []}
    if _kernels.C is not None:
        raw = dict(_kernels.C.build_info())
        archs = raw.pop("cuda_architectures", "")
        info.update(raw)
        info["cuda_architectures"] = [a for a in archs.split(",") if a]
        info["cpu_isa_compiled"] = list(info["cpu_isa_compiled"])
        info["cpu_isa_supported"] = list(info["cpu_isa_supported"])
        info["cpu_eager_fallback"] = _kernels.eager_fallbacks_active()
    else:
        info["import_error"] = _kernels.IMPORT_ERROR
    return info
