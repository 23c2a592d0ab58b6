"""weighted_ce's forward with the gradient (ops/weighted_ce.py _ForwardWithGrad): on the CPU in plain
eager mode a "mean" / "sum" loss whose logits need a gradient writes d loss / d logits in the
forward's pass. Its values must be the custom-op path's bit for bit, under any upstream gradient,
to second order, and it must stay off wherever it does not apply."""

import sys

import pytest
import torch

from noisyseg_ext import weighted_ce
from noisyseg_ext.ops import _direct, reference

wce_module = sys.modules["noisyseg_ext.ops.weighted_ce"]


def inputs(shape, C, dtype, seed=0, ignore=True, label_dtype=torch.int64):
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn((shape[0], C, *shape[1:]), generator=g, dtype=torch.float64) * 3).to(dtype)
    y = torch.randint(0, C, shape, generator=g)
    if ignore:
        y[torch.rand(shape, generator=g) < 0.2] = -100 if label_dtype != torch.uint8 else 255
    w = torch.rand(shape, generator=g, dtype=torch.float64).to(dtype)
    return x, y.to(label_dtype), w


def loss_and_grad(x, y, w, reduction, direct, upstream=None, ignore_index=-100):
    previous = _direct.set_direct_calls(direct)
    try:
        xi = x.clone().requires_grad_()
        loss = weighted_ce(xi, y, w, reduction=reduction, ignore_index=ignore_index)
        fused = type(loss.grad_fn).__name__ == "_ForwardWithGradBackward"
        loss.backward(upstream)
        return loss.detach(), xi.grad, fused
    finally:
        _direct.set_direct_calls(previous)


@pytest.mark.parametrize("shape", [(3, 17), (2, 9, 13), (2, 5, 6, 7)], ids=["1d", "2d", "3d"])
@pytest.mark.parametrize("C", [2, 3, 14])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("with_weight", [True, False])
def test_same_bits_as_the_custom_ops(cpu_isa, shape, C, dtype, reduction, with_weight):
    x, y, w = inputs(shape, C, dtype)
    w = w if with_weight else None
    loss, grad, fused = loss_and_grad(x, y, w, reduction, direct=True)
    loss_op, grad_op, fused_op = loss_and_grad(x, y, w, reduction, direct=False)
    assert fused and not fused_op  # (the tests run with the eager fallbacks off: conftest)
    assert torch.equal(loss, loss_op) and torch.equal(grad, grad_op)
    ref = reference.weighted_ce(x.double().requires_grad_(), y, None if w is None else w.double(), reduction=reduction)
    ref.backward()
    tol = {torch.float64: 1e-10, torch.float32: 1e-5, torch.bfloat16: 2e-2}[dtype]
    torch.testing.assert_close(loss.double(), ref.detach(), rtol=tol, atol=tol)


@pytest.mark.parametrize("C", [2, 5])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_upstream_gradient_other_than_one(C, reduction):
    x, y, w = inputs((2, 8, 9), C, torch.float64)
    for upstream in (torch.tensor(-2.5, dtype=torch.float64), torch.tensor(0.0, dtype=torch.float64)):
        _, grad, fused = loss_and_grad(x, y, w, reduction, direct=True, upstream=upstream)
        _, grad_op, _ = loss_and_grad(x, y, w, reduction, direct=False, upstream=upstream)
        assert fused
        torch.testing.assert_close(grad, grad_op, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("C", [2, 4])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_second_order_through_the_custom_op(C, reduction):
    x, y, w = inputs((2, 4, 5), C, torch.float64)
    xi = x.clone().requires_grad_()
    fn = lambda x: weighted_ce(x, y, w, reduction=reduction)  # noqa: E731
    assert type(fn(xi).grad_fn).__name__ == "_ForwardWithGradBackward"
    assert torch.autograd.gradcheck(fn, (xi,))
    assert torch.autograd.gradgradcheck(fn, (xi,))
    # and a Hessian-vector product equal to the custom-op path's
    def hvp(direct):
        previous = _direct.set_direct_calls(direct)
        try:
            xj = x.clone().requires_grad_()
            (g,) = torch.autograd.grad(fn(xj), xj, create_graph=True)
            return torch.autograd.grad((g * torch.linspace(-1, 1, g.numel(), dtype=g.dtype).view_as(g)).sum(), xj)[0]
        finally:
            _direct.set_direct_calls(previous)
    torch.testing.assert_close(hvp(True), hvp(False), rtol=1e-12, atol=1e-14)


def test_not_taken_where_it_does_not_apply():
    x, y, w = inputs((2, 6, 7), 2, torch.float32)
    xg = x.clone().requires_grad_()
    names = lambda loss: type(loss.grad_fn).__name__  # noqa: E731
    assert names(weighted_ce(xg, y, w)) == "_ForwardWithGradBackward"
    assert names(weighted_ce(xg, y, w.clone().requires_grad_())) != "_ForwardWithGradBackward"  # d/dw wanted
    assert names(weighted_ce(xg, y, w, reduction="weighted_mean")) != "_ForwardWithGradBackward"
    assert weighted_ce(xg, y, w, reduction="none").grad_fn is not None
    with torch.no_grad():
        assert weighted_ce(xg, y, w).grad_fn is None
    assert weighted_ce(x, y, w).grad_fn is None  # no gradient wanted: nothing written
    assert not wce_module._fused_grad_applies(xg, y, w, "none")


def test_all_ignored_and_retain_graph():
    x, y, w = inputs((2, 4, 4), 2, torch.float32)
    y[:] = -100
    loss, grad, fused = loss_and_grad(x, y, w, "mean", direct=True)
    assert fused and torch.isnan(loss) and torch.equal(grad, torch.zeros_like(grad))  # as torch: 0 / 0
    x, y, w = inputs((2, 4, 4), 2, torch.float32)
    xi = x.clone().requires_grad_()
    loss = weighted_ce(xi, y, w)
    loss.backward(retain_graph=True)
    first = xi.grad.clone()
    loss.backward()
    torch.testing.assert_close(xi.grad, 2 * first)


@pytest.mark.parametrize("label_dtype", [torch.uint8, torch.int32])
def test_other_label_dtypes_and_ignore_index(label_dtype):
    x, y, w = inputs((2, 7, 6), 2, torch.float32, label_dtype=label_dtype)
    ignore = 255 if label_dtype == torch.uint8 else -100
    a = loss_and_grad(x, y, w, "mean", direct=True, ignore_index=ignore)
    b = loss_and_grad(x, y, w, "mean", direct=False, ignore_index=ignore)
    assert a[2] and torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_label_out_of_range_raises():
    x, y, w = inputs((2, 4, 4), 2, torch.float32)
    y[1, 2, 3] = 7
    with pytest.raises(ValueError, match="7"):
        weighted_ce(x.clone().requires_grad_(), y, w)
