"""The CPU kernels' instruction-set variants (csrc/common/cpu_isa.h): selection, the override, and
that each variant's machine code is what its name says."""

import os
import platform
import re
import shutil
import subprocess
import sys

import pytest
import torch

import noisyseg_ext
from noisyseg_ext.ops import _kernels

ALL = ["baseline", "avx2", "avx512"]


def test_build_info_reports_the_variants():
    info = noisyseg_ext.build_info()
    compiled, supported, active = info["cpu_isa_compiled"], info["cpu_isa_supported"], info["cpu_isa"]
    assert compiled[0] == "baseline" and compiled == [v for v in ALL if v in compiled]
    assert set(supported) <= set(compiled) and "baseline" in supported
    assert active in supported
    if os.environ.get("NOISYSEG_CPU_ISA", "").lower() in ("", "auto"):
        assert active == supported[-1]  # the best one
    assert _kernels.cpu_isas() == supported


def test_switching_in_process():
    before = _kernels.active_cpu_isa()
    for isa in _kernels.cpu_isas():
        with _kernels.use_cpu_isa(isa):
            assert noisyseg_ext.build_info()["cpu_isa"] == isa
        assert _kernels.active_cpu_isa() == before
    assert _kernels.C.set_cpu_isa("sse9") is False
    with pytest.raises(ValueError, match="not available"):
        with _kernels.use_cpu_isa("sse9"):
            pass
    assert _kernels.active_cpu_isa() == before


def _run_isa_env(value):
    code = "import noisyseg_ext; print(noisyseg_ext.build_info()['cpu_isa'])"
    env = dict(os.environ, NOISYSEG_CPU_ISA=value)
    out = subprocess.run([sys.executable, "-W", "always", "-c", code], env=env, capture_output=True, text=True,
                         check=True)
    return out.stdout.strip(), out.stderr


def test_environment_variable_forces_a_lower_variant():
    best = _kernels.cpu_isas()[-1]
    assert _run_isa_env("baseline") == ("baseline", "")
    active, err = _run_isa_env("bogus")
    assert active == best and "NOISYSEG_CPU_ISA=bogus is not one of" in err
    assert _run_isa_env("auto") == (best, "")
    missing = [v for v in ALL if v not in _kernels.cpu_isas()]
    if missing:  # a variant this machine (or build) cannot run: the best one stays, with a warning
        active, err = _run_isa_env(missing[-1])
        assert active == best and "using " + best in err


def test_variants_agree():
    """Same inputs, every variant: the same values up to rounding (FMA contraction, vector width)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 5, 33, 17, generator=g, requires_grad=True)
    y = torch.randint(0, 5, (3, 33, 17), generator=g)
    w = torch.rand(3, 33, 17, generator=g)
    teacher = torch.randn(4, 3, 2, 33, 17, generator=g) * 2
    results = []
    for isa in _kernels.cpu_isas():
        with _kernels.use_cpu_isa(isa):
            loss = noisyseg_ext.weighted_ce(x, y, w)
            (gx,) = torch.autograd.grad(loss, x)
            mc = noisyseg_ext.mc_uncertainty(teacher)
            results.append((loss.detach(), gx, *mc))
    for other in results[1:]:
        for a, b in zip(results[0], other):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_eager_fallback_of_the_baseline(monkeypatch):
    """With the baseline variant active and torch's own CPU kernels vectorised, weighted_ce with
    more than two classes takes the eager path, and build_info says so; two classes keep the
    kernel; NOISYSEG_EAGER_FALLBACK=0 (here: set_eager_fallback(False)) turns it off."""
    import importlib

    from noisyseg_ext.ops import reference

    wce_module = importlib.import_module("noisyseg_ext.ops.weighted_ce")  # the package exports the function

    calls = []
    eager = wce_module._eager
    monkeypatch.setattr(wce_module, "_eager", lambda *a, **k: calls.append(a[0].shape[1]) or eager(*a, **k))
    x3, x2 = torch.randn(2, 3, 5, 4, requires_grad=True), torch.randn(2, 2, 5, 4)
    y = torch.randint(0, 2, (2, 5, 4))
    y[0, 0, 0] = -100
    w = torch.rand(2, 5, 4)
    w[0, 0, 0] = float("inf")  # at an ignored pixel: no effect
    before = _kernels.set_eager_fallback(True)
    try:
        with _kernels.use_cpu_isa("baseline"):
            expected = list(_kernels.EAGER_FALLBACKS.values()) if _kernels._torch_vectorised else []
            assert noisyseg_ext.build_info()["cpu_eager_fallback"] == expected
            for x in (x3, x2):
                for reduction in ("none", "mean", "sum", "weighted_mean"):
                    for weight in (None, w):
                        got = noisyseg_ext.weighted_ce(x, y, weight, reduction=reduction)
                        torch.testing.assert_close(got, reference.weighted_ce(x, y, weight, reduction=reduction))
            assert calls == ([3] * 8 if expected else [])
            # gradients (and second order, which MW-Net takes) through the eager path
            (g,) = torch.autograd.grad(noisyseg_ext.weighted_ce(x3, y, w), x3, create_graph=True)
            (r,) = torch.autograd.grad(reference.weighted_ce(x3, y, w), x3, create_graph=True)
            torch.testing.assert_close(g, r)
            torch.testing.assert_close(torch.autograd.grad(g.square().sum(), x3)[0],
                                       torch.autograd.grad(r.square().sum(), x3)[0])
            bad = y.clone()
            bad[1, 2, 3] = 7
            with pytest.raises(ValueError, match="target holds 7"):
                noisyseg_ext.weighted_ce(x3, bad)
            calls.clear()
            # two classes with a weight that requires grad (MW-Net's meta step) also take it
            wg = w.clone().requires_grad_()
            noisyseg_ext.weighted_ce(x2, y, wg).backward()
            assert calls == ([2] if expected else [])
            calls.clear()
        if "avx2" in _kernels.cpu_isas():
            with _kernels.use_cpu_isa("avx2"):
                assert noisyseg_ext.build_info()["cpu_eager_fallback"] == []
                noisyseg_ext.weighted_ce(x3, y)
                assert calls == []
        _kernels.set_eager_fallback(False)
        with _kernels.use_cpu_isa("baseline"):
            assert noisyseg_ext.build_info()["cpu_eager_fallback"] == []
    finally:
        _kernels.set_eager_fallback(before)


def _variant_of(name: str) -> str:
    """The variant a function of the module belongs to, from its demangled name: the inline
    namespace cpu_<variant> or an entry point `..._cpu<id>(`; "module" for everything else."""
    for isa_id, isa in enumerate(ALL):
        if f"::cpu_{isa}::" in name or re.search(rf"_cpu<{isa_id}>\(", name):
            return isa
    return "module"


def test_machine_code_of_each_variant():
    """No function outside the AVX2 / AVX-512 variants uses an AVX register (one would crash a
    machine without AVX2 with SIGILL: an inline function the linker took from an AVX-512
    object, say), no AVX2 function uses the 512-bit registers, and the AVX2 / AVX-512 kernels do use
    theirs (the -march flags reached them)."""
    if platform.machine() not in ("x86_64", "AMD64") or shutil.which("objdump") is None:
        pytest.skip("needs x86-64 and objdump")
    so = _kernels.C.__file__
    dis = subprocess.run(["objdump", "-d", "--no-show-raw-insn", "-C", so], capture_output=True, text=True,
                         check=True).stdout
    uses = {}  # function -> (ymm, zmm)
    name = None
    for line in dis.splitlines():
        m = re.match(r"^[0-9a-f]+ <(.*)>:$", line)
        if m:
            name = m.group(1)
            uses.setdefault(name, [False, False])
        elif name is not None and "%" in line:
            if "%ymm" in line:
                uses[name][0] = True
            if "%zmm" in line:
                uses[name][1] = True
    by_variant = {}
    for fn, (ymm, zmm) in uses.items():
        by_variant.setdefault(_variant_of(fn), []).append((fn, ymm, zmm))
    if not any(v in by_variant for v in ("avx2", "avx512", "baseline")):
        pytest.skip("the module has no symbol table (stripped)")
    ours = ("noisyseg::", "std::", "pybind11::", "void noisyseg::", "void std::", "void pybind11::")
    for variant in ("baseline", "module"):
        bad = [fn for fn, ymm, zmm in by_variant.get(variant, [])
               if (ymm or zmm) and (variant == "baseline" or fn.startswith(ours))]
        assert not bad, f"AVX registers in {variant} code: {bad[:5]}"
    bad = [fn for fn, ymm, zmm in by_variant.get("avx2", []) if zmm]
    assert not bad, f"512-bit registers in the AVX2 variant: {bad[:5]}"
    compiled = noisyseg_ext.build_info()["cpu_isa_compiled"]
    if "avx2" in compiled:
        assert any(ymm for _, ymm, _ in by_variant["avx2"])
    if "avx512" in compiled:
        assert any(zmm for _, _, zmm in by_variant["avx512"])
