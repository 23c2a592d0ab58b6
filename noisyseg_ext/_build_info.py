"""What the installed build contains."""

from __future__ import annotations


def build_info() -> dict:
    """Describe the compiled extension.

    Returns a dict with ``version`` (package version), ``compiled`` (whether ``noisyseg_ext._C``
    imported), ``cuda`` (whether CUDA kernels were compiled), ``cuda_architectures`` (list of
    CMake architecture strings, e.g. ``["75-real", ..., "90"]``), ``openmp`` and ``omp_threads``.
    """
    from noisyseg_ext import __version__
    from noisyseg_ext.ops import _kernels

    info = {"version": __version__, "compiled": _kernels.C is not None, "cuda": False,
            "cuda_architectures": [], "openmp": False, "omp_threads": 1}
    if _kernels.C is not None:
        raw = dict(_kernels.C.build_info())
        archs = raw.pop("cuda_architectures", "")
        info.update(raw)
        info["cuda_architectures"] = [a for a in archs.split(",") if a]
    else:
        info["import_error"] = _kernels.IMPORT_ERROR
    return info
