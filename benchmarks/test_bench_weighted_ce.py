"""weighted_ce forward + backward against what a user would otherwise write.

Run: pytest benchmarks/test_bench_weighted_ce.py --benchmark-only
Each group (one shape, dtype, device) holds the fused op, eager PyTorch and torch.compile of the
eager code, on the same inputs in the same run; on the CPU the fused op once per CPU variant of
the kernels (``fused`` the default one, ``fused-avx2``, ``fused-baseline``; _devices.variants).

CUDA (float32 and bfloat16; collected always, skipped without a GPU): issue goal >= 70 % of the
memory roofline (bytes counted in roofline.weighted_ce_bytes) and >= 3x eager. The L2 is flushed
before every round (benchmarks/_devices.py). torch.compile is timed on CUDA for the 3D shape only
(each compile is a warm-up of several seconds; NOISYSEG_BENCH_CUDA_COMPILE=all times every shape).
"""

import os

import pytest
import torch
import torch.nn.functional as F

import roofline
from _devices import DEVICES, device_param, require_kernels, run_pedantic, run_variant, variants
from noisyseg_ext import weighted_ce

SHAPES = [(16, 2, 128, 128), (4, 2, 112, 112, 80), (8, 14, 256, 256)]
CASES = [device_param(d, s, d, torch.float32) for d in DEVICES for s in SHAPES]
CASES += [device_param("cuda", s, "cuda", torch.bfloat16) for s in SHAPES]
ROUNDS = {"cpu": 10, "cuda": 30}
CUDA_COMPILE_SHAPES = SHAPES if os.environ.get("NOISYSEG_BENCH_CUDA_COMPILE") == "all" else [(4, 2, 112, 112, 80)]


def eager_loss(x, y, w):
    return (F.cross_entropy(x, y, reduction="none") * w).mean()


def fused_loss(x, y, w):
    return weighted_ce(x, y, w)


_compiled = {}


def compiled_loss(x, y, w):
    if "fn" not in _compiled:
        _compiled["fn"] = torch.compile(eager_loss)
    return _compiled["fn"](x, y, w)


def make(shape, device, dtype):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=g).to(device=device, dtype=dtype).requires_grad_(True)
    y = torch.randint(0, shape[1], (shape[0], *shape[2:]), generator=g).to(device)
    w = torch.rand((shape[0], *shape[2:]), generator=g).to(device=device, dtype=dtype)
    return x, y, w


def step(fn, x, y, w):
    x.grad = None
    fn(x, y, w).backward()
    if x.is_cuda:
        torch.cuda.synchronize()


@pytest.mark.parametrize("impl", [*variants("fused"), "eager", "compile"])
@pytest.mark.parametrize("shape,device,dtype", CASES, ids=lambda v: str(v).replace("torch.", "").replace(" ", ""))
def test_weighted_ce_fwd_bwd(benchmark, impl, shape, device, dtype):
    if device == "cuda" and impl == "compile" and tuple(shape) not in CUDA_COMPILE_SHAPES:
        pytest.skip("torch.compile on CUDA: 3D shape only (compile warm-up time)")
    require_kernels(device)
    benchmark.group = f"weighted_ce fwd+bwd {tuple(shape)} {str(dtype)[6:]} {device}"
    ours = impl.startswith("fused")
    roofline.tag(benchmark, op="weighted_ce fwd+bwd", case=str(tuple(shape)).replace(" ", ""), dtype=dtype,
                 device=device, impl=impl, ours=ours, min_bytes=roofline.weighted_ce_bytes(shape, dtype))
    with run_variant(benchmark, impl, device, ours) as base:
        fn = {"fused": fused_loss, "eager": eager_loss, "compile": compiled_loss}[base]
        x, y, w = make(shape, device, dtype)
        if base == "compile":
            torch._dynamo.reset()
            _compiled.clear()
        step(fn, x, y, w)  # warm-up (and compilation)
        run_pedantic(benchmark, step, (fn, x, y, w), device=device, rounds=ROUNDS[device], warmup_rounds=1)


# Meta-learning (MW-Net, MCPM) also differentiates with respect to the weight: d/dw = g * CE.
WEIGHT_GRAD_SHAPE = (4, 2, 112, 112, 80)


@pytest.mark.parametrize("impl", [*variants("fused"), "eager"])
@pytest.mark.parametrize("device", [device_param(d, d, id=d) for d in DEVICES])
def test_weighted_ce_fwd_bwd_weight_grad(benchmark, impl, device):
    require_kernels(device)
    shape = WEIGHT_GRAD_SHAPE
    benchmark.group = f"weighted_ce fwd+bwd, d/dlogits and d/dweight {shape} float32 {device}"
    with run_variant(benchmark, impl, device, impl.startswith("fused")) as base:
        fn = {"fused": fused_loss, "eager": eager_loss}[base]
        x, y, w = make(shape, device, torch.float32)
        w.requires_grad_(True)

        def step_w():
            w.grad = None
            step(fn, x, y, w)

        step_w()
        run_pedantic(benchmark, step_w, device=device, rounds=ROUNDS[device], warmup_rounds=1)


if __name__ == "__main__":  # interleaved rounds (_interleaved.py): python test_bench_weighted_ce.py --rounds 200
    from _interleaved import parse_args, report, time_interleaved, variant_cases

    a = parse_args("weighted_ce forward + backward, fused per CPU variant against eager, interleaved")
    for shape in SHAPES:
        x, y, w = make(shape, a.device, torch.float32)
        cases = {**variant_cases("fused", lambda i: step(fused_loss, x, y, w)),
                 "eager": (lambda i: step(eager_loss, x, y, w), None)}
        t = time_interleaved(cases, a.rounds, device=a.device)
        print(report(t, "eager", f"weighted_ce fwd+bwd {shape} float32 {a.device}, {torch.get_num_threads()} threads, "
                                 f"{a.rounds} interleaved rounds"))
