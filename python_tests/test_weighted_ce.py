"""weighted_ce: the fused kernels against the pure-torch reference and torch itself."""

import sys
import warnings

import pytest
import torch
import torch.nn.functional as F

import noisyseg_ext
from noisyseg_ext import weighted_ce
from noisyseg_ext.ops import _kernels, reference

wce_module = sys.modules["noisyseg_ext.ops.weighted_ce"]

REDUCTIONS = ["none", "sum", "mean", "weighted_mean"]
TOL = {torch.float64: 1e-10, torch.float32: 2e-5, torch.float16: 2e-3, torch.bfloat16: 1e-2}


def make_inputs(shape, C, dtype, device, label_dtype=torch.int64, ignore_frac=0.1, scale=3.0, gen=None):
    N, spatial = shape[0], shape[1:]
    x = (torch.randn((N, C, *spatial), generator=gen, dtype=torch.float64) * scale).to(dtype).to(device)
    y = torch.randint(0, C, (N, *spatial), generator=gen)
    if ignore_frac:
        y[torch.rand(y.shape, generator=gen) < ignore_frac] = -100 if label_dtype != torch.uint8 else 255
    y = y.to(label_dtype).to(device)
    w = torch.rand((N, *spatial), generator=gen, dtype=torch.float64).to(dtype).to(device)
    return x, y, w


def close(a, b, dtype):
    a, b = a.double().cpu(), b.double().cpu()
    tol = TOL[dtype]
    scale = b.abs().nan_to_num(0).max().item() if b.numel() else 1.0
    assert torch.allclose(a, b, rtol=tol, atol=tol * max(1.0, scale), equal_nan=True), \
        f"max abs diff {(a - b).abs().max().item()}"


SHAPES = [(5,), (3, 7), (2, 9, 11), (2, 4, 5, 6), (1, 1, 1, 1)]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{len(s) - 1}d")
@pytest.mark.parametrize("C", [1, 2, 3, 14])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_forward_matches_reference(device, shape, C, dtype, reduction):
    gen = torch.Generator().manual_seed(hash((shape, C, str(dtype), reduction)) % 2**31)
    x, y, w = make_inputs(shape, C, dtype, device, gen=gen)
    out = weighted_ce(x, y, w, reduction=reduction)
    ref = reference.weighted_ce(x, y, w, reduction=reduction)
    assert out.dtype == dtype and out.shape == ref.shape
    close(out, ref, dtype)


@pytest.mark.parametrize("label_dtype", [torch.uint8, torch.int32, torch.int64])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_matches_torch_cross_entropy(device, label_dtype, reduction):
    ignore = 255 if label_dtype == torch.uint8 else -100
    x, y, w = make_inputs((3, 16, 17), 5, torch.float64, device, label_dtype=label_dtype)
    ce = F.cross_entropy(x, y.long(), reduction="none", ignore_index=ignore) * w
    valid = y.long() != ignore
    expected = {"none": ce, "sum": ce.sum(), "mean": ce.sum() / valid.sum(),
                "weighted_mean": ce.sum() / w[valid].sum()}[reduction]
    out = weighted_ce(x, y, w, ignore_index=ignore, reduction=reduction)
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)


def test_weight_none_is_ones(device):
    x, y, w = make_inputs((2, 8, 8), 3, torch.float32, device)
    for reduction in REDUCTIONS:
        torch.testing.assert_close(weighted_ce(x, y, reduction=reduction),
                                   weighted_ce(x, y, torch.ones_like(w), reduction=reduction))
    expected = F.cross_entropy(x.double(), y, ignore_index=-100).float()
    torch.testing.assert_close(weighted_ce(x, y), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("C", [2, 7, 64])
def test_extreme_logits_are_stable(device, C):
    x, y, w = make_inputs((2, 6, 5), C, torch.float32, device, scale=1e4)
    out = weighted_ce(x, y, w, reduction="none")
    ref = reference.weighted_ce(x.double(), y, w.double(), reduction="none")
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out.double(), ref, rtol=1e-5, atol=1e-2)
    x.requires_grad_(True)
    (g,) = torch.autograd.grad(weighted_ce(x, y, w), x)
    assert torch.isfinite(g).all()


@pytest.mark.parametrize("C", [2, 3, 7])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_infinite_and_nan_logits_as_torch(device, C, dtype):
    """+inf, -inf and NaN scores, alone and together, with every label: loss, gradient and double
    backward as torch's cross-entropy (a +inf score makes the pixel NaN, as torch's log_softmax;
    the two-class closed form once gave a finite gradient there)."""
    inf, nan = float("inf"), float("nan")
    pairs = [(a, b) for a in (inf, -inf, nan, 0.5) for b in (inf, -inf, nan, -2.0)]
    P = len(pairs) * C  # every pair of special values beside every label
    x = torch.randn(1, C, P, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    y = torch.arange(P) % C
    for k, (a, b) in enumerate(pairs):
        x[0, 0, k * C:(k + 1) * C], x[0, 1, k * C:(k + 1) * C] = a, b
    x, y = x.to(dtype).to(device), y[None].to(device)
    w = torch.rand(1, P, generator=torch.Generator().manual_seed(1), dtype=torch.float64).to(dtype).to(device)
    xs = [x.clone().requires_grad_(), x.clone().requires_grad_()]
    ws = [w.clone().requires_grad_(), w.clone().requires_grad_()]
    ops = (weighted_ce, reference.weighted_ce)
    losses = [op(xi, y, wi, reduction="none") for op, xi, wi in zip(ops, xs, ws)]
    torch.testing.assert_close(losses[0], losses[1], equal_nan=True)
    up = torch.rand_like(losses[0])
    firsts = [torch.autograd.grad(lo, (xi, wi), up, create_graph=True) for lo, xi, wi in zip(losses, xs, ws)]
    for got, ref in zip(*firsts):
        torch.testing.assert_close(got, ref, equal_nan=True)
    vx, vw = torch.rand_like(x), torch.rand_like(w)
    seconds = [torch.autograd.grad((gx * vx).sum() + (gw * vw).sum(), (xi, wi))
               for (gx, gw), xi, wi in zip(firsts, xs, ws)]
    for got, ref in zip(*seconds):
        torch.testing.assert_close(got, ref, equal_nan=True)


def test_non_contiguous_inputs(device):
    x, y, w = make_inputs((4, 10, 12), 3, torch.float64, device)
    xt = x.transpose(2, 3).contiguous().transpose(2, 3)  # same values, other strides
    xs = torch.cat([x, x], dim=1)[:, ::2]                  # strided view over classes
    ys, ws = y.t() if y.dim() == 2 else y.transpose(1, 2).contiguous().transpose(1, 2), w[:, :, :]
    for xx in (xt, xs):
        assert not xx.is_contiguous()
        out = weighted_ce(xx, ys, ws, reduction="none")
        torch.testing.assert_close(out, reference.weighted_ce(xx, ys, ws, reduction="none"))
    wv = torch.rand(4, 12, 10, dtype=torch.float64, device=device).transpose(1, 2)
    torch.testing.assert_close(weighted_ce(x, y, wv, reduction="sum"),
                               reference.weighted_ce(x, y, wv, reduction="sum"))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("C", [2, 4])
@pytest.mark.parametrize("with_weight", [True, False])
def test_gradcheck_and_gradgradcheck(device, reduction, C, with_weight):
    x, y, w = make_inputs((2, 4, 3), C, torch.float64, device, scale=2.0)
    x.requires_grad_(True)
    if with_weight:
        w.requires_grad_(True)
        fn = lambda x, w: weighted_ce(x, y, w, reduction=reduction)  # noqa: E731
        inputs = (x, w)
    else:
        fn = lambda x: weighted_ce(x, y, reduction=reduction)  # noqa: E731
        inputs = (x,)
    assert torch.autograd.gradcheck(fn, inputs)
    assert torch.autograd.gradgradcheck(fn, inputs)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gradients_match_reference(device, reduction, dtype):
    x, y, w = make_inputs((3, 9, 8), 5, dtype, device)
    x1, w1 = x.clone().requires_grad_(True), w.clone().requires_grad_(True)
    x2, w2 = x.clone().requires_grad_(True), w.clone().requires_grad_(True)
    out1 = weighted_ce(x1, y, w1, reduction=reduction)
    out2 = reference.weighted_ce(x2, y, w2, reduction=reduction)
    g = torch.randn_like(out1)
    g1 = torch.autograd.grad(out1, (x1, w1), g)
    g2 = torch.autograd.grad(out2, (x2, w2), g)
    for a, b in zip(g1, g2):
        close(a, b, dtype)


def _mwnet_meta_gradient(loss_fn, seed=0):
    """One MCPM/MW-Net meta step in float64: gradient of the clean meta loss with respect to the
    parameters of the meta mask network that produced the pixel weights."""
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.Tanh(),
                              torch.nn.Conv2d(4, 3, 3, padding=1)).double()
    meta = torch.nn.Sequential(torch.nn.Conv2d(1, 5, 3, padding=1), torch.nn.ReLU(),
                               torch.nn.Conv2d(5, 1, 3, padding=1), torch.nn.Sigmoid()).double()
    x, xm = torch.randn(2, 1, 8, 9, dtype=torch.float64), torch.randn(2, 1, 8, 9, dtype=torch.float64)
    y, ym = torch.randint(0, 3, (2, 8, 9)), torch.randint(0, 3, (2, 8, 9))
    params = dict(net.named_parameters())
    logits = torch.func.functional_call(net, params, (x,))
    loss_map = loss_fn(logits, y, None, reduction="none").detach()
    weight = meta(loss_map.unsqueeze(1)).squeeze(1)
    loss = loss_fn(logits, y, weight, reduction="mean")
    grads = torch.autograd.grad(loss, list(params.values()), create_graph=True)
    alpha = 0.5
    virtual = {k: p - alpha * g for (k, p), g in zip(params.items(), grads)}
    meta_loss = loss_fn(torch.func.functional_call(net, virtual, (xm,)), ym, None, reduction="mean")
    return torch.autograd.grad(meta_loss, list(meta.parameters()))


def test_mwnet_meta_gradient_matches_reference():
    fused = _mwnet_meta_gradient(weighted_ce)
    ref = _mwnet_meta_gradient(reference.weighted_ce)
    for a, b in zip(fused, ref):
        assert a.abs().max() > 0
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


@pytest.mark.any_cpu_isa
def test_opcheck(device):
    x, y, w = make_inputs((2, 5, 4), 3, torch.float32, device)
    x.requires_grad_(True)
    w.requires_grad_(True)
    for want_map in (True, False):
        torch.library.opcheck(torch.ops.noisyseg.weighted_ce_fwd, (x, y, w, -100, want_map))
        torch.library.opcheck(torch.ops.noisyseg.weighted_ce_fwd, (x, y, None, -100, want_map))
    g = torch.rand(2, 5, 4, device=device)
    gws = torch.tensor(0.3, device=device)
    torch.library.opcheck(torch.ops.noisyseg.weighted_ce_bwd, (g, gws, x, y, w, -100, True))
    torch.library.opcheck(torch.ops.noisyseg.weighted_ce_bwd, (g[0, 0, 0], gws, x, y, None, -100, False))
    ggx, ggw = torch.randn_like(x), torch.randn_like(w)
    torch.library.opcheck(torch.ops.noisyseg.weighted_ce_bwd_bwd,
                          (ggx.detach(), ggw.detach(), g, x.detach(), y, w.detach(), -100))
    torch.library.opcheck(torch.ops.noisyseg.weighted_ce_bwd_bwd,
                          (None, ggw.detach(), g, x.detach(), y, w.detach(), -100))


@pytest.mark.any_cpu_isa
def test_torch_compile_fullgraph_matches_eager(device):
    torch._dynamo.reset()
    x, y, w = make_inputs((2, 6, 7), 3, torch.float32, device)

    def step(x, y, w):
        return weighted_ce(x, y, w, reduction="weighted_mean") * 2 + weighted_ce(x, y, reduction="none").sum()

    compiled = torch.compile(step, fullgraph=True, backend="aot_eager")
    x1, x2 = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    out_c, out_e = compiled(x1, y, w), step(x2, y, w)
    torch.testing.assert_close(out_c, out_e)
    torch.testing.assert_close(torch.autograd.grad(out_c, x1)[0], torch.autograd.grad(out_e, x2)[0])


@pytest.mark.any_cpu_isa
def test_torch_compile_inductor(device):
    torch._dynamo.reset()
    x, y, w = make_inputs((2, 6, 7), 2, torch.float32, device)
    compiled = torch.compile(lambda x: weighted_ce(x, y, w), fullgraph=True)
    torch.testing.assert_close(compiled(x), weighted_ce(x, y, w))


# -------------------------------------------------------------------------------- edge cases

def test_nan_logits_give_nan(device):
    x, y, w = make_inputs((2, 4, 4), 3, torch.float32, device, ignore_frac=0)
    x[0, 1, 2, 3] = float("nan")
    out = weighted_ce(x, y, w, reduction="none")
    assert torch.isnan(out[0, 2, 3])
    assert torch.isfinite(out[1]).all()
    assert torch.isnan(weighted_ce(x, y, w))


def test_all_ignored(device):
    x, y, w = make_inputs((2, 3, 3), 3, torch.float32, device)
    y.fill_(-100)
    assert torch.isnan(weighted_ce(x, y, w, reduction="mean"))  # 0 / 0, as torch
    assert weighted_ce(x, y, w, reduction="weighted_mean").item() == 0.0
    assert weighted_ce(x, y, w, reduction="sum").item() == 0.0
    assert (weighted_ce(x, y, w, reduction="none") == 0).all()
    x.requires_grad_(True)
    (g,) = torch.autograd.grad(weighted_ce(x, y, w, reduction="weighted_mean"), x)
    assert (g == 0).all()


def test_ignored_pixels_get_zero_gradient(device):
    x, y, w = make_inputs((2, 5, 5), 4, torch.float64, device, ignore_frac=0.3)
    x.requires_grad_(True)
    w.requires_grad_(True)
    gx, gw = torch.autograd.grad(weighted_ce(x, y, w), (x, w))
    ignored = y == -100
    assert ignored.any()
    assert (gx.permute(0, 2, 3, 1)[ignored] == 0).all()
    assert (gw[ignored] == 0).all()


def test_empty_batch(device):
    x, y, w = make_inputs((0, 4, 4), 3, torch.float32, device)
    assert weighted_ce(x, y, w, reduction="none").shape == (0, 4, 4)
    assert weighted_ce(x, y, w, reduction="sum").item() == 0.0


@pytest.mark.parametrize("bad", [3, 7, -1, -5])
def test_label_out_of_range_names_value(device, bad):
    x, y, w = make_inputs((2, 4, 4), 3, torch.float32, device)
    y[1, 2, 2] = bad
    with pytest.raises(ValueError, match=rf"target holds {bad}\b"):
        weighted_ce(x, y, w)


@pytest.mark.any_cpu_isa
def test_bad_inputs():
    x, y, w = make_inputs((2, 4, 4), 3, torch.float32, "cpu")
    with pytest.raises(ValueError, match=r"target has shape \(2, 4, 5\)"):
        weighted_ce(x, torch.zeros(2, 4, 5, dtype=torch.long))
    with pytest.raises(ValueError, match=r"weight has shape \(2, 4\)"):
        weighted_ce(x, y, torch.ones(2, 4))
    with pytest.raises(TypeError, match="target must hold integer"):
        weighted_ce(x, y.float())
    with pytest.raises(TypeError, match="logits must have dtype"):
        weighted_ce(x.long(), y)
    with pytest.raises(TypeError, match="weight must have dtype"):
        weighted_ce(x, y, torch.ones(2, 4, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="reduction must be one of"):
        weighted_ce(x, y, reduction="avg")
    with pytest.raises(ValueError, match="0 to 3 spatial dims"):
        weighted_ce(torch.zeros(1, 2, 2, 2, 2, 2), torch.zeros(1, 2, 2, 2, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="one device"):
        weighted_ce(x, y, torch.ones(2, 4, 4, device="meta"))
    with pytest.raises(TypeError, match="torch.Tensor"):
        weighted_ce(x.numpy(), y)


def test_weight_dtype_is_cast(device):
    x, y, w = make_inputs((2, 4, 4), 3, torch.float32, device)
    torch.testing.assert_close(weighted_ce(x, y, w.double()), weighted_ce(x, y, w))


@pytest.mark.any_cpu_isa
def test_fallback_warns_once_and_matches(monkeypatch):
    x, y, w = make_inputs((2, 5, 5), 3, torch.float64, "cpu")
    expected = weighted_ce(x, y, w, reduction="weighted_mean")
    monkeypatch.setattr(_kernels, "has_kernel", lambda device: False)
    monkeypatch.setattr(_kernels, "_warned", set())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out1 = weighted_ce(x, y, w, reduction="weighted_mean")
        weighted_ce(x, y, w)
    assert sum("pure-torch reference" in str(c.message) for c in caught) == 1
    torch.testing.assert_close(out1, expected)


@pytest.mark.any_cpu_isa
def test_build_info():
    info = noisyseg_ext.build_info()
    assert info["compiled"] is True
    assert info["version"] == noisyseg_ext.__version__
    assert isinstance(info["cuda"], bool) and isinstance(info["cuda_architectures"], list)
    assert info["omp_threads"] >= 1
    if info["cuda"]:
        assert info["cuda_architectures"]


def test_results_do_not_depend_on_batch_split(device):
    """Partial sums per fixed slice: the sum of a batch equals itself whatever the thread count,
    and the map of a sample is the same alone or in a batch."""
    x, y, w = make_inputs((4, 33, 31), 3, torch.float32, device)
    full = weighted_ce(x, y, w, reduction="none")
    for i in range(4):
        torch.testing.assert_close(weighted_ce(x[i:i + 1], y[i:i + 1], w[i:i + 1], reduction="none"), full[i:i + 1])
    assert weighted_ce(x, y, w, reduction="sum").item() == weighted_ce(x, y, w, reduction="sum").item()
