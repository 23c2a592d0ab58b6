"""PINT step benchmark: uncertainty of T teacher passes + gated loss forward + backward.

Fused (noisyseg_ext.mc_uncertainty + pint_loss, and the streaming UncertaintyAccumulator) against
the eager composite a user would write and its torch.compile, on the same inputs in the same run:
    pytest benchmarks/test_bench_pint.py --benchmark-only --benchmark-group-by=group
One torch.compile per shape (compiled once, outside the timed rounds).
"""

import math

import pytest
import torch
import torch.nn.functional as F

import noisyseg_ext
from noisyseg_ext.methods import uamt_threshold

SHAPES = {
    "2d": (8, 16, 2, (128, 128)),      # T, N, C, spatial
    "3d": (8, 2, 2, (112, 112, 80)),
}
ROUNDS = {"2d": 15, "3d": 4}
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


def compiled_loss(shape_name):
    if shape_name not in _compiled:
        _compiled[shape_name] = torch.compile(eager_loss, dynamic=False)
    return _compiled[shape_name]


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


@pytest.fixture(scope="module", params=list(SHAPES))
def case(request):
    T, N, C, spatial = SHAPES[request.param]
    g = torch.Generator().manual_seed(0)
    teacher = torch.randn(T, N, C, *spatial, generator=g) * 2
    student = (torch.randn(N, C, *spatial, generator=g) * 2).requires_grad_()
    target = torch.randint(0, C, (N, *spatial), generator=g)
    return request.param, teacher, student, target


def _run(benchmark, case, impl, name):
    shape_name, teacher, student, target = case
    benchmark.group = f"pint {shape_name}: T={SHAPES[shape_name][0]} N={SHAPES[shape_name][1]} " \
                      f"C={SHAPES[shape_name][2]} {'x'.join(map(str, SHAPES[shape_name][3]))}"
    benchmark.name = name

    def step():
        student.grad = None
        loss = impl(teacher, student, target, THRESHOLD, KEEP_RATIO, WEIGHT)
        loss.backward()
        return loss

    ref = eager_loss(teacher, student, target, THRESHOLD, KEEP_RATIO, WEIGHT)
    got = step()  # warm-up (compiles once for torch.compile) and a correctness check
    torch.testing.assert_close(got.detach(), ref.detach(), rtol=1e-4, atol=1e-6)
    benchmark.pedantic(step, rounds=ROUNDS[shape_name], iterations=1, warmup_rounds=1)


def test_fused(benchmark, case):
    _run(benchmark, case, fused_loss, "fused (mc_uncertainty + pint_loss)")


def test_fused_streaming(benchmark, case):
    _run(benchmark, case, streaming_loss, "fused streaming (UncertaintyAccumulator)")


def test_eager(benchmark, case):
    _run(benchmark, case, eager_loss, "eager composite")


def test_torch_compile(benchmark, case):
    _run(benchmark, case, compiled_loss(case[0]), "torch.compile(eager composite)")
