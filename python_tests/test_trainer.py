"""The Trainer on tiny synthetic data: run folder, exact resume, NaN stop, evaluation, methods' hooks."""

import csv
import json
import math
import os

import pytest
import torch

from noisyseg_ext.errors import ConfigError, RunFolderError, TrainingDiverged
from noisyseg_ext.methods.base import Method
from noisyseg_ext.methods.registry import register_method
from noisyseg_ext.training import Trainer
from noisyseg_ext.training.checkpoint import load_checkpoint

from trainer_helpers import state_equal, tiny_config, tiny_data, tiny_run


def test_run_folder_contents(tmp_path):
    results, trainer = tiny_run(tmp_path / "run")
    out = tmp_path / "run"
    for f in ("config.json", "splits.json", "metrics.csv", "results.json", "checkpoints/last.pt", "checkpoints/best.pt",
              "figures/progress.png", "figures/test_overlays.png", "figures/corruption.png"):
        assert (out / f).is_file(), f
    saved = json.loads((out / "results.json").read_text())
    for k in ("dice", "iou", "miou", "hd95", "asd", "assd", "per_image", "steps", "train_seconds"):
        assert k in saved
    assert saved["steps"] == 6 and saved["train_seconds"] > 0 and len(saved["per_image"]) == saved["num_test"]
    assert 0 <= saved["dice"] <= 1 and math.isfinite(saved["hd95"])
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert [int(r["step"]) for r in rows] == [3, 6] and "val_dice" in rows[0] and "train_loss" in rows[0]
    config = json.loads((out / "config.json").read_text())
    assert config["steps"] == 6 and "version" in config
    splits = json.loads((out / "splits.json").read_text())
    names = [n for k in ("train", "meta", "val", "test") for n in splits[k]]
    assert len(names) == len(set(names)) == 24                     # every image in exactly one split
    assert {r["name"] for r in saved["per_image"]} == set(splits["test"])
    blob = load_checkpoint(str(out / "checkpoints" / "last.pt"))
    assert blob["step"] == 6 and state_equal(blob["net"], trainer.net.state_dict())
    assert results["dice"] == saved["dice"]
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        return
    events = [f for f in os.listdir(out / "tensorboard") if f.startswith("events.out.tfevents")]
    assert events and os.path.getsize(out / "tensorboard" / events[0]) > 0


def test_3d_vnet_patches_and_sliding_windows(tmp_path):
    from noisyseg_ext.data import synthetic_dataset

    data = synthetic_dataset(12, (16, 16, 12), seed=1)
    results, t = tiny_run(tmp_path / "v", data=data, net="vnet", depth=3, patch=(8, 8, 8), steps=3, eval_every=3,
                          batch=2)
    assert t.multiple == 4 and t._diagnostic_batch()["image"].shape[2:] == (8, 8, 8)
    assert len(results["per_image"]) == len(t.test_data) and math.isfinite(results["hd95"])


@pytest.mark.parametrize("method_options", [{}, {"dropout": 0.3, "optimizer": "sgd", "schedule": "cosine"}])
def test_resume_is_bit_exact(tmp_path, method_options):
    data = tiny_data()
    full, t_full = tiny_run(tmp_path / "full", data=data, steps=8, eval_every=4, **method_options)
    first = Trainer(tiny_config(tmp_path / "half", steps=8, eval_every=4, **method_options), data=data)
    assert first.fit(until=5) == {}                      # stops after step 5 (between checkpoints)
    del first
    resumed = Trainer(tiny_config(tmp_path / "half", steps=8, eval_every=4, resume=True, **method_options), data=data)
    assert resumed.step == 5
    again = resumed.fit()
    assert state_equal(t_full.net.state_dict(), resumed.net.state_dict())
    assert again["dice"] == full["dice"] and again["hd95"] == full["hd95"]
    a = (tmp_path / "full" / "metrics.csv").read_text().splitlines()
    b = (tmp_path / "half" / "metrics.csv").read_text().splitlines()
    drop = lambda lines: [",".join(c for i, c in enumerate(l.split(",")) if i != 2) for l in lines]  # noqa: E731
    assert a[0] == b[0] and drop(a) == drop(b)          # identical rows but the timing column


def test_resume_refuses_a_different_config(tmp_path):
    data = tiny_data()
    Trainer(tiny_config(tmp_path / "r", steps=4), data=data).fit(until=2)
    with pytest.raises(ConfigError, match=r"differs .*lr"):
        Trainer(tiny_config(tmp_path / "r", steps=4, lr=0.1, resume=True), data=data)
    with pytest.raises(RunFolderError, match="holds another run"):
        Trainer(tiny_config(tmp_path / "r", steps=4), data=data)


@register_method
class _NanAtStep3(Method):
    """Test method: a normal loss, then NaN from step index 3 (the 4th step)."""

    name = "test_nan_at_3"

    def training_step(self, batch, step):
        loss = self.ctx.loss_fn(self.ctx.model(batch["image"]), batch["label"])
        return {"loss": loss * float("nan") if step >= 3 else loss}


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    with pytest.raises(TrainingDiverged, match=r"at step 4 of 6 .*last good checkpoint"):
        tiny_run(tmp_path / "n", method="test_nan_at_3", eval_every=2)
    blob = load_checkpoint(str(tmp_path / "n" / "checkpoints" / "last.pt"))
    assert blob["step"] == 2 and all(torch.isfinite(v).all() for v in blob["net"].values() if v.is_floating_point())


def test_clean_method_reads_clean_labels(tmp_path):
    seen = {}

    class Spy(torch.nn.Module):
        pass

    _, t = tiny_run(tmp_path / "c", method="clean", steps=1, eval_every=1)
    batch = t._diagnostic_batch()
    assert (batch["label"] != batch["clean"]).any()      # the noise is there ...
    calls = []
    t.ctx.loss_fn = lambda logits, target, weight=None: calls.append(target) or logits.sum() * 0
    t.method.training_step(batch, 0)
    assert torch.equal(calls[0], batch["clean"])          # ... and the clean method trains on clean labels


def test_custom_network_and_eval_models(tmp_path):
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 2, 1))
    results, t = tiny_run(tmp_path / "m", steps=2, eval_every=2)
    t2 = Trainer(tiny_config(tmp_path / "m2", steps=2, eval_every=2), data=tiny_data(), net=net)
    assert t2.net is net and t2.multiple == 1
    assert "dice" in t2.fit()
    with pytest.raises(ConfigError, match="has only student"):
        Trainer(tiny_config(tmp_path / "m3", eval_model="teacher"), data=tiny_data())


def test_amp_bf16_on_cpu_trains(tmp_path):
    results, _ = tiny_run(tmp_path / "a", amp="bf16", steps=3, eval_every=3)
    assert math.isfinite(results["dice"])


def test_learning_happens(tmp_path):
    """Not a timing test: 120 steps on the synthetic ellipses must beat an untrained network clearly."""
    results, _ = tiny_run(tmp_path / "l", steps=120, eval_every=60, noise="none", base=8, lr=1e-2)
    assert results["dice"] > 0.8
