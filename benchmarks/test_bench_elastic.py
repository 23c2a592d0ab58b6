"""Elastic deformation: noisyseg_ext.elastic_deform vs elasticdeform.deform_grid (per sample, the
tool a user would otherwise call), same inputs, same run; one benchmark group per shape and order.

    cd /tmp && python -m pytest /path/to/repo/benchmarks/test_bench_elastic.py --benchmark-only

(from outside the repository, so that the installed package with its kernels is imported).

elasticdeform is slow (about 2 s for one 128^3 volume), so its rounds are few (pedantic). Ours
runs once per CPU variant of the kernels (``noisyseg_ext`` the default one, ``noisyseg_ext-avx2``,
``noisyseg_ext-baseline``; _devices.variants).

GPU: ``test_noisyseg_elastic_deform`` also runs on "cuda" (ids end in ``-cuda``; collected always,
skipped without a GPU), on the same inputs moved to the device (control grid on the device too),
checked against our CPU result. The issue's goal is ">= 100x elasticdeform" on the GPU, but the GPU
machine has no elasticdeform (and elasticdeform is CPU-only, single-threaded C): the CUDA case
records our GPU time, and the ratio is computed against elasticdeform's CPU time measured on the
same shape and order on a CPU machine (the medians in benchmarks/RESULTS.md, "elastic" section,
copied into roofline.ELASTICDEFORM_REF_S; the smallest measured median per case, i.e. the
conservative ratio). benchmarks/roofline.py prints that ratio; where elasticdeform is installed
(CI, developer machines) ``test_elasticdeform_deform_grid`` measures it in the CPU group instead.
On CUDA the L2 is flushed before every round and each round ends with a synchronize
(benchmarks/_devices.py).
"""

import numpy as np
import pytest
import torch

import noisyseg_ext
import roofline
from _devices import DEVICE_PARAMS, require_kernels, run_pedantic, run_variant, variants
from noisyseg_ext.ops import _kernels

try:
    import elasticdeform as ed
except ImportError:  # e.g. the GPU machine: only the elasticdeform baseline is skipped
    ed = None
if not _kernels.has_kernel(torch.device("cpu")):  # e.g. run with the source tree first on sys.path
    pytest.skip("noisyseg_ext._C is not importable: this would time the pure-torch fallback",
                allow_module_level=True)

SIGMA, POINTS = 4.0, 3
CASES = {  # name: (N, spatial)
    "2d_16x256x256": (16, (256, 256)),
    "3d_1x128x128x128": (1, (128, 128, 128)),
    "3d_4x112x112x80": (4, (112, 112, 80)),
}
BASELINE_ROUNDS = {"2d_16x256x256": 5, "3d_1x128x128x128": 3, "3d_4x112x112x80": 2}
ROUNDS = {"cpu": 10, "cuda": 30}


def _inputs(case: str, order: int):
    n, spatial = CASES[case]
    g = torch.Generator().manual_seed(0)
    d = torch.randn((n, len(spatial), *[POINTS] * len(spatial)), generator=g, dtype=torch.float64) * SIGMA
    if order == 0:  # a label map (blocky, like masks)
        coarse = torch.randint(0, 3, (n, 1, *[s // 8 for s in spatial]), generator=g).float()
        x = torch.nn.functional.interpolate(coarse, size=spatial, mode="nearest")[:, 0].to(torch.uint8)
    else:  # an image
        x = torch.rand((n, *spatial), generator=g, dtype=torch.float32)
    return x, d


def _tag(benchmark, case, order, x, device, impl, ours):
    roofline.tag(benchmark, op=f"elastic order {order}", case=case, dtype=x.dtype, device=device, impl=impl,
                 ours=ours, min_bytes=roofline.elastic_bytes(x.shape[0], x.shape[1:], x.dtype, POINTS))


@pytest.mark.parametrize("impl", variants("noisyseg_ext"))
@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize("order", [0, 3])
@pytest.mark.parametrize("case", list(CASES))
def test_noisyseg_elastic_deform(benchmark, case, order, device, impl):
    require_kernels(device)
    benchmark.group = f"elastic {case} order {order}" + ("" if device == "cpu" else f" {device}")
    x, d = _inputs(case, order)
    _tag(benchmark, case, order, x, device, impl, True)
    xd, dd = x.to(device), d.to(device)

    def deform(x, d):
        return noisyseg_ext.elastic_deform(x, d, order=order)

    with run_variant(benchmark, impl, device):
        out = run_pedantic(benchmark, deform, (xd, dd), device=device, rounds=ROUNDS[device], warmup_rounds=1)
    assert out.shape == x.shape and out.dtype == x.dtype and out.device == xd.device
    if device != "cpu":  # same result as our CPU kernel (order 0: up to ties at exactly .5)
        ref, got = deform(x, d).numpy(), out.cpu().numpy()
        if order == 0:
            assert (got == ref).mean() >= 0.999
        else:
            assert np.abs(got - ref).max() <= 1e-4


@pytest.mark.parametrize("order", [0, 3])
@pytest.mark.parametrize("case", list(CASES))
def test_elasticdeform_deform_grid(benchmark, case, order):
    if ed is None:
        pytest.skip("elasticdeform is not installed")
    benchmark.group = f"elastic {case} order {order}"
    x, d = _inputs(case, order)
    _tag(benchmark, case, order, x, "cpu", "elasticdeform", False)
    xs, ds = x.numpy(), d.numpy()

    def run():
        return [ed.deform_grid(xs[i], ds[i], order=order, mode="constant") for i in range(xs.shape[0])]

    out = benchmark.pedantic(run, rounds=BASELINE_ROUNDS[case], iterations=1)
    # same result as ours (order 0: up to ties at exactly .5)
    ours = noisyseg_ext.elastic_deform(x, d, order=order).numpy()
    if order == 0:
        assert (np.stack(out) == ours).mean() >= 0.999
    else:
        assert np.abs(np.stack(out) - ours).max() <= 1e-4
