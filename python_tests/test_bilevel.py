"""The bilevel step (noisyseg_ext.methods.meta.bilevel): the forward and reverse meta-gradients agree
with each other and with a central finite difference of the meta loss; the network's state is left
as it was; BatchNorm, GroupNorm, InstanceNorm and dropout; parameter selection."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from noisyseg_ext.errors import ConfigError
from noisyseg_ext.methods.meta import (MetaMaskNet, ce_tangent, head_prefixes, meta_gradient, real_forward,
                                       select_meta_parameters)
from noisyseg_ext.nets import UNet, VNet, batch_stats_only
from noisyseg_ext.ops import weighted_ce

pytestmark = pytest.mark.usefixtures("one_thread")

SEED_REAL = 11
ALPHA = 0.7


def tiny_problem(norm="batch", dropout=0.0, dims=2, size=8, n=2, seed=0):
    """A float64 UNet (base 2, depth 2), a noisy batch, a clean meta batch and a tiny meta mask net."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = UNet(1, 3, base=2, depth=2, dims=dims, norm=norm, dropout=dropout).double()
    sp = (size,) * dims
    x = torch.randn(n, 1, *sp, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (n, *sp), generator=g)
    xm = torch.randn(n, 1, *sp, generator=g, dtype=torch.float64)
    ym = torch.randint(0, 3, (n, *sp), generator=g)
    meta = MetaMaskNet(dims, hidden=3).double()
    for p in meta.parameters():  # larger weights than the default init: a clearly non-zero gradient
        p.data.mul_(3.0)
    return net, x, y, xm, ym, meta


def mask_coefficients(meta, loss_map, params=None):
    """MCPM's c = R / (N V), R = meta(loss map); ``params`` replaces the meta net's parameters."""
    r = meta(loss_map) if params is None else functional_call(meta, params, (loss_map,))
    return r / r.numel()


def analytic(net, x, y, xm, ym, meta, mode, names=None, extra=False):
    torch.manual_seed(SEED_REAL)
    first = real_forward(net, x)
    loss_map = weighted_ce(first.logits, y, reduction="none")
    c = mask_coefficients(meta, loss_map.detach())
    extra_loss = first.logits.pow(2).mean() * 0.1 if extra else None
    result = meta_gradient(net, first, y, loss_map, c, list(meta.parameters()), ALPHA, xm, ym, mode=mode,
                           param_names=names, extra_loss=extra_loss)
    return result, first, loss_map


def meta_loss_at(net, x, y, xm, ym, meta, meta_params, names=None, extra=False):
    """L_meta(phi), written out plainly: a fresh forward at w (same dropout draws as the real forward,
    batch statistics), the virtual SGD step, the forward at w' on the meta batch."""
    torch.manual_seed(SEED_REAL)
    with batch_stats_only(net):
        logits = net(x)
    loss_map = weighted_ce(logits, y, reduction="none")
    c = mask_coefficients(meta, loss_map.detach(), meta_params)
    virtual = (c * loss_map).sum() + (logits.pow(2).mean() * 0.1 if extra else 0)
    named = dict(net.named_parameters())
    names = names or list(named)
    g = torch.autograd.grad(virtual, [named[n] for n in names])
    shifted = {**{n: p.detach() for n, p in named.items()}, **{n: named[n].detach() - ALPHA * gi for n, gi in zip(names, g)}}
    with batch_stats_only(net):
        return float(weighted_ce(functional_call(net, shifted, (xm,)), ym))


def directional_fd(net, x, y, xm, ym, meta, direction, h=1e-5, **kw):
    base = dict(meta.named_parameters())
    plus = {n: p.detach() + h * direction[n] for n, p in base.items()}
    minus = {n: p.detach() - h * direction[n] for n, p in base.items()}
    return (meta_loss_at(net, x, y, xm, ym, meta, plus, **kw) - meta_loss_at(net, x, y, xm, ym, meta, minus, **kw)) / (2 * h)


def dot(grads, meta, direction):
    return sum(float((g * direction[n]).sum()) for g, (n, _) in zip(grads, meta.named_parameters()))


@pytest.mark.parametrize("norm,dropout", [("batch", 0.0), ("batch", 0.5), ("group", 0.0), ("instance", 0.3)])
def test_forward_reverse_and_finite_difference_agree(norm, dropout):
    net, x, y, xm, ym, meta = tiny_problem(norm, dropout)
    fwd = analytic(net, x, y, xm, ym, meta, "forward")[0]
    rev = analytic(net, x, y, xm, ym, meta, "reverse")[0]
    for a, b in zip(fwd.grads, rev.grads):
        assert a.dtype == torch.float64
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12 * float(b.abs().max()))
    assert float(fwd.meta_loss) == pytest.approx(float(rev.meta_loss), rel=1e-12)
    assert max(float(g.abs().max()) for g in fwd.grads) > 1e-6  # not trivially zero
    g = torch.Generator().manual_seed(1)
    for _ in range(2):
        direction = {n: torch.randn(p.shape, generator=g, dtype=p.dtype) for n, p in meta.named_parameters()}
        fd = directional_fd(net, x, y, xm, ym, meta, direction)
        assert dot(fwd.grads, meta, direction) == pytest.approx(fd, rel=1e-6)
        assert dot(rev.grads, meta, direction) == pytest.approx(fd, rel=1e-6)


def test_head_parameters_and_an_extra_loss_term():
    net, x, y, xm, ym, meta = tiny_problem("batch", 0.2)
    names = select_meta_parameters(net, "head")
    assert names and all(n.startswith(("dec.0.", "head.")) for n in names)
    fwd = analytic(net, x, y, xm, ym, meta, "forward", names, extra=True)[0]
    rev = analytic(net, x, y, xm, ym, meta, "reverse", names, extra=True)[0]
    for a, b in zip(fwd.grads, rev.grads):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12 * float(b.abs().max()))
    direction = {n: torch.randn_like(p) for n, p in meta.named_parameters()}
    fd = directional_fd(net, x, y, xm, ym, meta, direction, names=names, extra=True)
    assert dot(fwd.grads, meta, direction) == pytest.approx(fd, rel=1e-6)
    full = analytic(net, x, y, xm, ym, meta, "forward")[0]
    assert not torch.allclose(full.grads[0], fwd.grads[0])  # head is an approximation, not the same


@pytest.mark.parametrize("mode", ["forward", "reverse"])
def test_network_state_untouched(mode):
    """Parameters, buffers (running statistics, num_batches_tracked) and .grad fields are identical
    before and after the meta-gradient; the real forward alone updated the running statistics, once."""
    net, x, y, xm, ym, meta = tiny_problem("batch", 0.3)
    for p in net.parameters():
        p.grad = torch.full_like(p, 0.25)
    reference = UNet(1, 3, base=2, depth=2, norm="batch", dropout=0.3).double()
    reference.load_state_dict(net.state_dict())
    torch.manual_seed(SEED_REAL)
    reference(x)  # a plain training forward: what the running statistics must be after the step
    torch.manual_seed(SEED_REAL)
    first = real_forward(net, x)
    after_forward = {k: v.clone() for k, v in net.state_dict().items()}
    loss_map = weighted_ce(first.logits, y, reduction="none")
    c = mask_coefficients(meta, loss_map.detach())
    meta_gradient(net, first, y, loss_map, c, list(meta.parameters()), ALPHA, xm, ym, mode=mode)
    for k, v in net.state_dict().items():
        assert torch.equal(v, after_forward[k]), k
        assert torch.equal(v, reference.state_dict()[k]), k
    assert int(net.state_dict()["down.0.1.num_batches_tracked"]) == 1
    for p in net.parameters():
        assert torch.equal(p.grad, torch.full_like(p, 0.25))
    # the real forward's graph is still there for the real step
    (c.detach() * loss_map).sum().backward()


def test_dropout_masks_replayed_and_generator_restored():
    """The forward path recomputes the training forward with the real forward's dropout masks (else it
    would not equal the reverse path, which differentiates the real forward's graph), and leaves the
    generator where the reverse path leaves it."""
    net, x, y, xm, ym, meta = tiny_problem("group", 0.5)
    fwd = analytic(net, x, y, xm, ym, meta, "forward")[0]
    after_forward = torch.rand(3)
    rev = analytic(net, x, y, xm, ym, meta, "reverse")[0]
    after_reverse = torch.rand(3)
    assert torch.equal(after_forward, after_reverse)
    torch.testing.assert_close(fwd.grads[0], rev.grads[0], rtol=1e-9, atol=0)


def test_zero_coefficients_shortcut_equals_the_general_path():
    """L2RW's eps = 0: at_zero skips the virtual backward (w' = w) and gives the same gradient."""
    net, x, y, xm, ym, _ = tiny_problem("batch")
    out = []
    for at_zero, mode in [(True, "forward"), (False, "forward"), (False, "reverse")]:
        torch.manual_seed(SEED_REAL)
        first = real_forward(net, x)
        loss_map = weighted_ce(first.logits, y, reduction="none")
        eps = torch.zeros(loss_map.shape, dtype=torch.float64, requires_grad=True)
        out.append(meta_gradient(net, first, y, loss_map, eps, (eps,), ALPHA, xm, ym, mode=mode,
                                 at_zero=at_zero).grads[0])
    torch.testing.assert_close(out[0], out[1], rtol=1e-12, atol=0)
    torch.testing.assert_close(out[0], out[2], rtol=1e-9, atol=1e-15)
    assert (out[0] > 0).any() and (out[0] < 0).any()


def test_volumes():
    net, x, y, xm, ym, meta = tiny_problem("batch", 0.0, dims=3, size=4)
    fwd = analytic(net, x, y, xm, ym, meta, "forward")[0]
    rev = analytic(net, x, y, xm, ym, meta, "reverse")[0]
    for a, b in zip(fwd.grads, rev.grads):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12 * float(b.abs().max()))


def test_vnet_head_and_gradient():
    torch.manual_seed(0)
    net = VNet(1, 2, base=4, depth=2, dims=2).double()
    assert head_prefixes(net) == ("dec.0", "head")
    x, xm = torch.randn(2, 1, 8, 8, dtype=torch.float64), torch.randn(2, 1, 8, 8, dtype=torch.float64)
    y, ym = torch.randint(0, 2, (2, 8, 8)), torch.randint(0, 2, (2, 8, 8))
    meta = MetaMaskNet(2, hidden=3).double()
    fwd = analytic(net, x, y, xm, ym, meta, "forward")[0]
    rev = analytic(net, x, y, xm, ym, meta, "reverse")[0]
    torch.testing.assert_close(fwd.grads[0], rev.grads[0], rtol=1e-9, atol=1e-15)


def test_ce_tangent_is_the_directional_derivative_of_cross_entropy():
    g = torch.Generator().manual_seed(0)
    s = torch.randn(2, 4, 5, 3, generator=g, dtype=torch.float64)
    ds = torch.randn(2, 4, 5, 3, generator=g, dtype=torch.float64)
    y = torch.randint(0, 4, (2, 5, 3), generator=g)
    y[0, 0, 0] = -100
    _, expected = torch.func.jvp(lambda t: F.cross_entropy(t, y, reduction="none", ignore_index=-100), (s,), (ds,))
    got = ce_tangent(s, y, ds)
    torch.testing.assert_close(got, expected)
    assert got[0, 0, 0] == 0
    assert ce_tangent(s.float(), y, ds.float()).dtype == torch.float32


def test_parameter_selection():
    net = UNet(1, 2, base=2, depth=3)
    names = [n for n, _ in net.named_parameters()]
    assert select_meta_parameters(net, "all") == tuple(names)
    head = select_meta_parameters(net, "head")
    assert head == tuple(n for n in names if n.startswith(("dec.1.", "head.")))
    assert select_meta_parameters(net, "head.weight, up.0") == tuple(
        n for n in names if n == "head.weight" or n.startswith("up.0."))
    assert select_meta_parameters(net, ["head"]) == ("head.weight", "head.bias")
    with pytest.raises(ConfigError, match="matches no trainable parameter"):
        select_meta_parameters(net, "decoder")
    with pytest.raises(ConfigError, match="no 'head' submodule"):
        select_meta_parameters(nn.Sequential(nn.Conv2d(1, 2, 1)), "head")
    net.head.weight.requires_grad_(False)
    assert "head.weight" not in select_meta_parameters(net, "all")


def test_bad_arguments():
    net, x, y, xm, ym, meta = tiny_problem()
    first = real_forward(net, x)
    loss_map = weighted_ce(first.logits, y, reduction="none")
    c = mask_coefficients(meta, loss_map.detach())
    with pytest.raises(ConfigError, match="--meta-grad"):
        meta_gradient(net, first, y, loss_map, c, list(meta.parameters()), ALPHA, xm, ym, mode="backward")
    with pytest.raises(ValueError, match="shape"):
        meta_gradient(net, first, y, loss_map, c[:, :1], list(meta.parameters()), ALPHA, xm, ym)
    with pytest.raises(ValueError, match="no parameters"):
        meta_gradient(net, first, y, loss_map, c, list(meta.parameters()), ALPHA, xm, ym, param_names=["nope"])


def test_float16_autocast_forward_path_is_finite():
    """float16 autocast: the forward path's tangent pass runs in float32 and agrees with the float32
    meta-gradient. (In float16, torch's forward-mode formula of BatchNorm overflows on these HC18
    images: products of batch sums with invstd**3 pass 65504, and the meta-gradient was NaN.)"""
    from noisyseg_ext.data import load_dataset

    data = load_dataset("hc18-sample", size=(64, 96))
    images, masks = torch.stack(list(data.images[:16])).float(), torch.stack(list(data.masks[:16])).long()
    torch.manual_seed(0)
    net = UNet(1, 2, base=16, depth=1)
    meta = MetaMaskNet(2, hidden=8)
    problem = (net, images[:8], masks[:8], images[8:], masks[8:], meta)
    reference = torch.cat([g.reshape(-1) for g in analytic(*problem, "forward")[0].grads])
    with torch.autocast("cpu", dtype=torch.float16):
        result, first, _ = analytic(*problem, "forward")
    assert first.logits.dtype == torch.float16
    half = torch.cat([g.reshape(-1) for g in result.grads])
    assert torch.isfinite(half).all()
    assert F.cosine_similarity(half, reference, dim=0) > 0.999


@pytest.mark.parametrize("mode", ["forward", "reverse"])
def test_a_parameter_the_loss_does_not_use(mode):
    """A trainable parameter outside the forward (a spare head, say) gets no virtual step and no error."""
    net, x, y, xm, ym, meta = tiny_problem()
    net.spare = nn.Linear(2, 2).double()
    result = analytic(net, x, y, xm, ym, meta, mode)[0]
    assert all(torch.isfinite(g).all() for g in result.grads)
