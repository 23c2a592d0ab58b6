"""The mean-teacher methods through the real Trainer on tiny synthetic data: metrics.csv columns,
the figure, exact resume with the teacher, the teacher evaluated, the 3D V-Net path."""

import csv

import pytest

from noisyseg_ext.training import Trainer

from trainer_helpers import state_equal, tiny_config, tiny_data, tiny_run

MT = dict(T=2, dropout=0.2, gate_warmup_steps=2, teacher_precision="float32")


def test_pint_run_writes_diagnostics_and_figures(tmp_path):
    results, t = tiny_run(tmp_path / "p", method="pint", steps=6, eval_every=3, **MT)
    with open(tmp_path / "p" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == [3, 6]
    for key in ("train_trusted_pixels", "train_trusted_images", "train_threshold", "trusted_pixels",
                "trusted_pixels_corrupted", "trusted_pixels_agree", "trusted_images", "uncertainty_auroc",
                "image_uncertainty_auroc"):
        assert key in rows[0], key
    last = rows[-1]
    assert 0.0 <= float(last["trusted_pixels"]) <= 1.0 and 0.0 <= float(last["uncertainty_auroc"]) <= 1.0
    assert (tmp_path / "p" / "figures" / "method" / "step_000006.png").is_file()
    assert results["model"] == "student"
    teacher = results["other_models"]["teacher"]                 # the teacher is evaluated beside it
    assert set(teacher) >= {"dice", "hd95", "dice_std"} and 0.0 <= teacher["dice"] <= 1.0


@pytest.mark.parametrize("method", ["pint", "uamt"])
def test_resume_through_the_trainer_is_bit_exact(tmp_path, method):
    data = tiny_data()
    options = dict(method=method, steps=8, eval_every=4, **MT)
    full, t_full = tiny_run(tmp_path / "full", data=data, **options)
    first = Trainer(tiny_config(tmp_path / "half", **options), data=data)
    assert first.fit(until=5) == {}
    del first
    resumed = Trainer(tiny_config(tmp_path / "half", resume=True, **options), data=data)
    assert resumed.step == 5
    again = resumed.fit()
    assert state_equal(t_full.method.teacher.state_dict(), resumed.method.teacher.state_dict())
    assert state_equal(t_full.net.state_dict(), resumed.net.state_dict())
    assert again["dice"] == full["dice"]


def test_3d_vnet_evaluates_the_teacher(tmp_path):
    from noisyseg_ext.data import synthetic_dataset

    data = synthetic_dataset(12, (16, 16, 12), seed=1)
    results, t = tiny_run(tmp_path / "v", data=data, method="pint", net="vnet", depth=3, patch=(8, 8, 8), steps=3,
                          eval_every=3, batch=2, eval_model="teacher", **MT)
    assert results["model"] == "teacher" and t.method.image_unit == "slice"
    assert t.method.eval_models()["teacher"] is t.method.teacher.net
