"""Networks: UNet / VNet shapes, gradients, torch.func (functional_call, jvp) and BatchNorm buffers,
channels_last, size checks, the registry."""

import pytest
import torch
from torch import nn
from torch.func import functional_call, jvp

from noisyseg_ext.errors import ConfigError
from noisyseg_ext.nets import NETS, UNet, VNet, batch_stats_only, build_net, size_multiple

# Tiny networks: base 4, depth 3 (size multiple 4), spatial 8.
TINY = dict(in_channels=1, num_classes=3, base=4, depth=3)


def tiny(name, dims, **kw):
    return build_net(name, dims=dims, **{**TINY, **kw})


def bn_layers(net):
    return [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@pytest.mark.parametrize("name", ["unet", "vnet"])
@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("norm", ["batch", "group", "instance", "none"])
def test_shapes(name, dims, norm):
    net = tiny(name, dims, norm=norm)
    x = torch.randn(2, 1, *([8] * dims))
    y = net(x)
    assert y.shape == (2, 3, *([8] * dims)) and y.dtype == torch.float32
    assert torch.isfinite(y).all()
    # non-cubic sizes (each a multiple of 4)
    x = torch.randn(1, 1, *([12, 8, 4][:dims]))
    assert net(x).shape == (1, 3, *([12, 8, 4][:dims]))


@pytest.mark.parametrize("name", ["unet", "vnet"])
@pytest.mark.parametrize("dims", [2, 3])
def test_gradients_reach_every_parameter(name, dims):
    net = tiny(name, dims)
    x = torch.randn(2, 1, *([8] * dims), requires_grad=True)
    nn.functional.cross_entropy(net(x), torch.randint(0, 3, (2, *([8] * dims)))).backward()
    for pname, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().sum() > 0, pname
    assert x.grad.abs().sum() > 0


def test_vnet_stage_layout_follows_ua_mt():
    """UA-MT's VNet: encoder stages of 1, 2, 3, 3, 3 convolutions, decoder 3, 3, 2, 1; channels
    16 .. 256; additive skips keep a decoder stage's channels."""
    net = VNet(1, 2, base=16, depth=5, dims=3)
    convs = lambda stage: sum(isinstance(m, nn.Conv3d) for m in stage.convs)  # noqa: E731
    assert [convs(s) for s in net.enc] == [1, 2, 3, 3, 3]
    assert [convs(s) for s in net.dec] == [3, 3, 2, 1]
    assert [s.convs[0].out_channels for s in net.enc] == [16, 32, 64, 128, 256]
    assert net.size_multiple == 16
    assert sum(isinstance(m, nn.PReLU) for m in net.modules()) > 0
    plain = VNet(1, 2, activation="relu", residual=False)
    assert not any(isinstance(m, nn.PReLU) for m in plain.modules())
    assert all(s.shortcut is None for s in plain.enc)


def test_vnet_residual_shortcut_is_used():
    """With every convolution of a stage zeroed, a residual stage passes its input through (then the
    activation); a plain stage outputs act(0) = 0."""
    for residual in (True, False):
        net = VNet(4, 2, base=4, depth=1, dims=2, norm="none", residual=residual, activation="relu")
        for p in net.enc[0].convs.parameters():
            nn.init.zeros_(p)
        x = torch.randn(1, 4, 4, 4)
        out = net.enc[0](x)
        if residual:
            torch.testing.assert_close(out, x.relu())
        else:
            assert out.abs().max() == 0


@pytest.mark.parametrize("name", ["unet", "vnet"])
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_functional_call_equals_plain_call(name, mode):
    net = tiny(name, 2)
    getattr(net, mode)()
    x = torch.randn(2, 1, 8, 8)
    state = {k: v.clone() for k, v in {**dict(net.named_parameters()), **dict(net.named_buffers())}.items()}
    out_functional = functional_call(net, state, (x,))
    out_plain = net(x)
    torch.testing.assert_close(out_functional, out_plain)
    # and the passed parameters are really the ones used
    state["head.weight"] = torch.zeros_like(state["head.weight"])
    out_zero = functional_call(net, state, (x,))
    torch.testing.assert_close(out_zero, state["head.bias"].view(1, -1, 1, 1).expand_as(out_zero))


def test_functional_call_updates_passed_buffers_not_the_modules():
    """BatchNorm in train mode under functional_call: passed buffers are updated in place, the
    module's stay; without buffers in the dict the module's own are updated (nets/batchnorm.py)."""
    net = tiny("unet", 2).train()
    bn = bn_layers(net)[0]
    name = next(k for k, v in net.named_buffers() if v is bn.running_mean)
    x = torch.randn(2, 1, 8, 8) + 3.0  # nonzero mean: the running mean must move
    params = dict(net.named_parameters())
    buffers = {k: v.clone() for k, v in net.named_buffers()}
    functional_call(net, {**params, **buffers}, (x,))
    assert bn.running_mean.abs().max() == 0 and int(bn.num_batches_tracked) == 0
    assert buffers[name].abs().max() > 0
    assert int(buffers[name.replace("running_mean", "num_batches_tracked")]) == 1
    functional_call(net, params, (x,))
    assert bn.running_mean.abs().max() > 0 and int(bn.num_batches_tracked) == 1


def test_batch_stats_only_keeps_running_stats_and_restores():
    net = tiny("vnet", 2).train()
    before = {k: v.clone() for k, v in net.named_buffers()}
    x = torch.randn(2, 1, 8, 8) + 1.0
    with batch_stats_only(net):
        out = net(x)
        assert not any(m.track_running_stats for m in bn_layers(net))
    for k, v in net.named_buffers():
        assert torch.equal(v, before[k]), k
    assert all(m.track_running_stats for m in bn_layers(net))
    torch.testing.assert_close(out, net(x))  # same batch statistics as a plain train-mode call
    with pytest.raises(RuntimeError, match="boom"):
        with batch_stats_only(net):
            raise RuntimeError("boom")
    assert all(m.track_running_stats for m in bn_layers(net))
    net.eval()
    with batch_stats_only(net):  # eval mode: the running statistics normalise
        torch.testing.assert_close(net(x), net.eval()(x))


def _jvp_and_finite_difference(net, x, buffers):
    params = {k: v.detach() for k, v in net.named_parameters()}
    gen = torch.Generator().manual_seed(1)
    tangents = {k: torch.randn(v.shape, generator=gen, dtype=v.dtype) for k, v in params.items()}

    def f(p):
        return functional_call(net, {**p, **buffers}, (x,))

    out, tangent_out = jvp(f, (params,), (tangents,))
    eps = 1e-6
    plus = f({k: v + eps * tangents[k] for k, v in params.items()})
    minus = f({k: v - eps * tangents[k] for k, v in params.items()})
    return out, tangent_out, (plus - minus) / (2 * eps)


@pytest.mark.parametrize("name", ["unet", "vnet"])
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_jvp_matches_finite_differences(name, mode):
    net = tiny(name, 2).double()
    getattr(net, mode)()
    x = torch.randn(2, 1, 8, 8, dtype=torch.float64)
    before = {k: v.clone() for k, v in net.named_buffers()}
    with batch_stats_only(net):  # train mode: batch statistics, no buffer update (else jvp refuses)
        out, tangent_out, fd = _jvp_and_finite_difference(net, x, {})
        torch.testing.assert_close(out, net(x))
    assert tangent_out.abs().max() > 0
    torch.testing.assert_close(tangent_out, fd, rtol=1e-5, atol=1e-7)
    for k, v in net.named_buffers():
        assert torch.equal(v, before[k]), k


def test_jvp_refuses_running_stat_updates_in_train_mode():
    """The limitation batch_stats_only works around (documented in nets/batchnorm.py): if torch
    starts allowing it, update that documentation."""
    net = tiny("unet", 2).train()
    x = torch.randn(2, 1, 8, 8)
    with pytest.raises(RuntimeError, match="mutate a captured Tensor"):
        _jvp_and_finite_difference(net, x, {})
    with pytest.raises(RuntimeError, match="mutate a captured Tensor"):
        _jvp_and_finite_difference(net, x, {k: v.clone() for k, v in net.named_buffers()})


@pytest.mark.parametrize("name", ["unet", "vnet"])
def test_jvp_with_groupnorm_in_train_mode(name):
    """No buffers, so no context needed."""
    net = tiny(name, 3, norm="group").double().train()
    x = torch.randn(1, 1, 4, 4, 4, dtype=torch.float64)
    _, tangent_out, fd = _jvp_and_finite_difference(net, x, {})
    torch.testing.assert_close(tangent_out, fd, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("name", ["unet", "vnet"])
def test_channels_last_2d(name):
    net = tiny(name, 2)
    x = torch.randn(2, 1, 16, 8)
    ref = net(x)
    net_cl = tiny(name, 2)
    net_cl.load_state_dict(net.state_dict())
    net_cl = net_cl.to(memory_format=torch.channels_last)
    out = net_cl(x.to(memory_format=torch.channels_last))
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)
    out.sum().backward()
    assert all(p.grad is not None for p in net_cl.parameters())


@pytest.mark.parametrize("name,multiple", [("unet", 8), ("vnet", 16)])
def test_size_multiple_and_error(name, multiple):
    net = build_net(name, in_channels=1, num_classes=2, dims=2, base=4)  # default depth
    assert net.size_multiple == multiple == size_multiple(net)
    with pytest.raises(ValueError, match=f"divisible by {multiple}"):
        net(torch.randn(1, 1, multiple, multiple + 2))
    with pytest.raises(ValueError, match="2 spatial dims"):
        net(torch.randn(1, 1, multiple, multiple, multiple))


def test_size_multiple_of_any_module():
    assert size_multiple(nn.Conv2d(1, 2, 1)) == 1
    net = tiny("unet", 2)
    assert size_multiple(net) == 4
    wrapper = nn.Module()
    wrapper.module = net  # as DistributedDataParallel holds it
    assert size_multiple(wrapper) == 4


def test_build_net_errors_and_defaults():
    assert set(NETS) == {"unet", "vnet"}
    with pytest.raises(ConfigError, match="unet, vnet"):
        build_net("resnet", in_channels=1, num_classes=2, dims=2)
    with pytest.raises(ConfigError, match="norm"):
        build_net("vnet", in_channels=1, num_classes=2, dims=2, norm="layer")
    with pytest.raises(ConfigError, match="dims"):
        build_net("unet", in_channels=1, num_classes=2, dims=4)
    with pytest.raises(ConfigError, match="dropout"):
        build_net("unet", in_channels=1, num_classes=2, dims=2, dropout=1.5)
    assert isinstance(build_net("vnet", in_channels=2, num_classes=4, dims=3, depth=2), VNet)
    assert isinstance(build_net("unet", in_channels=2, num_classes=4, dims=3, depth=2), UNet)


@pytest.mark.parametrize("name", ["unet", "vnet"])
def test_dropout_is_active_in_train_mode_only(name):
    net = tiny(name, 2, dropout=0.5, norm="group").train()
    x = torch.randn(1, 1, 8, 8)
    assert not torch.allclose(net(x), net(x))
    net.eval()
    torch.testing.assert_close(net(x), net(x))
    assert not any(isinstance(m, nn.Dropout2d) for m in tiny(name, 2).modules())
