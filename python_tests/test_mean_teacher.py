"""Mean-teacher methods (uamt, pnt, int, pint): the EMA teacher, its passes, the methods' steps,
gates and resume, with a TrainContext built by hand and the trainer's step emulated
(training_step, backward, optimizer.step, after_step)."""

import contextlib
import copy
import math

import pytest
import torch

from noisyseg_ext.errors import ConfigError
from noisyseg_ext.methods.base import TrainContext
from noisyseg_ext.methods.losses import segmentation_loss
from noisyseg_ext.methods.mean_teacher import EMATeacher, TeacherPasses, ema_decay_at, masked_consistency, pass_mode
from noisyseg_ext.methods.mean_teacher import gates, schedules
from noisyseg_ext.methods.mean_teacher.passes import (BATCHED_VOXELS, choose_memory_format, choose_pass_mode,
                                                      choose_precision)
from noisyseg_ext.methods.ramps import uamt_threshold
from noisyseg_ext.methods.registry import get_method
from noisyseg_ext.nets.registry import build_net
from noisyseg_ext.nets.unet import UNet
from noisyseg_ext.ops import pint_loss
from noisyseg_ext.training.config import make_config

METHODS = ("uamt", "pnt", "int", "pint")
# Small and quick: 3 passes, float32 contiguous teachers unless a test asks otherwise.
FAST = {"T": 3, "teacher_precision": "float32", "teacher_memory_format": "contiguous"}


def make_net(dims=2, dropout=0.1, net="unet"):
    if net == "vnet":
        return build_net("vnet", in_channels=1, num_classes=2, dims=dims, base=4, depth=2, dropout=dropout)
    return UNet(1, 2, base=4, depth=2, dims=dims, dropout=dropout)


def make_method(name, net, steps=6, **options):
    cfg = make_config(method=name, steps=steps, **{**FAST, **options})
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    ctx = TrainContext(net=net, model=net, optimizer=opt, config=cfg, device=torch.device("cpu"), num_classes=2,
                       dims=net.dims, max_steps=steps,
                       loss_fn=lambda logits, target, weight=None: segmentation_loss(logits, target, weight,
                                                                                     kind=cfg.loss),
                       autocast=contextlib.nullcontext, meta_batch=lambda step: None)
    method = get_method(name)(ctx)
    net.train()
    method.train()  # as the trainer does: the teacher's passes must set their own modes
    return method, opt


def make_batch(dims=2, n=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    spatial = (16, 16) if dims == 2 else (8, 8, 4)
    x = torch.randn(n, 1, *spatial, generator=g)
    clean = (x[:, 0] > 0.3).long()
    label = clean.clone()
    label[: n // 2] = 1 - label[: n // 2]  # half the images corrupted (flipped)
    return {"image": x, "label": label, "clean": clean, "index": torch.arange(n)}


def train_steps(method, opt, batch, steps, start=0):
    outs = []
    for step in range(start, start + steps):
        out = method.training_step(batch, step)
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        opt.step()
        method.after_step(step)
        outs.append(out)
    return outs


# -- the EMA teacher ------------------------------------------------------------------------------

def test_ema_decay_schedule():
    assert ema_decay_at(0, 0.99) == 0.0  # the first update copies the student
    assert ema_decay_at(1, 0.99) == 0.5
    assert ema_decay_at(9, 0.99) == pytest.approx(0.9)
    assert ema_decay_at(99, 0.99) == pytest.approx(0.99)
    assert ema_decay_at(5000, 0.99) == 0.99
    assert ema_decay_at(3, 0.5) == 0.5
    with pytest.raises(ValueError):
        ema_decay_at(-1, 0.99)


@pytest.mark.parametrize("memory_format", [None, torch.channels_last])
def test_teacher_equals_ema_formula_after_k_steps(memory_format):
    net = make_net()
    teacher = EMATeacher(net, 0.6, memory_format=memory_format)
    expected = {k: v.clone() for k, v in net.state_dict().items()}
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    for step in range(6):
        loss = net(torch.randn(2, 1, 8, 8)).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        gamma = teacher.update(net, step)
        assert gamma == min(1 - 1 / (step + 1), 0.6)
        for k, v in net.state_dict().items():  # UA-MT's update, in its order of operations
            expected[k] = expected[k].mul(gamma).add(v, alpha=1 - gamma) if v.is_floating_point() else v.clone()
    got = teacher.net.state_dict()
    assert set(got) == set(expected)
    for k in expected:
        assert torch.equal(got[k], expected[k]), k
    # BatchNorm running statistics followed the student (EMA), and differ from its initial ones
    bn = [k for k in expected if k.endswith("running_mean")]
    assert bn and any(not torch.equal(got[k], torch.zeros_like(got[k])) for k in bn)
    assert int(got[[k for k in expected if k.endswith("num_batches_tracked")][0]]) == 6


def test_teacher_is_frozen_and_not_the_student():
    net = make_net()
    teacher = EMATeacher(net)
    assert all(not p.requires_grad for p in teacher.net.parameters())
    assert all(p.requires_grad for p in net.parameters())
    assert not any(tp is sp for tp, sp in zip(teacher.net.parameters(), net.parameters()))
    with pytest.raises(ValueError, match="parameters"):
        teacher.update(make_net(dropout=0.0, dims=2).down, 0)


# -- the passes -----------------------------------------------------------------------------------

def test_pass_mode_batchnorm_eval_dropout_train_restored():
    net = make_net()
    net.train()
    with pass_mode(net):
        bns = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
        drops = [m for m in net.modules() if isinstance(m, torch.nn.Dropout2d)]
        assert bns and drops
        assert not any(m.training for m in bns) and all(m.training for m in drops)
    assert all(m.training for m in net.modules())
    net.eval()
    with pass_mode(net):
        pass
    assert not any(m.training for m in net.modules())


def test_passes_do_not_touch_running_stats_and_use_dropout():
    net = make_net(dropout=0.5)
    before = copy.deepcopy(net.state_dict())
    x = torch.randn(2, 1, 16, 16)
    a = TeacherPasses(T=1, noise_std=0.0)(net, x).uncertainty.mean_prob
    b = TeacherPasses(T=1, noise_std=0.0)(net, x).uncertainty.mean_prob
    assert not torch.allclose(a, b)  # dropout is active: two passes differ
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k]), k  # BatchNorm in eval mode: running stats unchanged


def test_single_deterministic_pass_is_the_eval_softmax():
    net = make_net(dropout=0.0)
    x = torch.randn(3, 1, 16, 16)
    out = TeacherPasses(T=1, noise_std=0.0)(net, x, keep_first=True)
    net.eval()
    expected = torch.softmax(net(x), 1)
    torch.testing.assert_close(out.uncertainty.mean_prob, expected)
    torch.testing.assert_close(out.first_prob, expected)
    entropy = -(expected * expected.log()).sum(1)
    torch.testing.assert_close(out.uncertainty.pixel, entropy, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("dims", [2, 3])
def test_stream_equals_batched_without_randomness(dims):
    net = make_net(dims=dims, dropout=0.0)
    x = make_batch(dims)["image"]
    s = TeacherPasses(T=3, noise_std=0.0, mode="stream")(net, x, keep_first=True)
    b = TeacherPasses(T=3, noise_std=0.0, mode="batched")(net, x, keep_first=True)
    assert (s.mode, b.mode) == ("stream", "batched")
    for u, v in zip(s.uncertainty, b.uncertainty):
        torch.testing.assert_close(u, v, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(s.first_prob, b.first_prob, atol=1e-5, rtol=1e-5)


def test_stream_and_batched_agree_in_distribution():
    net = make_net(dropout=0.3)
    x = torch.randn(2, 1, 16, 16)
    s = TeacherPasses(T=64, mode="stream")(net, x).uncertainty.mean_prob
    b = TeacherPasses(T=64, mode="batched")(net, x).uncertainty.mean_prob
    one = TeacherPasses(T=1, mode="stream")(net, x).uncertainty.mean_prob
    # two 64-pass means are closer to each other than a single pass is to either
    assert (s - b).abs().mean() < 0.5 * (one - s).abs().mean()


def test_perturbation_noise_is_clipped():
    from noisyseg_ext.methods.mean_teacher import perturb

    x = torch.zeros(1000)
    d = perturb(x, 0.1, 0.2)
    assert d.abs().max() <= 0.2 and d.std() > 0.05
    assert perturb(x, 0.0, 0.2) is x


def test_pass_mode_rule_and_precision():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert choose_pass_mode("auto", cpu, 8, 8, 112 * 160) == "stream"
    assert choose_pass_mode("auto", cuda, 8, 8, 112 * 160, 2) == "batched"
    assert choose_pass_mode("auto", cuda, 8, 8, 112 * 160, 4) == "stream"  # float32: T * 4 > 16 bytes
    assert choose_pass_mode("auto", cuda, 4, 8, 112 * 160, 4) == "batched"
    assert choose_pass_mode("auto", cuda, 8, 4, 112 * 112 * 80, 2) == "stream"
    assert choose_pass_mode("auto", cuda, 1, 1, BATCHED_VOXELS + 1, 2) == "stream"
    assert choose_pass_mode("batched", cpu, 8, 8, 10**9) == "batched"
    with pytest.raises(ValueError):
        choose_pass_mode("both", cpu, 8, 8, 1)
    assert choose_precision("float32", cpu) == torch.float32
    assert choose_precision("bfloat16", cpu) == torch.bfloat16
    assert choose_precision("auto", cpu) in (torch.float32, torch.bfloat16)
    assert choose_memory_format("auto", cpu, 2, torch.bfloat16) == torch.channels_last
    assert choose_memory_format("auto", cpu, 3, torch.float32) == torch.channels_last_3d
    assert choose_memory_format("auto", cpu, 3, torch.bfloat16) == torch.contiguous_format
    assert choose_memory_format("auto", cuda, 2) is None
    assert choose_memory_format("channels_last", cuda, 3) == torch.channels_last_3d


def test_bfloat16_passes_keep_the_gate():
    torch.manual_seed(1)
    net = make_net(dropout=0.2)
    x = torch.randn(4, 1, 32, 32)
    fp32 = TeacherPasses(T=4, dtype=torch.float32)
    bf16 = TeacherPasses(T=4, dtype=torch.bfloat16)
    torch.manual_seed(2)
    a = fp32(net, x).uncertainty
    torch.manual_seed(2)
    b = bf16(net, x).uncertainty
    assert b.pixel.dtype == torch.float32
    H = 0.85 * math.log(2)
    agreement = ((a.pixel < H) == (b.pixel < H)).float().mean()
    assert agreement > 0.97
    assert (a.pixel - b.pixel).abs().mean() < 0.02


# -- schedules and gates --------------------------------------------------------------------------

def test_schedules():
    for step in (0, 30, 100, 250):
        assert schedules.pixel_threshold(step, 100, 3) == pytest.approx(uamt_threshold(step, 100, 3))
    assert schedules.pixel_threshold(100, 100, 2, 0.5, 0.8) == pytest.approx(0.8 * math.log(2))
    assert schedules.image_threshold(100, 100, 2, 0.3) == pytest.approx(0.3 * math.log(2))
    assert schedules.image_threshold(0, 100, 2, 0.3) < 0.3 * math.log(2)
    assert schedules.ramp_length(None, 300) == 300 and schedules.ramp_length(40, 300) == 40
    assert schedules.uamt_weight(100, 100, 0.1) == pytest.approx(0.1)


def test_slice_gate_keeps_the_least_uncertain_slices():
    u = torch.rand(2, 4, 4, 5)
    u[0, ..., 1] = 5.0  # slice (0, 1) very uncertain
    slices = gates.slice_uncertainty(u)
    assert slices.shape == (2, 5)
    a = gates.unit_gate(slices, keep=0.5, threshold=None)
    assert a.sum() == 5 and not a[0, 1]
    masked = gates.mask_untrusted(u, a)
    assert torch.isinf(masked[0, ..., 1]).all() and torch.equal(masked[~torch.isinf(masked)],
                                                                u[gates.broadcast_unit_gate(a, 3).expand_as(u)])
    assert gates.resolve_image_unit("auto", 3) == "slice" and gates.resolve_image_unit("auto", 2) == "image"
    with pytest.raises(ConfigError, match="3D"):
        gates.resolve_image_unit("slice", 2)


@pytest.mark.parametrize("pixel_threshold,keep,threshold", [(0.5, None, None), (None, 0.5, None), (0.5, 0.25, None),
                                                            (0.6, None, 0.45)])
def test_torch_gate_equals_pint_loss_gate(pixel_threshold, keep, threshold):
    torch.manual_seed(3)
    s = torch.randn(8, 2, 6, 6)
    y = torch.randint(0, 2, (8, 6, 6))
    mu = torch.softmax(torch.randn(8, 2, 6, 6), 1)
    u = -(mu * mu.log()).sum(1)
    U = u.flatten(1).mean(1)
    image = keep is not None or threshold is not None
    gate, a = gates.label_gate(u, U if image else None, pixel_threshold=pixel_threshold, keep=keep, threshold=threshold)
    out = pint_loss(s, y, mu, u, pixel_threshold=pixel_threshold, image_keep_ratio=keep, image_threshold=threshold,
                    image_uncertainty=U if image else None)
    assert torch.equal(gate, out.gate)
    if image:
        assert torch.equal(a, out.image_gate)


def test_masked_consistency_is_uamts_formula():
    s = torch.randn(2, 2, 5, 5, requires_grad=True)
    q = torch.softmax(torch.randn(2, 2, 5, 5), 1)
    mask = torch.rand(2, 5, 5) < 0.5
    got = masked_consistency(s, q, mask)
    dist = (torch.softmax(s, 1) - q) ** 2
    m = mask[:, None].float()
    torch.testing.assert_close(got, torch.sum(m * dist) / (2 * torch.sum(m) + 1e-16))
    got.backward()
    assert s.grad is not None and s.grad[~mask[:, None].expand_as(s)].abs().max() == 0
    assert masked_consistency(s, q, torch.zeros_like(mask)) == 0


# -- the methods ----------------------------------------------------------------------------------

@pytest.mark.parametrize("dims,net", [(2, "unet"), (3, "unet"), (3, "vnet")])
@pytest.mark.parametrize("name", METHODS)
def test_method_trains_a_few_steps(name, dims, net):
    torch.manual_seed(0)
    student = make_net(dims=dims, net=net)
    method, opt = make_method(name, student, steps=4, gate_warmup_steps=1) if name != "uamt" else \
        make_method(name, student, steps=4)
    batch = make_batch(dims)
    first = copy.deepcopy(student.state_dict())
    outs = train_steps(method, opt, batch, 4)
    for out in outs:
        assert out["loss"].dim() == 0 and torch.isfinite(out["loss"]) and out["loss"].requires_grad
        for k, v in out.items():
            if k != "loss":
                assert isinstance(v, torch.Tensor) and v.dim() == 0 and not v.requires_grad, k
    assert set(outs[0]) == set(outs[-1])  # the same log keys every step (warm-up included)
    assert any(not torch.equal(v, first[k]) for k, v in student.state_dict().items())
    key = "certain_pixels" if name == "uamt" else "trusted_pixels"
    assert 0.0 <= float(outs[-1][key]) <= 1.0
    if name in ("int", "pint"):
        # keep 1/2 of the images (2D) or of the slices (3D)
        assert float(outs[-1]["trusted_images"]) == pytest.approx(0.5)
    assert set(method.eval_models()) == {"student", "teacher"} and method.default_eval_model == "student"


@pytest.mark.parametrize("name", METHODS)
def test_no_gradient_reaches_the_teacher(name):
    student = make_net()
    method, opt = make_method(name, student, gate_warmup_steps=0)
    batch = make_batch()
    train_steps(method, opt, batch, 1)  # step 0: the teacher becomes the student
    before = copy.deepcopy(method.teacher.state_dict())
    out = method.training_step(batch, 1)
    opt.zero_grad()
    out["loss"].backward()
    opt.step()
    assert all(p.grad is None and not p.requires_grad for p in method.teacher.parameters())
    teacher_ids = {id(p) for p in method.teacher.parameters()}
    assert not any(id(p) in teacher_ids for g in opt.param_groups for p in g["params"])
    for k, v in method.teacher.state_dict().items():  # unchanged until after_step
        assert torch.equal(v, before[k]), k
    method.after_step(1)
    assert any(not torch.equal(v, before[k]) for k, v in method.teacher.state_dict().items())


def test_pint_loss_gets_the_gates_it_should():
    """PNT trusts pixels below H(t), INT half the images, PINT their intersection (same passes)."""
    batch = make_batch(n=8)
    torch.manual_seed(0)
    probe, _ = make_method("pnt", make_net(), steps=10, gate_warmup_steps=0)
    torch.manual_seed(1)
    median = float(probe.teacher_outputs(batch["image"]).uncertainty.pixel.median()) / math.log(2)
    fractions = {}
    for name in ("pnt", "int", "pint"):
        torch.manual_seed(0)
        method, opt = make_method(name, make_net(), steps=10, gate_warmup_steps=0, ramp_steps=10,
                                  uncertainty_threshold_start=median, uncertainty_threshold_end=median)
        torch.manual_seed(1)  # the passes of the probe
        out = method.training_step(batch, 0)
        fractions[name] = float(out["trusted_pixels"])
        if name != "pnt":
            assert float(out["trusted_images"]) == 0.5
    assert 0.4 < fractions["pnt"] < 0.6  # the pixels below the median
    assert fractions["int"] == pytest.approx(0.5)
    assert fractions["pint"] <= min(fractions["pnt"], fractions["int"]) + 1e-6


def test_warmup_trains_on_every_label_then_teacher_is_the_student():
    torch.manual_seed(0)
    student = make_net()
    method, opt = make_method("pint", student, steps=10, gate_warmup_steps=3)
    batch = make_batch()
    initial_teacher = copy.deepcopy(method.teacher.state_dict())
    calls = []
    method.teacher.net.register_forward_hook(lambda *args: calls.append(1))
    student.eval()  # no dropout: the warm-up loss is plain CE on every label
    out = method.training_step(batch, 0)
    assert float(out["trusted_pixels"]) == 1.0 and float(out["trusted_images"]) == 1.0
    torch.testing.assert_close(out["loss"], segmentation_loss(student(batch["image"]), batch["label"]))
    student.train()
    train_steps(method, opt, batch, 2)  # steps 0, 1: no EMA update yet
    assert not calls  # no teacher pass during the warm-up
    for k, v in method.teacher.state_dict().items():
        assert torch.equal(v, initial_teacher[k]), k
    train_steps(method, opt, batch, 1, start=2)  # last warm-up step: gamma = 0, the teacher is the student
    for k, v in student.state_dict().items():
        assert torch.equal(method.teacher.net.state_dict()[k], v), k
    train_steps(method, opt, batch, 1, start=3)
    assert len(calls) == 3  # the gates are open: T = 3 passes


def test_default_warmup_is_a_fifth_of_the_steps():
    method, _ = make_method("pnt", make_net(), steps=50)
    assert method.warmup == 10 and method.ema_start == 9
    method, _ = make_method("uamt", make_net(), steps=50)
    assert method.ema_start == 0


@pytest.mark.filterwarnings("ignore:method uamt. the network has no dropout")
def test_uamt_loss_is_supervised_plus_weighted_consistency():
    torch.manual_seed(0)
    student = make_net(dropout=0.0)
    method, opt = make_method("uamt", student, steps=10, ramp_steps=10, uamt_target="mean", teacher_noise_std=0.0)
    batch = make_batch()
    train_steps(method, opt, batch, 3)
    out = method.training_step(batch, 5)
    w = schedules.uamt_weight(5, 10, 0.1)
    assert float(out["consistency_weight"]) == pytest.approx(w)
    torch.testing.assert_close(out["loss"].detach(), out["supervised"] + w * out["consistency"])
    # teacher deterministic here (no noise, no dropout): the target is the teacher's eval softmax
    teacher = method.teacher.net.eval()
    logits = student(batch["image"])
    q = torch.softmax(teacher(batch["image"]), 1)
    mask = -(q * q.log()).sum(1) < method.threshold(5)
    torch.testing.assert_close(out["consistency"], masked_consistency(logits, q, mask).detach(), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", METHODS)
def test_resume_restores_the_teacher_exactly(name):
    batch = make_batch()

    def fresh():
        torch.manual_seed(0)
        net = make_net()
        return (net, *make_method(name, net, steps=8, gate_warmup_steps=2))

    net, method, opt = fresh()
    train_steps(method, opt, batch, 3)
    checkpoint = copy.deepcopy({"net": net.state_dict(), "opt": opt.state_dict(), "method": method.method_state(),
                                "rng": torch.get_rng_state()})
    train_steps(method, opt, batch, 3, start=3)

    net2, method2, opt2 = fresh()
    net2.load_state_dict(checkpoint["net"])
    opt2.load_state_dict(checkpoint["opt"])
    method2.load_method_state(checkpoint["method"])
    torch.set_rng_state(checkpoint["rng"])
    train_steps(method2, opt2, batch, 3, start=3)
    for (k, a), b in zip(method.teacher.state_dict().items(), method2.teacher.state_dict().values()):
        assert torch.equal(a, b), k
    for (k, a), b in zip(net.state_dict().items(), net2.state_dict().values()):
        assert torch.equal(a, b), k


def test_teacher_in_method_state_and_moves_with_the_method():
    method, _ = make_method("pint", make_net())
    state = method.method_state()["modules"]
    assert any(k.startswith("teacher.net.") and k.endswith("running_var") for k in state)
    assert len([k for k in state if k.startswith("teacher.")]) == len(method.ctx.net.state_dict())
    method.to(torch.float64)
    assert all(p.dtype == torch.float64 for p in method.teacher.parameters())


# -- options --------------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", [{"T": 0}, {"ema_decay": 1.5}, {"image_keep": 0.0}, {"teacher_passes": "both"},
                                 {"teacher_noise_std": -1}, {"uncertainty_threshold_start": 0},
                                 {"gate_warmup_steps": -1}, {"teacher_precision": "fp8"}])
def test_bad_options_raise_config_error(bad):
    with pytest.raises(ConfigError):
        make_config(method="pint", **bad)


def test_inconsistent_options_raise_config_error():
    with pytest.raises(ConfigError, match="ramp goes up"):
        make_method("pnt", make_net(), uncertainty_threshold_start=1.0, uncertainty_threshold_end=0.8)
    with pytest.raises(ConfigError, match="--loss"):
        make_method("pint", make_net(), loss="ce+dice")
    with pytest.raises(ConfigError, match="3D"):
        make_method("int", make_net(dims=2), image_unit="slice")
    make_method("uamt", make_net(), loss="ce+dice")  # UA-MT takes --loss as its supervised loss


def test_options_are_registered_once_with_flags():
    from noisyseg_ext.training.options import all_options

    opts = {o.name: o for o in all_options()}
    assert opts["T"].cli_flag == "--T" and opts["T"].default == 8
    assert opts["ema_decay"].default == 0.99 and opts["teacher_noise_std"].default == 0.1
    assert opts["teacher_noise_clip"].default == 0.2 and opts["image_keep"].default == 0.5


def test_warns_without_dropout():
    with pytest.warns(UserWarning, match="no dropout"):
        make_method("pnt", make_net(dropout=0.0))
