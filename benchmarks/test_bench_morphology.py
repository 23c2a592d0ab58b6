"""Dilation / erosion: noisyseg_ext against scipy.ndimage and torch max_pool, same masks, same run.

    pytest benchmarks/test_bench_morphology.py --benchmark-only --benchmark-group-by=group

One group per (shape, operation, structure); scipy runs once on the whole batch with a structure
that has a singleton batch axis (no per-sample Python loop); max_pool only where it computes the
same thing (box structure, dilation). Ours once per CPU variant of the kernels (``noisyseg_ext``
the default one, ``noisyseg_ext-avx2``, ``noisyseg_ext-baseline``; _devices.variants).

Every case also runs on "cuda" (ids end in ``-cpu`` / ``-cuda``; the CUDA ones are collected always
and skipped without a GPU): ours and torch baselines that run on the GPU, on the same masks moved
to the device: max_pool (box dilation, as on the CPU) and ``torch_conv``, a conv2d/conv3d of the
float mask with the structure (dilation: sum > 0; erosion: sum == |structure|, zero padding =
scipy's border_value=0), which covers every structure. scipy has no GPU path (skipped on cuda);
torch_conv runs on cuda only (the CPU groups keep their baselines). On CUDA the L2 is flushed
before every round and each round ends with a synchronize (benchmarks/_devices.py); the roofline
bytes are roofline.morphology_bytes.
"""

import numpy as np
import pytest
import scipy.ndimage as ndi
import torch
import torch.nn.functional as F

import noisyseg_ext
import roofline
from _devices import DEVICE_PARAMS, require_kernels, run_pedantic, run_variant, variants
from noisyseg_ext.ops import _kernels
from noisyseg_ext.ops.morphology import structure_tensor

# Timing the pure-torch fallback (e.g. the source tree shadowing the installed package) would be
# meaningless: refuse to run without the compiled kernels.
assert _kernels.has_kernel(torch.device("cpu")), f"noisyseg_ext._C not importable: {_kernels.IMPORT_ERROR}"

SHAPES = {"2d_16x256x256": (16, 256, 256), "3d_1x128^3": (1, 128, 128, 128), "3d_4x112x112x80": (4, 112, 112, 80)}
CASES = [("dilate", "cross", 1), ("dilate", "box", 1), ("dilate", "box", 3), ("dilate", "ball", 3),
         ("erode", "cross", 1)]
ROUNDS = {"cpu": 5, "cuda": 20}


def _masks(shape):
    """Blobs covering roughly a third of the volume (like organ masks), fixed seed."""
    g = torch.Generator().manual_seed(0)
    seeds = torch.rand(shape, generator=g) < 0.002
    return noisyseg_ext.dilate(seeds, 4, structure="ball")


_CACHE = {}


def masks_for(name, device="cpu"):
    if (name, device) not in _CACHE:
        _CACHE[name, device] = _masks(SHAPES[name]) if device == "cpu" else masks_for(name).to(device)
    return _CACHE[name, device]


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


def _conv(masks, op, structure, radius):
    s = structure_tensor(structure, radius, masks.dim() - 1).to(device=masks.device, dtype=torch.float32)
    conv = F.conv2d if masks.dim() == 3 else F.conv3d
    pad = tuple(k // 2 for k in s.shape)
    full = float(s.sum())
    w = s[None, None]
    if op == "dilate":
        return lambda: conv(masks[:, None].float(), w, padding=pad)[:, 0] > 0.5
    return lambda: conv(masks[:, None].float(), w, padding=pad)[:, 0] > full - 0.5


IMPLS = [*variants("noisyseg_ext"), "scipy", "torch_max_pool", "torch_conv"]


def _numpy(out):
    return out.cpu().numpy() if isinstance(out, torch.Tensor) else np.asarray(out)


@pytest.mark.parametrize("device", DEVICE_PARAMS)
@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("op,structure,radius", CASES)
@pytest.mark.parametrize("impl", IMPLS)
def test_morphology(benchmark, shape, op, structure, radius, impl, device):
    if impl == "torch_max_pool" and not (op == "dilate" and structure == "box"):
        pytest.skip("max_pool computes a box dilation only")
    if impl == "scipy" and device != "cpu":
        pytest.skip("scipy runs on the CPU only")
    if impl == "torch_conv" and device == "cpu":
        pytest.skip("torch_conv is the GPU baseline (scipy and max_pool are the CPU ones)")
    require_kernels(device)
    masks = masks_for(shape, device)
    benchmark.group = f"{shape} {op} {structure} r={radius}" + ("" if device == "cpu" else f" {device}")
    is_ours = impl.startswith("noisyseg_ext")
    roofline.tag(benchmark, op=f"{op} {structure} r={radius}", case=shape, dtype=masks.dtype, device=device,
                 impl=impl, ours=is_ours,
                 min_bytes=roofline.morphology_bytes(masks.shape[0], masks.shape[1:], masks.dtype))
    with run_variant(benchmark, impl, device, is_ours) as base:
        fn = {"noisyseg_ext": lambda: _ours(masks, op, structure, radius),
              "scipy": lambda: _scipy(masks, op, structure, radius),
              "torch_max_pool": lambda: _max_pool(masks, radius),
              "torch_conv": lambda: _conv(masks, op, structure, radius)}[base]()
        out = run_pedantic(benchmark, fn, device=device, rounds=ROUNDS[device], warmup_rounds=1)
    ours = _ours(masks, op, structure, radius)()
    assert np.array_equal(_numpy(out), _numpy(ours))  # every baseline computes the same masks
