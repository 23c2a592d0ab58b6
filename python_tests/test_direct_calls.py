"""Direct calls (noisyseg_ext/ops/_direct.py): in plain eager mode the public functions skip their
custom ops; the results, gradients and second-order gradients must be those of the custom-op path,
and anything that traces must still see the custom ops."""

import contextlib

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode

import noisyseg_ext
from noisyseg_ext.ops import _direct
from noisyseg_ext.ops.distance_transform import mask_surface


@contextlib.contextmanager
def direct_calls(enabled):
    previous = _direct.set_direct_calls(enabled)
    try:
        yield
    finally:
        _direct.set_direct_calls(previous)


def grad_fn_names(t):
    names, todo = set(), [t.grad_fn]
    while todo:
        fn = todo.pop()
        if fn is None:
            continue
        names.add(type(fn).__name__)
        todo.extend(f for f, _ in fn.next_functions)
    return names


def both_paths(fn):
    """fn() with direct calls on, then off."""
    with direct_calls(True):
        on = fn()
    with direct_calls(False):
        off = fn()
    return on, off


@pytest.mark.any_cpu_isa
def test_enabled_only_in_plain_eager():
    x = torch.randn(2, 3)
    with direct_calls(True):
        assert _direct.enabled_for(x, None)
        with FakeTensorMode():
            assert not _direct.enabled_for(x)
        with FakeTensorMode() as mode:
            assert not _direct.enabled_for(mode.from_tensor(x))
    with direct_calls(False):
        assert not _direct.enabled_for(x)


def test_weighted_ce_paths_agree_to_second_order(device):
    x = torch.randn(2, 3, 5, 4, dtype=torch.float64, device=device)
    y = torch.randint(0, 3, (2, 5, 4), device=device)
    y[0, 0, 0] = -100
    w0 = torch.rand(2, 5, 4, dtype=torch.float64, device=device)

    def run():
        xi, wi = x.clone().requires_grad_(), w0.clone().requires_grad_()
        loss = noisyseg_ext.weighted_ce(xi, y, wi, reduction="weighted_mean")
        gx, gw = torch.autograd.grad(loss, (xi, wi), create_graph=True)
        ggx, ggw = torch.autograd.grad((gx ** 2).sum() + (gw ** 3).sum(), (xi, wi))
        return loss, gx, gw, ggx, ggw, grad_fn_names(loss)

    on, off = both_paths(run)
    for a, b in zip(on[:5], off[:5]):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    assert "_FunctionBackward" in on[5] and "_FunctionBackward" not in off[5]


def test_pint_paths_agree(device):
    T, N, C = 3, 4, 3
    teacher = torch.randn(T, N, C, 6, 5, device=device)
    student = torch.randn(N, C, 6, 5, device=device)
    target = torch.randint(0, C, (N, 6, 5), device=device)

    def run():
        mu, u, U = noisyseg_ext.mc_uncertainty(teacher)
        acc = noisyseg_ext.UncertaintyAccumulator()
        for t in range(T):
            acc.add(teacher[t])
        streamed = acc.result()
        s = student.clone().requires_grad_()
        r = noisyseg_ext.pint_loss(s, target, mu, u, pixel_threshold=0.8, image_keep_ratio=0.5, consistency_weight=0.3)
        g, = torch.autograd.grad(r.loss, s)
        return (mu, u, U, *streamed, r.loss, r.gate, r.pixel_trusted_fraction, g)

    on, off = both_paths(run)
    for a, b in zip(on, off):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_no_gradient_wanted_skips_the_autograd_node(device):
    """Under no_grad, or with no input that requires a gradient, the direct path calls the
    implementation itself (no autograd.Function): same values as the custom op, no graph; with a
    gradient wanted it still builds the node."""
    x = torch.randn(2, 3, 5, 4, device=device)
    y = torch.randint(0, 3, (2, 5, 4), device=device)
    w = torch.rand(2, 5, 4, device=device)
    mu, u, _ = noisyseg_ext.mc_uncertainty(torch.randn(3, 2, 3, 5, 4, device=device))
    xg = x.clone().requires_grad_()

    def run():
        with torch.no_grad():
            a = noisyseg_ext.weighted_ce(xg, y, w)
            b = noisyseg_ext.pint_loss(xg, y, mu, u, pixel_threshold=0.8, image_keep_ratio=0.5)
        c = noisyseg_ext.weighted_ce(x, y, w, reduction="none")  # nothing requires a gradient
        d = noisyseg_ext.pint_loss(x, y, mu, u, pixel_threshold=0.8)
        return a, b.loss, b.gate, b.image_gate, b.pixel_trusted_fraction, c, d.loss

    on, off = both_paths(run)
    for a, b in zip(on, off):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
        assert a.grad_fn is None and not a.requires_grad
    with direct_calls(True):
        assert noisyseg_ext.weighted_ce(xg, y, w).grad_fn is not None
        assert noisyseg_ext.pint_loss(xg, y, mu, u).loss.grad_fn is not None


def test_morphology_distance_and_elastic_paths_agree(device):
    masks = torch.rand(2, 12, 10, device=device) > 0.6
    disp = noisyseg_ext.random_displacement(2, 2.0, 3, ndim=2, generator=torch.Generator().manual_seed(0))
    image = torch.randn(2, 12, 10, device=device)

    def run():
        img = image.clone().requires_grad_()
        warped = noisyseg_ext.elastic_deform(img, disp.to(device), order=1)
        g, = torch.autograd.grad((warped ** 2).sum(), img)
        return (noisyseg_ext.dilate(masks, 2, structure="ball"), noisyseg_ext.erode(masks, 1),
                noisyseg_ext.distance_transform(masks), mask_surface(masks), warped, g,
                noisyseg_ext.metrics.hausdorff(masks.to(torch.uint8), noisyseg_ext.dilate(masks, 1).to(torch.uint8),
                                               num_classes=2, percentile=95))

    on, off = both_paths(run)
    for a, b in zip(on, off):
        torch.testing.assert_close(a, b, rtol=0, atol=0, equal_nan=True)


@pytest.mark.any_cpu_isa
def test_compiled_calls_take_the_custom_op(device):
    if device.type == "cuda":
        pytest.skip("one device is enough: what is checked is the graph, not the kernel")
    x = torch.randn(2, 3, 4, device=device)
    y = torch.randint(0, 3, (2, 4), device=device)
    seen = []

    def backend(gm, example_inputs):
        seen.extend(str(n.target) for n in gm.graph.nodes if n.op == "call_function")
        return gm.forward

    with direct_calls(True):
        out = torch.compile(lambda a, b: noisyseg_ext.weighted_ce(a, b), backend=backend, fullgraph=True)(x, y)
    torch.testing.assert_close(out, noisyseg_ext.weighted_ce(x, y))
    assert any("weighted_ce_fwd" in s for s in seen), seen


@pytest.mark.any_cpu_isa
def test_jit_trace_records_the_custom_op():
    x = torch.randn(2, 3, 4, 5)
    y = torch.randint(0, 3, (2, 4, 5))
    with direct_calls(True):
        traced = torch.jit.trace(lambda a, b: noisyseg_ext.weighted_ce(a, b), (x, y), check_trace=False)
        x2 = torch.randn(2, 3, 4, 5)
        torch.testing.assert_close(traced(x2, y), noisyseg_ext.weighted_ce(x2, y))
    assert "noisyseg::weighted_ce_fwd" in str(traced.graph)
