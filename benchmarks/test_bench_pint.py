"""PINT step benchmark: uncertainty of T teacher passes + gated loss forward + backward.

Fused (noisyseg_ext.mc_uncertainty + pint_loss, and the streaming UncertaintyAccumulator) against
the eager composite a user would write and its torch.compile, on the same inputs in the same run:
    pytest benchmarks/test_bench_pint.py --benchmark-only --benchmark-group-by=group
One torch.compile per shape and device (compiled once, outside the timed rounds). On the CPU the
fused steps run once per CPU variant of the kernels (``fused`` the default one, ``fused-avx2``,
``fused-baseline``; _devices.variants), in the same group as the baselines.

Every case runs on "cpu" and "cuda" (ids ``[2d-cpu]``, ``[3d-cuda]``, ...; the CUDA ones are
collected always and skipped without a GPU). CUDA: issue goal >= 70 % of the memory roofline on
both shapes (fewest bytes: roofline.pint_bytes), fused and streaming against eager and
torch.compile; the L2 is flushed before every round and each round ends with a synchronize
(benchmarks/_devices.py).
"""

import math

import pytest
import torch
import torch.nn.functional as F

import noisyseg_ext
import roofline
from _devices import DEVICES, device_param, require_kernels, run_pedantic, run_variant, variants
from noisyseg_ext.methods import uamt_threshold

SHAPES = {
    "2d": (8, 16, 2, (128, 128)),      # T, N, C, spatial
    "3d": (8, 2, 2, (112, 112, 80)),
}
ROUNDS = {("2d", "cpu"): 30, ("3d", "cpu"): 6, ("2d", "cuda"): 50, ("3d", "cuda"): 30}
# Untimed rounds first: on the CPU the first steps of a process run slower (the fused 2D step:
# 3-7 ms for its first three to six, then about 2), and with one warm-up round they made up
# several of the timed ones.
WARMUP_ROUNDS = {"cpu": 5, "cuda": 1}
KEEP_RATIO = 0.5
WEIGHT = 0.1
THRESHOLD = uamt_threshold(3000, 6000, 2)  # UA-MT ramp half way: about 0.57 for C = 2


def eager_loss(teacher, student, target, threshold: float, keep_ratio: float, weight: float):
    """What a user writes in PyTorch: stacked softmax, mean, entropy, gates, CE + MSE blend."""
    with torch.no_grad():
        mu = torch.softmax(teacher, dim=2).mean(0)
        u = -torch.special.xlogy(mu, mu).sum(1)
        U = u.flatten(1).mean(1)
        n = U.shape[0]
        k = max(1, int(math.floor(keep_ratio * n + 0.5)))
        keep = torch.zeros(n, dtype=torch.bool, device=U.device)
        keep[torch.topk(U, k, largest=False).indices] = True
        gate = ((u < threshold) & keep.view(n, *([1] * (u.dim() - 1)))).to(student.dtype)
    ce = F.cross_entropy(student, target, reduction="none")
    mse = ((torch.softmax(student, 1) - mu) ** 2).sum(1)
    return (gate * ce + weight * (1 - gate) * mse).mean()


_compiled = {}


def compiled_loss(key):
    if key not in _compiled:
        _compiled[key] = torch.compile(eager_loss, dynamic=False)
    return _compiled[key]


def fused_loss(teacher, student, target, threshold, keep_ratio, weight):
    mu, u, U = noisyseg_ext.mc_uncertainty(teacher)
    return noisyseg_ext.pint_loss(student, target, mu, u, pixel_threshold=threshold, image_keep_ratio=keep_ratio,
                                  image_uncertainty=U, consistency_weight=weight).loss


def streaming_loss(teacher, student, target, threshold, keep_ratio, weight):
    acc = noisyseg_ext.UncertaintyAccumulator()
    for t in range(teacher.shape[0]):  # in training: one perturbed teacher pass at a time
        acc.add(teacher[t])
    mu, u, U = acc.result()
    return noisyseg_ext.pint_loss(student, target, mu, u, pixel_threshold=threshold, image_keep_ratio=keep_ratio,
                                  image_uncertainty=U, consistency_weight=weight).loss


@pytest.fixture(scope="module", params=[device_param(d, (s, d), id=f"{s}-{d}") for d in DEVICES for s in SHAPES])
def case(request):
    shape_name, device = request.param
    require_kernels(device)
    T, N, C, spatial = SHAPES[shape_name]
    g = torch.Generator().manual_seed(0)
    teacher = (torch.randn(T, N, C, *spatial, generator=g) * 2).to(device)
    student = (torch.randn(N, C, *spatial, generator=g) * 2).to(device).requires_grad_()
    target = torch.randint(0, C, (N, *spatial), generator=g).to(device)
    return shape_name, device, teacher, student, target


def _run(benchmark, case, impl, name, ours, variant=None):
    shape_name, device, teacher, student, target = case
    with run_variant(benchmark, variant or "eager", device, ours):
        _run_step(benchmark, case, impl, name, ours)


def _run_step(benchmark, case, impl, name, ours):
    shape_name, device, teacher, student, target = case
    T, N, C, spatial = SHAPES[shape_name]
    benchmark.group = f"pint {shape_name}: T={T} N={N} C={C} {'x'.join(map(str, spatial))}" \
                      + ("" if device == "cpu" else f" {device}")
    isa = benchmark.extra_info.get("cpu_isa")
    benchmark.name = name if isa is None else f"{name} [{isa}]"
    tag_impl = name.split(" (")[0] + ("" if isa is None else f" [{isa}]")
    roofline.tag(benchmark, op="pint step fwd+bwd", case=f"{shape_name} T={T} N={N} C={C} {'x'.join(map(str, spatial))}",
                 dtype=student.dtype, device=device, impl=tag_impl, ours=ours,
                 min_bytes=roofline.pint_bytes(T, N, C, spatial, student.dtype, target.dtype))

    def step():
        student.grad = None
        loss = impl(teacher, student, target, THRESHOLD, KEEP_RATIO, WEIGHT)
        loss.backward()
        return loss

    ref = eager_loss(teacher, student, target, THRESHOLD, KEEP_RATIO, WEIGHT)
    got = step()  # warm-up (compiles once for torch.compile) and a correctness check
    torch.testing.assert_close(got.detach(), ref.detach(), rtol=1e-4, atol=1e-6)
    run_pedantic(benchmark, step, device=device, rounds=ROUNDS[shape_name, device],
                 warmup_rounds=WARMUP_ROUNDS[device])


@pytest.mark.parametrize("variant", variants("fused"))
def test_fused(benchmark, case, variant):
    _run(benchmark, case, fused_loss, "fused (mc_uncertainty + pint_loss)", True, variant)


@pytest.mark.parametrize("variant", variants("fused"))
def test_fused_streaming(benchmark, case, variant):
    _run(benchmark, case, streaming_loss, "fused streaming (UncertaintyAccumulator)", True, variant)


def test_eager(benchmark, case):
    _run(benchmark, case, eager_loss, "eager composite", False)


def test_torch_compile(benchmark, case):
    _run(benchmark, case, compiled_loss(case[:2]), "torch.compile(eager composite)", False)


if __name__ == "__main__":  # interleaved rounds (_interleaved.py): python test_bench_pint.py --rounds 200
    from _interleaved import parse_args, report, time_interleaved, variant_cases

    a = parse_args("PINT step, fused per CPU variant against the eager composite, interleaved")
    for shape_name, (T, N, C, spatial) in SHAPES.items():
        g = torch.Generator().manual_seed(0)
        teacher = (torch.randn(T, N, C, *spatial, generator=g) * 2).to(a.device)
        student = (torch.randn(N, C, *spatial, generator=g) * 2).to(a.device).requires_grad_()
        target = torch.randint(0, C, (N, *spatial), generator=g).to(a.device)

        def step(impl):
            def run(i):
                student.grad = None
                impl(teacher, student, target, THRESHOLD, KEEP_RATIO, WEIGHT).backward()
            return run

        cases = {**variant_cases("fused", step(fused_loss)), **variant_cases("fused streaming", step(streaming_loss)),
                 "eager composite": (step(eager_loss), None)}
        rounds = a.rounds if shape_name == "2d" else max(10, a.rounds // 5)
        t = time_interleaved(cases, rounds, warmup=5, device=a.device)
        print(report(t, "eager composite", f"pint step {shape_name} T={T} N={N} C={C} {spatial} {a.device}, "
                                           f"{torch.get_num_threads()} threads, {rounds} interleaved rounds"))
