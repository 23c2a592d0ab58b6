"""The meta-learning methods (mwnet, l2rw, mcpm) through the Method interface, with a TrainContext
built by hand and the trainer's step emulated: weights in range, no NaN, forward = reverse, exact
resume, BatchNorm updated once, diagnostics without side effects, options and errors."""

import contextlib
import io
import math

import pytest
import torch
from torch import nn

from noisyseg_ext.errors import ConfigError
from noisyseg_ext.methods.base import TrainContext
from noisyseg_ext.methods.losses import segmentation_loss
from noisyseg_ext.methods.meta import build_method, real_forward
from noisyseg_ext.methods.registry import get_method
from noisyseg_ext.nets import UNet
from noisyseg_ext.training.config import make_config

METHODS = ["mwnet", "l2rw", "mcpm"]


pytestmark = pytest.mark.usefixtures("one_thread")


def synthetic(n, size=16, dims=2, seed=0):
    """Images with a bright blob; clean masks; noisy masks = the clean ones grown by 2 pixels on every
    other image (dilation noise)."""
    g = torch.Generator().manual_seed(seed)
    grid = torch.stack(torch.meshgrid(*[torch.arange(size, dtype=torch.float32)] * dims, indexing="ij"))
    centres = size / 2 + (torch.rand(n, dims, generator=g) - 0.5) * size / 3
    radius = size / 5 + torch.rand(n, generator=g) * size / 8
    dist = (grid.unsqueeze(0) - centres.view(n, dims, *[1] * dims)).pow(2).sum(1).sqrt()
    clean = (dist < radius.view(n, *[1] * dims)).long()
    noisy = torch.where(torch.arange(n).view(n, *[1] * dims) % 2 == 0,
                        (dist < radius.view(n, *[1] * dims) + 2).long(), clean)
    image = (clean.float() + 0.3 * torch.randn(clean.shape, generator=g)).unsqueeze(1)
    return image, noisy, clean


def make_method(name, *, dims=2, size=16, norm="batch", dropout=0.0, n=4, lr=0.05, seed=0, dtype=torch.float32,
                **options):
    torch.manual_seed(seed)
    net = UNet(1, 2, base=4, depth=2, dims=dims, norm=norm, dropout=dropout).to(dtype)
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9)
    cfg = make_config(method=name, optimizer="sgd", lr=lr, steps=10, **options)
    image, noisy, clean = synthetic(3 * n, size, dims)
    image = image.to(dtype)

    def meta_batch(step):
        i = (step % 2) * n
        return {"image": image[2 * n + i // 2: 2 * n + i // 2 + n], "label": clean[2 * n + i // 2: 2 * n + i // 2 + n]}

    ctx = TrainContext(net=net, model=net, optimizer=opt, config=cfg, device=torch.device("cpu"), num_classes=2,
                       dims=dims, max_steps=10,
                       loss_fn=lambda logits, target, weight=None: segmentation_loss(logits, target, weight,
                                                                                     kind=cfg.loss),
                       autocast=contextlib.nullcontext, meta_batch=meta_batch)
    method = get_method(name)(ctx).to(dtype)
    batches = [{"image": image[i * n // 2: i * n // 2 + n], "label": noisy[i * n // 2: i * n // 2 + n],
                "clean": clean[i * n // 2: i * n // 2 + n]} for i in range(3)]
    return method, ctx, batches


def train_step(method, ctx, batch, step):
    """What the trainer does with a method's loss."""
    with ctx.autocast():
        out = method.training_step(batch, step)
    ctx.optimizer.zero_grad(set_to_none=True)
    out["loss"].backward()
    ctx.optimizer.step()
    method.after_step(step)
    return out


def run(method, ctx, batches, steps, start=0):
    return [train_step(method, ctx, batches[s % len(batches)], s) for s in range(start, start + steps)]


@pytest.mark.parametrize("mode", ["forward", "reverse"])
@pytest.mark.parametrize("name", METHODS)
def test_steps_train_and_weights_are_in_range(name, mode):
    method, ctx, batches = make_method(name, meta_grad=mode)
    before = [p.detach().clone() for p in ctx.net.parameters()]
    meta_before = [p.detach().clone() for p in method.parameters()]
    outs = run(method, ctx, batches, 3)
    for out in outs:
        assert out["loss"].dim() == 0 and math.isfinite(float(out["loss"]))
        for k, v in out.items():
            assert v.dim() == 0 and torch.isfinite(v).all(), k
            assert k == "loss" or not v.requires_grad, k
    assert any(not torch.equal(a, b) for a, b in zip(before, ctx.net.parameters()))
    if name != "l2rw":
        assert len(meta_before) > 0
        assert all(not torch.equal(a, b) for a, b in zip(meta_before, method.parameters()))
        assert 0 < float(outs[-1]["weight_min"]) <= float(outs[-1]["weight_max"]) < 1
    weights = method.weight_map(batches[0], 3)
    assert weights.shape == batches[0]["label"].shape and torch.isfinite(weights).all()
    if name == "l2rw":  # relative weights: the normalised ones times their number
        assert (weights >= 0).all() and float(weights.mean()) == pytest.approx(1.0, rel=1e-5)
    else:
        assert ((weights > 0) & (weights < 1)).all()


@pytest.mark.parametrize("level", ["pixel", "image"])
def test_l2rw_weights_sum_to_one_and_zero_stays_zero(level):
    method, ctx, batches = make_method("l2rw", l2rw_level=level)
    batch = batches[0]
    first = real_forward(ctx.net, batch["image"])
    loss_map, extra = method.loss_terms(first.logits, batch["label"])
    weights, meta_loss = method.compute_weights(first, batch["label"], loss_map, extra, ctx.meta_batch(0))
    assert weights.shape == (loss_map.shape if level == "pixel" else loss_map.shape[:1])
    assert (weights >= 0).all() and (weights <= 1).all()
    assert float(weights.sum()) == pytest.approx(1.0, rel=1e-5)
    assert (weights == 0).any() if level == "pixel" else True
    from noisyseg_ext.methods.meta.l2rw import normalize_to_sum_one
    assert torch.equal(normalize_to_sum_one(torch.zeros(3)), torch.zeros(3))


@pytest.mark.parametrize("name", METHODS)
def test_forward_and_reverse_give_the_same_training(name):
    """Two steps with each meta-gradient path from the same start, in float64: the same networks."""
    finals = []
    for mode in ("forward", "reverse"):
        method, ctx, batches = make_method(name, meta_grad=mode, dropout=0.2, dtype=torch.float64)
        run(method, ctx, batches, 2)
        finals.append([p.detach().clone() for p in list(ctx.net.parameters()) + list(method.parameters())])
    for a, b in zip(*finals):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-12)


def snapshot(method, ctx):
    buf = io.BytesIO()
    torch.save({"net": ctx.net.state_dict(), "opt": ctx.optimizer.state_dict(), "method": method.method_state(),
                "rng": torch.get_rng_state()}, buf)
    buf.seek(0)
    return buf


def state_of(method, ctx):
    return ([t.clone() for t in ctx.net.state_dict().values()] + [p.detach().clone() for p in method.parameters()]
            + [t.clone() for o in method._optimizers.values() for s in o.state_dict()["state"].values()
               for t in s.values() if torch.is_tensor(t)])


@pytest.mark.parametrize("name", ["mcpm", "mwnet"])
def test_resume_is_bit_exact(name):
    method, ctx, batches = make_method(name, dropout=0.2)
    run(method, ctx, batches, 2)
    saved = snapshot(method, ctx)
    run(method, ctx, batches, 2, start=2)
    uninterrupted = state_of(method, ctx)

    resumed, rctx, _ = make_method(name, dropout=0.2, seed=123)  # other initial weights, overwritten below
    blob = torch.load(saved, weights_only=False)
    rctx.net.load_state_dict(blob["net"])
    rctx.optimizer.load_state_dict(blob["opt"])
    resumed.load_method_state(blob["method"])
    torch.set_rng_state(blob["rng"])
    assert len(blob["method"]["optimizers"]["meta"]["state"]) == len(list(resumed.parameters()))
    run(resumed, rctx, batches, 2, start=2)
    after = state_of(resumed, rctx)
    assert len(after) == len(uninterrupted)
    for a, b in zip(after, uninterrupted):
        assert torch.equal(a, b)


@pytest.mark.parametrize("name", METHODS)
def test_batchnorm_statistics_updated_once_per_step(name):
    """A meta step changes the running statistics exactly as the plain forward of the batch does."""
    method, ctx, batches = make_method(name)
    plain = UNet(1, 2, base=4, depth=2)
    plain.load_state_dict(ctx.net.state_dict())
    plain(batches[0]["image"])
    method.training_step(batches[0], 0)
    for (k, a), b in zip(ctx.net.state_dict().items(), plain.state_dict().values()):
        if "running" in k or "num_batches" in k:
            assert torch.equal(a, b), k


@pytest.mark.parametrize("name", METHODS)
def test_diagnostics_and_figure_have_no_side_effects(name, tmp_path):
    method, ctx, batches = make_method(name, dropout=0.3)
    run(method, ctx, batches, 1)
    state = [t.clone() for t in ctx.net.state_dict().values()] + [p.detach().clone() for p in method.parameters()]
    rng = torch.get_rng_state()
    with torch.no_grad():  # as the trainer calls it
        diag = method.diagnostics(batches[0], 1)
    assert set(diag) == {"weight_mean", "weight_corrupted", "weight_clean", "weight_auroc"}
    assert all(isinstance(v, float) and math.isfinite(v) for v in diag.values())
    assert 0.0 <= diag["weight_auroc"] <= 1.0
    assert method.save_figure(batches[0], 1, str(tmp_path / "fig" / "w.png"))
    assert (tmp_path / "fig" / "w.png").stat().st_size > 1000
    assert torch.equal(torch.get_rng_state(), rng)
    for a, b in zip(state, list(ctx.net.state_dict().values()) + list(method.parameters())):
        assert torch.equal(a, b)
    assert method.diagnostics(batches[0], 1) == diag  # deterministic


def test_mcpm_sum_normalisation_and_mwnet_coefficients():
    method, ctx, batches = make_method("mcpm", mcpm_normalize="sum")
    r = torch.rand(2, 4, 4) + 0.1
    assert float(method.coefficients(r, r).sum()) == pytest.approx(1.0, rel=1e-6)
    mw, _, _ = make_method("mwnet")
    losses = torch.rand(3, 4, 4)
    w = mw.weights(losses)
    c = mw.coefficients(w, losses)
    assert w.shape == (3,) and c.shape == losses.shape
    torch.testing.assert_close(c[1], torch.full((4, 4), float(w[1]) / losses.numel()))
    run(method, ctx, batches, 2)


def test_volumes_mcpm():
    method, ctx, batches = make_method("mcpm", dims=3, size=8, n=2)
    outs = run(method, ctx, batches, 2)
    assert all(torch.isfinite(o["loss"]) for o in outs)
    assert method.weight_map(batches[0], 2).shape == batches[0]["label"].shape


def test_bf16_autocast_steps():
    method, ctx, batches = make_method("mcpm")
    ctx.autocast = lambda: torch.autocast("cpu", dtype=torch.bfloat16)
    outs = run(method, ctx, batches, 2)
    assert all(torch.isfinite(o["loss"]) and o["loss"].dtype == torch.float32 for o in outs)


def test_ce_plus_dice_and_head_parameters():
    method, ctx, batches = make_method("mcpm", loss="ce+dice", meta_params="head")
    assert method.meta_param_names == ("dec.0.0.weight", "dec.0.1.weight", "dec.0.1.bias", "dec.0.3.weight",
                                       "dec.0.4.weight", "dec.0.4.bias", "head.weight", "head.bias")
    outs = run(method, ctx, batches, 2)
    assert all(torch.isfinite(o["loss"]) for o in outs)


def test_errors():
    with pytest.raises(ConfigError, match="matches no trainable parameter"):
        make_method("mwnet", meta_params="encoder")
    with pytest.raises(ConfigError, match="mcpm-normalize"):
        make_method("mcpm", mcpm_normalize="max")
    with pytest.raises(ConfigError, match="meta-grad"):
        make_method("l2rw", meta_grad="both")
    method, ctx, batches = make_method("l2rw")
    ctx.meta_batch = lambda step: None
    with pytest.raises(ConfigError, match="meta split"):
        method.training_step(batches[0], 0)


def test_build_method_wraps_any_module():
    """The Python API: a plain nn.Sequential (no UNet attributes), a list of meta batches, own loop."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), nn.GroupNorm(2, 6), nn.ReLU(), nn.Conv2d(6, 2, 1))
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    image, noisy, clean = synthetic(6)
    method = build_method("mcpm", net, opt, [{"image": image[4:], "label": clean[4:]}], meta_grad="reverse")
    assert method.ctx.dims == 2 and method.config.meta_grad == "reverse"
    for step in range(2):
        out = method.training_step({"image": image[:4], "label": noisy[:4]}, step)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        assert torch.isfinite(out["loss"])
    with pytest.raises(ConfigError, match="no 'head' submodule"):
        build_method("mwnet", net, opt, [{"image": image[4:], "label": clean[4:]}], meta_params="head")


def _ddp_worker(rank, world, port, queue):
    """One gloo process: two steps of mcpm (forward) and l2rw (reverse) on this rank's own batches
    through a DDP-wrapped network; sends the networks, the real gradient and the weight net back."""
    import os

    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.set_num_threads(1)
    out = {}
    for name, mode in [("mcpm", "forward"), ("l2rw", "reverse")]:
        method, ctx, batches = make_method(name, meta_grad=mode, seed=0)
        ctx.model = nn.parallel.DistributedDataParallel(ctx.net)
        ctx.world_size, ctx.rank = world, rank
        torch.manual_seed(rank)  # a different weight net on each rank: the broadcast must replace it
        method = get_method(name)(ctx)
        for step in range(2):
            train_step(method, ctx, batches[(step + rank) % 3], step)  # each rank its own batches
        grads = torch.cat([p.grad.reshape(-1) for p in ctx.net.parameters()])
        weights = torch.cat([p.detach().reshape(-1) for p in list(ctx.net.parameters()) + list(method.parameters())])
        out[name] = (grads.numpy().copy(), weights.numpy().copy())
    queue.put((rank, out))
    dist.destroy_process_group()


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed unavailable")
def test_two_processes_keep_one_network_and_one_weight_net():
    """DDP (gloo, 2 processes, different batches per rank, different initial weight nets): after
    each step the real gradient is the same on both ranks (averaged by DDP, although the virtual
    steps called autograd.grad through the DDP forward) and so are the networks and weight nets."""
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    spawn = mp.get_context("spawn")
    queue = spawn.Queue()
    procs = [spawn.Process(target=_ddp_worker, args=(r, 2, port, queue)) for r in range(2)]
    for p in procs:
        p.start()
    results = dict(queue.get(timeout=300) for _ in procs)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    for name in ("mcpm", "l2rw"):
        (g0, w0), (g1, w1) = results[0][name], results[1][name]
        assert abs(g0).max() > 0
        assert (g0 == g1).all(), name
        assert (w0 == w1).all(), name


@pytest.mark.parametrize("dims,shape", [(2, (3, 20, 30)), (3, (2, 6, 7, 8))])
@pytest.mark.parametrize("chunk", [64, 10**9])
def test_mask_net_equals_its_two_convolutions(dims, shape, chunk):
    """MetaMaskNet's im2col / matrix-product / chunked-checkpoint evaluation is the paper's network:
    conv3x3 -> ReLU -> conv3x3 -> sigmoid, in value and in gradient, with and without grad mode."""
    from noisyseg_ext.methods.meta import MetaMaskNet

    torch.manual_seed(0)
    net = MetaMaskNet(dims, hidden=5).double()
    net.chunk_pixels_cpu = chunk
    x = torch.rand(shape, dtype=torch.float64)
    cotangent = torch.randn(shape, dtype=torch.float64)
    reference = torch.sigmoid(net.net(x.unsqueeze(1))).squeeze(1)
    got = net(x)
    torch.testing.assert_close(got, reference, rtol=1e-12, atol=1e-14)
    for a, b in zip(torch.autograd.grad(got, list(net.parameters()), cotangent),
                    torch.autograd.grad(reference, list(net.parameters()), cotangent)):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    with torch.no_grad():
        torch.testing.assert_close(net(x), reference.detach(), rtol=1e-12, atol=1e-14)
    assert list(net.state_dict()) == ["net.0.weight", "net.0.bias", "net.2.weight", "net.2.bias"]
