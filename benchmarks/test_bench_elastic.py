"""Elastic deformation: noisyseg_ext.elastic_deform vs elasticdeform.deform_grid (per sample, the
tool a user would otherwise call), same inputs, same run; one benchmark group per shape and order.

    cd /tmp && python -m pytest /path/to/repo/benchmarks/test_bench_elastic.py --benchmark-only

(from outside the repository, so that the installed package with its kernels is imported).

elasticdeform is slow (about 2 s for one 128^3 volume), so its rounds are few (pedantic).
"""

import numpy as np
import pytest
import torch

import noisyseg_ext
from noisyseg_ext.ops import _kernels

ed = pytest.importorskip("elasticdeform")
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


@pytest.mark.parametrize("order", [0, 3])
@pytest.mark.parametrize("case", list(CASES))
def test_noisyseg_elastic_deform(benchmark, case, order):
    benchmark.group = f"elastic {case} order {order}"
    x, d = _inputs(case, order)
    out = benchmark.pedantic(noisyseg_ext.elastic_deform, args=(x, d), kwargs={"order": order},
                             rounds=10, iterations=1, warmup_rounds=1)
    assert out.shape == x.shape and out.dtype == x.dtype


@pytest.mark.parametrize("order", [0, 3])
@pytest.mark.parametrize("case", list(CASES))
def test_elasticdeform_deform_grid(benchmark, case, order):
    benchmark.group = f"elastic {case} order {order}"
    x, d = _inputs(case, order)
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
