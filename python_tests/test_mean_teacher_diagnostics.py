"""Mean-teacher methods at evaluation: the metrics.csv diagnostics (trusted fractions on corrupted vs
agreeing pixels, the uncertainty's AUROC as a detector of corrupted pixels) and the figure."""

import contextlib
import os

import pytest
import torch

from noisyseg_ext.methods.base import TrainContext
from noisyseg_ext.methods.losses import segmentation_loss
from noisyseg_ext.methods.mean_teacher import TeacherOutput
from noisyseg_ext.methods.registry import get_method
from noisyseg_ext.nets.unet import UNet
from noisyseg_ext.ops import McUncertainty
from noisyseg_ext.training.config import make_config

FAST = {"T": 2, "teacher_precision": "float32", "teacher_memory_format": "contiguous", "gate_warmup_steps": 0}


def make_method(name, dims=2, steps=10, **options):
    torch.manual_seed(0)
    net = UNet(1, 2, base=4, depth=2, dims=dims, dropout=0.1)
    cfg = make_config(method=name, steps=steps, **{**FAST, **options})
    opt = torch.optim.SGD(net.parameters(), lr=0.05)
    ctx = TrainContext(net=net, model=net, optimizer=opt, config=cfg, device=torch.device("cpu"), num_classes=2,
                       dims=dims, max_steps=steps, loss_fn=lambda l, t, w=None: segmentation_loss(l, t, w),
                       autocast=contextlib.nullcontext, meta_batch=lambda step: None)
    method = get_method(name)(ctx)
    net.train()
    method.train()
    return method, opt


def make_batch(dims=2, n=4):
    g = torch.Generator().manual_seed(5)
    spatial = (16, 16) if dims == 2 else (8, 8, 4)
    x = torch.randn(n, 1, *spatial, generator=g)
    clean = (x[:, 0] > 0).long()
    label = clean.clone()
    label[: n // 2, :4] = 1  # the first half of the images corrupted (a band set to foreground)
    return {"image": x, "label": label, "clean": clean, "index": torch.arange(n)}


def step(method, opt, batch, k):
    out = method.training_step(batch, k)
    opt.zero_grad()
    out["loss"].backward()
    opt.step()
    method.after_step(k)


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("name", ["uamt", "pnt", "int", "pint"])
def test_diagnostics_keys_ranges_and_private_rng(name, dims):
    method, opt = make_method(name, dims)
    batch = make_batch(dims)
    step(method, opt, batch, 0)
    state = torch.get_rng_state()
    d = method.diagnostics(batch, 1)
    assert torch.equal(torch.get_rng_state(), state)  # the training's random stream is untouched
    assert d == method.diagnostics(batch, 1)  # same passes for the same step
    g = "certain" if name == "uamt" else "trusted"
    keys = {"threshold", "uncertainty_mean", "uncertainty_auroc", "corrupted_pixels", f"{g}_pixels",
            f"{g}_pixels_corrupted", f"{g}_pixels_agree"}
    if name in ("int", "pint"):
        keys |= {"trusted_images", "trusted_images_corrupted", "trusted_images_agree", "image_uncertainty_auroc"}
    assert set(d) == keys
    assert all(isinstance(v, float) for v in d.values())
    for k in keys - {"threshold", "uncertainty_mean"}:
        assert 0.0 <= d[k] <= 1.0, k
    assert d["threshold"] == pytest.approx(method.threshold(1))
    assert 0 < d["corrupted_pixels"] < 1
    if name in ("int", "pint"):
        assert d["trusted_images"] == pytest.approx(0.5)


def test_evaluation_does_not_change_the_training():
    batch = make_batch()
    states = []
    for evaluate in (False, True):
        method, opt = make_method("pint")
        for k in range(3):
            step(method, opt, batch, k)
            if evaluate:
                method.diagnostics(batch, k + 1)
        states.append(method.teacher.state_dict())
    for (k, a), b in zip(states[0].items(), states[1].values()):
        assert torch.equal(a, b), k


def test_diagnostics_measure_detection_of_corrupted_pixels(monkeypatch):
    """With a teacher uncertain exactly on the corrupted pixels: AUROC 1, the gate closed there."""
    method, _ = make_method("pint", image_keep=1.0)
    batch = make_batch()
    corrupted = batch["label"] != batch["clean"]
    u = torch.where(corrupted, 0.69, 0.1)
    mu = torch.full((4, 2, 16, 16), 0.5)
    fake = TeacherOutput(McUncertainty(mu, u, u.flatten(1).mean(1)), None, "stream")
    monkeypatch.setattr(method, "teacher_outputs", lambda x, keep_first=False: fake)
    d = method.diagnostics(batch, 0)
    assert d["uncertainty_auroc"] == 1.0
    assert d["trusted_pixels_corrupted"] == 0.0 and d["trusted_pixels_agree"] == 1.0
    assert d["trusted_pixels"] == pytest.approx(1 - float(corrupted.float().mean()))
    assert d["trusted_images"] == 1.0  # keep ratio 1
    assert d["image_uncertainty_auroc"] == 1.0  # the corrupted images have the higher mean uncertainty
    assert d["trusted_images_corrupted"] == 1.0 and d["trusted_images_agree"] == 1.0


@pytest.mark.parametrize("dims", [2, 3])
def test_figure_is_written(tmp_path, dims):
    method, opt = make_method("pint", dims)
    batch = make_batch(dims)
    path = os.path.join(tmp_path, "figures", "step.png")
    assert method.save_figure(batch, 3, path)
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert os.path.getsize(path) > 5000
