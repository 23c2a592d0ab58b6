"""PINT kernels: MC uncertainty (stacked and streaming) and the gated CE / MSE loss, against the
pure-torch references in noisyseg_ext.ops.reference."""

import itertools
import math

import pytest
import torch

import noisyseg_ext
from noisyseg_ext import UncertaintyAccumulator, mc_uncertainty, pint_loss
from noisyseg_ext.ops import _kernels, image_gate, reference

DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]
SPATIAL = [(37,), (9, 13), (4, 5, 6)]


def tol(dtype):
    # outputs are float32 for every non-float64 input (inputs are cast exactly), so 16-bit
    # inputs only differ from the reference by float32 rounding; the loss in 16 bits is rounded.
    return dict(rtol=1e-12, atol=1e-12) if dtype == torch.float64 else dict(rtol=2e-5, atol=2e-6)


def loss_tol(dtype):
    return {torch.float16: dict(rtol=2e-3, atol=1e-3), torch.bfloat16: dict(rtol=1e-2, atol=1e-2)}.get(dtype, tol(dtype))


def make_target(n, spatial, c, device, ignore=-100, frac_ignored=0.2):
    t = torch.randint(0, c, (n, *spatial), device=device)
    mask = torch.rand(t.shape, device=device) < frac_ignored
    return torch.where(mask, torch.full_like(t, ignore), t)


# ----------------------------------------------------------------------------------------------
# uncertainty

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("spatial", SPATIAL)
@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("C", [2, 4])  # two classes take their own path (sigmoid, one running sum)
def test_mc_uncertainty_matches_reference(device, dtype, spatial, normalize, C):
    T, N = 5, 3
    x = (torch.randn(T, N, C, *spatial, device=device) * 3).to(dtype)
    target = make_target(N, spatial, C, device)
    got = mc_uncertainty(x, normalize=normalize, target=target)
    ref = reference.mc_uncertainty(x, normalize=normalize, target=target)
    acc = _kernels.acc_dtype(dtype)
    for g, r, name in zip(got, ref, ("mean_prob", "pixel", "image")):
        assert g.dtype == acc, name
        torch.testing.assert_close(g, r, **tol(dtype), msg=name)
    assert isinstance(got, noisyseg_ext.McUncertainty)
    torch.testing.assert_close(got.mean_prob.sum(1), torch.ones_like(got.pixel), **tol(dtype))
    if normalize:
        assert float(got.pixel.max()) <= 1 + 1e-6


# On CUDA a thread takes 4 (uncertainty) or 2 (loss) consecutive pixels of two-class inputs when
# S allows, with the part split (about 2048 pixels a part) rounded to those groups: shapes whose
# unrounded part boundaries fall inside a group (N * S = 6008 and 6004: two parts an image,
# boundaries at 1502 and 1501), and one that does not divide (S = 3003: one pixel a thread).
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("spatial", [(4, 751), (2, 1501), (3, 1001)])
def test_two_class_kernels_over_several_parts(device, dtype, spatial):
    T, N, C = 3, 2, 2
    x = (torch.randn(T, N, C, *spatial, device=device) * 3).to(dtype)
    target = make_target(N, spatial, C, device)
    got = mc_uncertainty(x, target=target)
    ref = reference.mc_uncertainty(x, target=target)
    for g, r, name in zip(got, ref, ("mean_prob", "pixel", "image")):
        torch.testing.assert_close(g, r, **tol(dtype), msg=name)
    s = (torch.randn(N, C, *spatial, device=device) * 2).to(dtype).requires_grad_()
    kw = dict(pixel_threshold=0.5, consistency_weight=0.7)
    out = pint_loss(s, target, got.mean_prob, got.pixel, **kw)
    ref_loss, ref_gate, _ = reference.pint_loss(s, target, got.mean_prob, got.pixel, **kw)
    torch.testing.assert_close(out.loss, ref_loss, **loss_tol(dtype))
    assert torch.equal(out.gate, ref_gate)
    g1, = torch.autograd.grad(out.loss, s)
    g2, = torch.autograd.grad(ref_loss, s)
    torch.testing.assert_close(g1, g2, **loss_tol(dtype))


def test_mc_uncertainty_without_target_is_plain_mean(device):
    x = torch.randn(4, 2, 3, 8, 8, device=device)
    got = mc_uncertainty(x)
    torch.testing.assert_close(got.image, got.pixel.flatten(1).mean(1))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("spatial", SPATIAL + [(4, 751)])
@pytest.mark.parametrize("C", [2, 3])  # two classes: CUDA groups of pixels a thread where S allows
def test_accumulator_equals_stacked_bitwise(device, dtype, spatial, C):
    T, N = 6, 2
    x = (torch.randn(T, N, C, *spatial, device=device) * 4).to(dtype)
    target = make_target(N, spatial, C, device)
    acc = UncertaintyAccumulator(normalize=True)
    for t in range(T):
        acc.add(x[t])
    assert acc.count == T
    streamed = acc.result(target)
    stacked = mc_uncertainty(x, normalize=True, target=target)
    for a, b in zip(streamed, stacked):
        assert torch.equal(a, b)
    acc.reset()
    acc.add(x[0])
    torch.testing.assert_close(acc.result().mean_prob, torch.softmax(x[0].to(_kernels.acc_dtype(dtype)), 1),
                               **tol(dtype))


def test_accumulator_non_contiguous_input(device):
    x = torch.randn(3, 2, 7, 5, 4, device=device)
    acc = UncertaintyAccumulator()
    for t in range(3):
        acc.add(x[t].transpose(-1, -2))
    ref = reference.mc_uncertainty(x.transpose(-1, -2))
    for a, b in zip(acc.result(), ref):
        torch.testing.assert_close(a, b)


def test_two_class_cross_entropy_is_accurate(device):
    """Two classes: the trusted pixels' CE is log(1 + e) + max(0, s_other - s_y), e = exp(-|d|),
    with log(1 + e) by a polynomial on the CPU (vec_math.h log1p_unit_poly). Checked against
    softplus(s_other - s_y) in float64 over score gaps of +-40 (torch's own float64 CE,
    log(1 + e) rounded, is off by up to 1e-3 relative at gaps near 30): a few ulp on the CPU; the
    device takes log1pf(e) of __expf's e, which is off by about 1e-6 relative at gaps near 40
    (its argument rounded to float32 times log2(e)): hence a small atol there. (With __logf(1 + e)
    the device was off by 1.5e-7 absolute, failing this on an H100.)"""
    d = torch.linspace(-40, 40, 20001, device=device)
    s = torch.stack([torch.zeros_like(d), d]).unsqueeze(0)  # (1, 2, L)
    for y in (0, 1):
        target = torch.full((1, d.numel()), y, device=device)
        got = pint_loss(s, target, torch.full_like(s, 0.5), torch.zeros_like(d)[None], reduction="none").loss
        truth = torch.nn.functional.softplus((s[:, 1 - y] - s[:, y]).double(), threshold=1e9)
        atol = 0.0 if device.type == "cpu" else 1e-7
        torch.testing.assert_close(got.double(), truth, rtol=1e-6, atol=atol)


@pytest.mark.parametrize("C", [2, 3])
def test_extreme_logits(device, C):
    """Scores far apart, infinite or NaN: uncertainty, loss and gradient as the reference."""
    x = torch.randn(3, 2, C, 12, device=device, dtype=torch.float64) * 2
    x[:, 0, 0, :6] = torch.tensor([40.0, -40.0, 1e4, -1e4, 88.5, -103.0])
    x[0, 1, 0, 0] = float("inf")
    x[1, 1, 1, 1] = float("-inf")
    x[2, 1, 0, 2] = float("nan")
    x[:2, 1, 0, 3], x[:2, 1, 1, 3] = float("inf"), float("-inf")  # +inf beside -inf: NaN (inf - inf)
    for dtype in (torch.float32, torch.float64):
        xt = x.to(dtype)
        got = mc_uncertainty(xt)
        ref = reference.mc_uncertainty(xt)
        for g, r in zip(got, ref):
            torch.testing.assert_close(g, r, **tol(dtype), equal_nan=True)
        s = xt[0].clone().requires_grad_()
        # The same labels on every device, and every label at the +inf score's pixel (1, 0):
        # its cross-entropy is NaN whatever the label (torch).
        target = torch.randint(0, C, (2, 12), generator=torch.Generator().manual_seed(1)).to(device)
        mu, u = ref[0].nan_to_num(0.5), ref[1].nan_to_num(0.0)
        for thr, y_inf in itertools.product((None, 0.3), range(C)):
            target[1, 0] = y_inf
            r = pint_loss(s, target, mu, u, pixel_threshold=thr, consistency_weight=0.5, reduction="none")
            e, _, _ = reference.pint_loss(s, target, mu, u, pixel_threshold=thr, consistency_weight=0.5,
                                          reduction="none")
            torch.testing.assert_close(r.loss, e, **tol(dtype), equal_nan=True)
            up = torch.rand_like(r.loss)
            g1, = torch.autograd.grad(r.loss, s, up)
            g2, = torch.autograd.grad(e, s, up)
            torch.testing.assert_close(g1, g2, **tol(dtype), equal_nan=True)


def test_entropy_of_certain_and_uniform_predictions(device):
    C = 4
    x = torch.zeros(2, 1, C, 3, device=device)
    x[:, 0, 1, 0] = 1e4  # one-hot: mu has exact zeros, 0 log 0 = 0
    got = mc_uncertainty(x)
    assert float(got.pixel[0, 0]) == 0.0
    torch.testing.assert_close(got.pixel[0, 1:], torch.full((2,), math.log(C), device=device))
    got_n = mc_uncertainty(x, normalize=True)
    torch.testing.assert_close(got_n.pixel[0, 1:], torch.ones(2, device=device))
    one_class = mc_uncertainty(torch.randn(3, 2, 1, 5, device=device), normalize=True)
    assert torch.equal(one_class.pixel, torch.zeros_like(one_class.pixel))


def test_all_ignored_image_gives_nan(device):
    x = torch.randn(2, 2, 2, 4, 4, device=device)
    target = torch.zeros(2, 4, 4, dtype=torch.int64, device=device)
    target[1] = 255
    got = mc_uncertainty(x, target=target, ignore_index=255)
    assert torch.isnan(got.image[1]) and torch.isfinite(got.image[0])


def test_no_gradient_into_teacher(device):
    x = torch.randn(3, 2, 2, 6, device=device, requires_grad=True)
    got = mc_uncertainty(x)
    assert not any(t.requires_grad for t in got)
    acc = UncertaintyAccumulator()
    acc.add(x[0] * 2)
    assert not acc.result().mean_prob.requires_grad


@pytest.mark.any_cpu_isa
@pytest.mark.parametrize("label_dtype", [torch.uint8, torch.int32, torch.int64])
def test_mc_uncertainty_bad_inputs(device, label_dtype):
    x = torch.randn(2, 2, 3, 5, 5, device=device)
    with pytest.raises(ValueError, match="T = 0"):
        mc_uncertainty(x[:0])
    with pytest.raises(ValueError, match="spatial"):
        mc_uncertainty(x[:, :, :, 0, 0])
    with pytest.raises(TypeError, match="dtype"):
        mc_uncertainty(x.long())
    bad = torch.zeros(2, 5, 5, dtype=label_dtype, device=device)
    bad[1, 2, 3] = 7
    with pytest.raises(ValueError, match="holds 7"):
        mc_uncertainty(x, target=bad)
    with pytest.raises(ValueError, match="target"):
        mc_uncertainty(x, target=bad[:, :4])
    acc = UncertaintyAccumulator()
    with pytest.raises(ValueError, match="no pass"):
        acc.result()
    acc.add(x[0])
    with pytest.raises(ValueError, match="shape"):
        acc.add(x[0, :, :2])
    with pytest.raises(ValueError, match="float64"):
        acc.add(x[0].double())
    with pytest.raises(ValueError, match="holds 7"):
        acc.result(bad)


@pytest.mark.parametrize("where", ["first", "last", "two"])
def test_labels_out_of_range_in_any_part_raise_with_the_first(device, where):
    """The kernels count labels outside [0, C) in their partial sums (no flag): one in the first or
    the last of many parts is found by mc_uncertainty (stacked and streaming) and pint_loss, and
    the message names the first in memory order; ignore_index (255 here) is not one."""
    N, C, H, W = 3, 2, 64, 80  # 15360 pixels: several parts an image
    x = torch.randn(2, N, C, H, W, device=device)
    target = torch.randint(0, C, (N, H, W), device=device, dtype=torch.int32)
    target[1, 5, 7] = 255
    if where == "first":
        target[0, 0, 0] = 9
    elif where == "last":
        target[N - 1, H - 1, W - 1] = -4
    else:
        target[2, 10, 3], target[1, 40, 2] = 6, -3
    first = {"first": 9, "last": -4, "two": -3}[where]
    with pytest.raises(ValueError, match=f"holds {first},"):
        mc_uncertainty(x, target=target, ignore_index=255)
    acc = UncertaintyAccumulator()
    acc.add(x[0])
    with pytest.raises(ValueError, match=f"holds {first},"):
        acc.result(target, ignore_index=255)
    mu, u, _ = mc_uncertainty(x)
    s = torch.randn(N, C, H, W, device=device, requires_grad=True)
    for kw in (dict(), dict(pixel_threshold=0.5, image_keep_ratio=0.5)):
        with pytest.raises(ValueError, match=f"holds {first},"):
            pint_loss(s, target, mu, u, ignore_index=255, **kw)
    target[target < 0] = 1
    target[(target > 1) & (target != 255)] = 0
    r = pint_loss(s, target, mu, u, ignore_index=255)  # clean again: no error, one pixel ignored
    assert float(r.loss) > 0


# ----------------------------------------------------------------------------------------------
# gated loss

GATES = [
    dict(),
    dict(pixel_threshold=0.9),
    dict(image_threshold=0.95),
    dict(pixel_threshold=1.0, image_keep_ratio=0.5),
    dict(image_keep_ratio=1.0),
]


def _inputs(device, dtype, spatial, N=4, C=3, T=4, ignore=-100):
    teacher = torch.randn(T, N, C, *spatial, device=device) * 2
    mu, u, U = reference.mc_uncertainty(teacher)
    s = (torch.randn(N, C, *spatial, device=device) * 2).to(dtype).requires_grad_()
    target = make_target(N, spatial, C, device, ignore)
    return s, target, mu, u


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("spatial", SPATIAL)
@pytest.mark.parametrize("gates", GATES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("C", [2, 3])  # two classes take their own path (one exp a pixel)
def test_pint_loss_matches_reference(device, dtype, spatial, gates, reduction, C):
    s, target, mu, u = _inputs(device, dtype, spatial, C=C)
    kw = dict(gates, consistency_weight=0.7, reduction=reduction)
    got = pint_loss(s, target, mu, u, **kw)
    ref_loss, ref_gate, ref_image_gate = reference.pint_loss(s, target, mu, u, **kw)
    assert got.loss.dtype == dtype and got.loss.shape == ref_loss.shape
    torch.testing.assert_close(got.loss, ref_loss, **loss_tol(dtype))
    assert torch.equal(got.gate, ref_gate)
    assert torch.equal(got.image_gate, ref_image_gate)
    valid = target != -100
    frac = (ref_gate & valid).sum() / valid.sum()
    torch.testing.assert_close(got.pixel_trusted_fraction.double(), frac.double(), rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(got.image_trusted_fraction.double(), ref_image_gate.double().mean())
    up = torch.randn_like(got.loss) if reduction == "none" else None
    g1, = torch.autograd.grad(got.loss, s, up)
    g2, = torch.autograd.grad(ref_loss, s, up)
    torch.testing.assert_close(g1, g2, **loss_tol(dtype))


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_backward_repeated_and_scaled(device, reduction):
    """On the CPU the backward of an upstream gradient of 1 returns the forward's d loss / d s
    itself (no pass): backward three times with retain_graph must accumulate three equal
    gradients (no aliasing of the saved tensor with .grad), and a scaled loss scales it."""
    s, target, mu, u = _inputs(device, torch.float32, (6, 7), C=2)
    kw = dict(pixel_threshold=0.5, reduction=reduction)
    ref_loss = reference.pint_loss(s, target, mu, u, **kw)[0]
    expect, = torch.autograd.grad(ref_loss, s)
    out = pint_loss(s, target, mu, u, **kw)
    for k in (1, 2, 3):
        out.loss.backward(retain_graph=True)
        torch.testing.assert_close(s.grad, k * expect)
    s.grad = None
    (2.5 * pint_loss(s, target, mu, u, **kw).loss).backward()
    torch.testing.assert_close(s.grad, 2.5 * expect)


def test_gradient_changed_in_place_is_never_silently_reused(device):
    """The CPU backward may hand out the forward's saved d loss / d s itself: changing that
    gradient in place and differentiating the same graph again must raise (autograd's version
    check on the saved tensor) or give the right gradient, never a wrong one."""
    s, target, mu, u = _inputs(device, torch.float32, (6, 7), C=2)
    out = pint_loss(s, target, mu, u, pixel_threshold=0.5)
    g, = torch.autograd.grad(out.loss, s, retain_graph=True)
    expect = g.clone()
    g.mul_(3)
    try:
        again, = torch.autograd.grad(out.loss, s)
    except RuntimeError as e:
        assert "modified by an inplace operation" in str(e)
    else:
        torch.testing.assert_close(again, expect)


def test_pint_loss_mixes_both_terms(device):
    # the gates above must actually produce both trusted and untrusted valid pixels
    s, target, mu, u = _inputs(device, torch.float32, (16, 16))
    got = pint_loss(s, target, mu, u, pixel_threshold=0.9)
    assert 0.05 < float(got.pixel_trusted_fraction) < 0.95
    ce = torch.nn.functional.cross_entropy(s, target, reduction="none")
    mse = ((torch.softmax(s, 1) - mu) ** 2).sum(1)
    m = pint_loss(s, target, mu, u, pixel_threshold=0.9, consistency_weight=2.0, reduction="none").loss
    valid = target != -100
    expect = torch.where(valid, torch.where(u < 0.9, ce, 2.0 * mse), torch.zeros_like(ce))
    torch.testing.assert_close(m, expect)


@pytest.mark.parametrize("spatial", [(5,), (3, 4), (2, 3, 2)])
@pytest.mark.parametrize("gates", GATES[:4])
@pytest.mark.parametrize("reduction", ["mean", "none"])
@pytest.mark.parametrize("C", [2, 3])
def test_pint_loss_gradcheck(device, spatial, gates, reduction, C):
    s, target, mu, u = _inputs(device, torch.float64, spatial, N=3, C=C)
    s = s.detach().requires_grad_()

    def f(x):
        return pint_loss(x, target, mu, u, consistency_weight=0.6, reduction=reduction, **gates).loss

    assert torch.autograd.gradcheck(f, (s,), eps=1e-6, atol=1e-6)


def test_pint_loss_no_gradient_into_teacher_targets(device):
    s, target, mu, u = _inputs(device, torch.float64, (6, 6))
    mu = mu.clone().requires_grad_()
    u = u.clone().requires_grad_()
    loss = pint_loss(s, target, mu, u, pixel_threshold=0.9).loss
    loss.backward()
    assert mu.grad is None and u.grad is None and s.grad is not None


@pytest.mark.any_cpu_isa
def test_pint_loss_double_backward_not_supported(device):
    s, target, mu, u = _inputs(device, torch.float64, (4, 4))
    loss = pint_loss(s, target, mu, u, pixel_threshold=0.9).loss
    g, = torch.autograd.grad(loss, s, create_graph=True)
    with pytest.raises(RuntimeError, match="no autograd formula"):
        torch.autograd.grad(g.pow(2).sum(), s)


def test_image_keep_ratio_ranking(device):
    U = torch.tensor([0.3, 0.1, float("nan"), 0.1, 0.5], device=device)
    assert image_gate(U, image_keep_ratio=0.4).tolist() == [False, True, False, True, False]
    assert image_gate(U, image_keep_ratio=0.01).tolist() == [False, True, False, False, False]
    assert image_gate(U, image_keep_ratio=1.0).tolist() == [True] * 5
    assert image_gate(U, image_keep_ratio=0.5).tolist() == [True, True, False, True, False]  # round(2.5) -> 3
    assert image_gate(U, image_threshold=0.2).tolist() == [False, True, False, True, False]
    assert image_gate(U).tolist() == [True] * 5
    ref = reference.pint_image_gate(U, image_keep_ratio=0.5)
    assert torch.equal(ref, image_gate(U, image_keep_ratio=0.5))


@pytest.mark.parametrize("seed", range(4))
def test_kernel_image_gate_equals_image_gate(device, seed):
    """The loss kernel ranks the images itself (pint_math.h ImageGate): the same gate as
    image_gate's stable argsort, ties (lower index first) and NaN (last) included."""
    g = torch.Generator().manual_seed(seed)
    n = 9
    U = torch.randint(0, 4, (n,), generator=g).float() / 4
    U[torch.randperm(n, generator=g)[:2]] = float("nan")
    U = U.to(device)
    s, target, mu, u = _inputs(device, torch.float32, (4, 4), N=n)
    for kw in [dict(image_keep_ratio=r) for r in (0.05, 0.3, 0.5, 0.75, 1.0)] + [dict(image_threshold=0.4)]:
        got = pint_loss(s, target, mu, u, image_uncertainty=U, **kw)
        want = image_gate(U, **kw)
        assert got.image_gate.tolist() == want.tolist(), kw
        assert float(got.image_trusted_fraction) == pytest.approx(want.float().mean().item())


def test_image_gate_uses_given_image_uncertainty(device):
    s, target, mu, u = _inputs(device, torch.float32, (5, 5))
    U = torch.tensor([0.0, 9.0, 0.0, 9.0], device=device)
    got = pint_loss(s, target, mu, u, image_threshold=1.0, image_uncertainty=U)
    assert got.image_gate.tolist() == [True, False, True, False]
    assert not got.gate[1].any() and not got.gate[3].any()
    assert float(got.image_trusted_fraction) == 0.5


def test_all_ignored_mean_is_nan(device):
    s, target, mu, u = _inputs(device, torch.float32, (3, 3))
    target = torch.full_like(target, -100)
    got = pint_loss(s, target, mu, u)
    assert torch.isnan(got.loss)
    assert float(pint_loss(s, target, mu, u, reduction="sum").loss.detach()) == 0.0


@pytest.mark.any_cpu_isa
def test_pint_loss_bad_inputs(device):
    s, target, mu, u = _inputs(device, torch.float32, (4, 4))
    with pytest.raises(ValueError, match="not both"):
        pint_loss(s, target, mu, u, image_threshold=0.5, image_keep_ratio=0.5)
    for r in (0.0, -0.1, 1.5):
        with pytest.raises(ValueError, match=r"\(0, 1\]"):
            pint_loss(s, target, mu, u, image_keep_ratio=r)
    with pytest.raises(ValueError, match="mean_prob"):
        pint_loss(s, target, mu[:, :2], u)
    with pytest.raises(ValueError, match="pixel_uncertainty"):
        pint_loss(s, target, mu, u[:, :3])
    with pytest.raises(ValueError, match="target"):
        pint_loss(s, target[:2], mu, u)
    bad = target.clone()
    bad[0, 0, 0] = 3
    with pytest.raises(ValueError, match="holds 3"):
        pint_loss(s, bad, mu, u)
    with pytest.raises(ValueError, match="reduction"):
        pint_loss(s, target, mu, u, reduction="weighted_mean")
    with pytest.raises(TypeError, match="target"):
        pint_loss(s, target.float(), mu, u)
    with pytest.raises(TypeError, match="pixel_threshold"):
        pint_loss(s, target, mu, u, pixel_threshold=torch.tensor(0.5))
    with pytest.raises(ValueError, match="image_uncertainty"):
        pint_loss(s, target, mu, u, image_threshold=0.5, image_uncertainty=torch.zeros(3, device=device))


# ----------------------------------------------------------------------------------------------
# torch.library checks, compile, fallback

@pytest.mark.any_cpu_isa
def test_opcheck(device):
    x = torch.randn(3, 2, 3, 4, 5, device=device)
    target = make_target(2, (4, 5), 3, device)
    torch.library.opcheck(torch.ops.noisyseg.mc_uncertainty, (x, target, -100, True))
    torch.library.opcheck(torch.ops.noisyseg.mc_uncertainty, (x, None, -100, False))
    sums = torch.zeros(2, 3, 4, 5, device=device)
    torch.library.opcheck(torch.ops.noisyseg.mc_accumulate, (sums, x[0], True))
    torch.library.opcheck(torch.ops.noisyseg.mc_finalize, (sums + 1.0, 3, target, -100, False))
    s = torch.randn(2, 3, 4, 5, device=device, dtype=torch.float64, requires_grad=True)
    mu, u, _ = reference.mc_uncertainty(x.double())
    U = torch.tensor([0.3, 0.1], device=device, dtype=torch.float64)
    for reduction in ("none", "mean", "sum"):
        for want_grad in (False, True):
            torch.library.opcheck(torch.ops.noisyseg.pint_loss_fwd,
                                  (s, target, mu, u, U, 0.9, None, 1, 0.5, -100, reduction, want_grad))
    torch.library.opcheck(torch.ops.noisyseg.pint_loss_fwd,
                          (s, target, mu, u, U, None, 0.2, None, 1.0, -100, "mean", True))
    torch.library.opcheck(torch.ops.noisyseg.pint_loss_fwd,
                          (s, target, mu, u, None, None, None, None, 1.0, -100, "mean", True))
    dloss = torch.randn(2, 3, 4, 5, device=device)
    stats = torch.tensor([17.0, 0.5, 1.0], device=device)
    for g, reduction in ((torch.randn(2, 4, 5, device=device).half(), "none"),
                         (torch.tensor(0.5, device=device).half(), "mean")):
        torch.library.opcheck(torch.ops.noisyseg.pint_loss_bwd, (g, dloss, stats, s.detach().half(), reduction))


@pytest.mark.parametrize("want_map", [False, True])
def test_forward_without_want_grad_still_differentiable(device, want_map):
    """The op writes d loss / d s in the forward when asked; without it the backward recomputes."""
    s = torch.randn(2, 3, 4, 5, device=device, dtype=torch.float64, requires_grad=True)
    target = make_target(2, (4, 5), 3, device)
    mu, u, _ = reference.mc_uncertainty(torch.randn(3, 2, 3, 4, 5, device=device, dtype=torch.float64))
    U = torch.tensor([0.3, 0.1], device=device, dtype=torch.float64)
    grads = []
    for want_grad in (False, True):
        out = torch.ops.noisyseg.pint_loss_fwd(s, target, mu, u, U, 0.9, None, 1, 0.5, -100,
                                               "none" if want_map else "mean", want_grad)
        assert out[4].numel() == (s.numel() if want_grad else 0)
        grads.append(torch.autograd.grad(out[0].sum(), s)[0])
    torch.testing.assert_close(grads[0], grads[1], rtol=0, atol=0)


@pytest.mark.any_cpu_isa
@pytest.mark.parametrize("backend", ["aot_eager", "inductor"])
def test_torch_compile_fullgraph(device, backend):
    teacher = torch.randn(4, 2, 2, 8, 8, device=device)
    s = torch.randn(2, 2, 8, 8, device=device, requires_grad=True)
    target = make_target(2, (8, 8), 2, device)

    def step(teacher, s, target):
        mu, u, U = mc_uncertainty(teacher, target=target)
        r = pint_loss(s, target, mu, u, pixel_threshold=0.6, image_keep_ratio=0.5, image_uncertainty=U,
                      consistency_weight=0.3)
        return r.loss, r.gate, r.pixel_trusted_fraction

    compiled = torch.compile(step, fullgraph=True, backend=backend)
    eager = step(teacher, s, target)
    got = compiled(teacher, s, target)
    for a, b in zip(got, eager):
        torch.testing.assert_close(a, b)
    g1, = torch.autograd.grad(got[0], s)
    g2, = torch.autograd.grad(eager[0], s)
    torch.testing.assert_close(g1, g2)


@pytest.mark.any_cpu_isa
def test_reference_fallback_matches_kernel(device, monkeypatch):
    teacher = torch.randn(3, 2, 3, 6, 7, device=device)
    target = make_target(2, (6, 7), 3, device)
    s = torch.randn(2, 3, 6, 7, device=device, requires_grad=True)
    kernel_mc = mc_uncertainty(teacher, target=target)
    kernel = pint_loss(s, target, kernel_mc.mean_prob, kernel_mc.pixel, pixel_threshold=1.0, image_keep_ratio=0.5)
    acc = UncertaintyAccumulator()
    monkeypatch.setattr(_kernels, "use_kernel", lambda op, dev: False)
    fallback_mc = mc_uncertainty(teacher, target=target)
    for t in range(3):
        acc.add(teacher[t])
    for a, b, c in zip(kernel_mc, fallback_mc, acc.result(target)):
        torch.testing.assert_close(a, b)
        torch.testing.assert_close(a, c)
    fb = pint_loss(s, target, kernel_mc.mean_prob, kernel_mc.pixel, pixel_threshold=1.0, image_keep_ratio=0.5)
    for a, b in zip(kernel, fb):
        torch.testing.assert_close(a, b)


def test_strip_kernels_match_reference():
    """Odd sizes (strips that end inside a vector), three dtypes, C = 2 and 3; like every test
    without a `device`, once for each CPU variant (conftest.py)."""
    for dtype, classes in ((torch.float32, 3), (torch.float16, 3), (torch.float32, 2)):
        x = (torch.randn(4, 3, classes, 11, 70) * 3).to(dtype)
        target = make_target(3, (11, 70), classes, "cpu")
        got = mc_uncertainty(x, target=target, normalize=True)
        for g, r in zip(got, reference.mc_uncertainty(x, target=target, normalize=True)):
            torch.testing.assert_close(g, r, **tol(dtype))
        s = (torch.randn(3, classes, 11, 70) * 2).to(dtype).requires_grad_()
        r = pint_loss(s, target, got.mean_prob, got.pixel, pixel_threshold=0.9, image_keep_ratio=0.7)
        ref, ref_gate, _ = reference.pint_loss(s, target, got.mean_prob, got.pixel, pixel_threshold=0.9,
                                               image_keep_ratio=0.7)
        torch.testing.assert_close(r.loss, ref, **loss_tol(dtype))
        assert torch.equal(r.gate, ref_gate)
        torch.testing.assert_close(torch.autograd.grad(r.loss, s)[0], torch.autograd.grad(ref, s)[0],
                                   **loss_tol(dtype))
