"""Dilation / erosion: noisyseg_ext against scipy.ndimage and torch max_pool, same masks, same run.

    pytest benchmarks/test_bench_morphology.py --benchmark-only --benchmark-group-by=group

One group per (shape, operation, structure); scipy runs once on the whole batch with a structure
that has a singleton batch axis (no per-sample Python loop); max_pool only where it computes the
same thing (box structure, dilation).
"""

import numpy as np
import pytest
import scipy.ndimage as ndi
import torch
import torch.nn.functional as F

import noisyseg_ext
from noisyseg_ext.ops import _kernels
from noisyseg_ext.ops.morphology import structure_tensor

# Timing the pure-torch fallback (e.g. the source tree shadowing the installed package) would be
# meaningless: refuse to run without the compiled kernels.
assert _kernels.has_kernel(torch.device("cpu")), f"noisyseg_ext._C not importable: {_kernels.IMPORT_ERROR}"

SHAPES = {"2d_16x256x256": (16, 256, 256), "3d_1x128^3": (1, 128, 128, 128), "3d_4x112x112x80": (4, 112, 112, 80)}
CASES = [("dilate", "cross", 1), ("dilate", "box", 1), ("dilate", "box", 3), ("dilate", "ball", 3),
         ("erode", "cross", 1)]
ROUNDS = 5


def _masks(shape):
    """Blobs covering roughly a third of the volume (like organ masks), fixed seed."""
    g = torch.Generator().manual_seed(0)
    seeds = torch.rand(shape, generator=g) < 0.002
    return noisyseg_ext.dilate(seeds, 4, structure="ball")


_CACHE = {}


def masks_for(name):
    if name not in _CACHE:
        _CACHE[name] = _masks(SHAPES[name])
    return _CACHE[name]


def _scipy(masks, op, structure, radius):
    s = structure_tensor(structure, radius, masks.dim() - 1).numpy()[None]  # singleton batch axis
    fn = ndi.binary_dilation if op == "dilate" else ndi.binary_erosion
    m = masks.numpy()
    return lambda: fn(m, s)


def _ours(masks, op, structure, radius):
    fn = getattr(noisyseg_ext, op)
    return lambda: fn(masks, radius, structure=structure)


def _max_pool(masks, radius):
    pool = F.max_pool2d if masks.dim() == 3 else F.max_pool3d
    k = 2 * radius + 1
    return lambda: pool(masks[:, None].float(), k, stride=1, padding=radius)[:, 0] > 0


IMPLS = ["noisyseg_ext", "scipy", "torch_max_pool"]


@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("op,structure,radius", CASES)
@pytest.mark.parametrize("impl", IMPLS)
def test_morphology(benchmark, shape, op, structure, radius, impl):
    if impl == "torch_max_pool" and not (op == "dilate" and structure == "box"):
        pytest.skip("max_pool computes a box dilation only")
    masks = masks_for(shape)
    benchmark.group = f"{shape} {op} {structure} r={radius}"
    fn = {"noisyseg_ext": lambda: _ours(masks, op, structure, radius), "scipy": lambda: _scipy(masks, op, structure, radius),
          "torch_max_pool": lambda: _max_pool(masks, radius)}[impl]()
    out = benchmark.pedantic(fn, rounds=ROUNDS, iterations=1, warmup_rounds=1)
    ours = _ours(masks, op, structure, radius)()
    assert np.array_equal(np.asarray(out), ours.numpy())  # every baseline computes the same masks
