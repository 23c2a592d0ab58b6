"""Options, Config, config files and the run folder's checks."""

import json
import os

import pytest

from noisyseg_ext.errors import ConfigError, RunFolderError
from noisyseg_ext.training import make_config
from noisyseg_ext.training import run_folder
from noisyseg_ext.training.config import Config, default_out
from noisyseg_ext.training.options import all_options, parse_size
from noisyseg_ext.training.schedule import lr_factor


def test_defaults_and_overrides_are_parsed():
    c = make_config(ratio="0.4", size="64x96", augment="false", patch="32x32x16", noise_params='{"iterations": [3, 8]}')
    assert c.ratio == 0.4 and c.size == (64, 96) and c.augment is False and c.patch == (32, 32, 16)
    assert c.noise_params == {"iterations": [3, 8]}
    assert c.method == "baseline" and c.data == "hc18-sample"
    assert c.replace(lr=0.01).lr == 0.01 and c.lr == 1e-3          # immutable: replace gives a copy
    with pytest.raises(AttributeError):
        c.lr = 3


@pytest.mark.parametrize("key, value, message", [
    ("ratio", "1.5", "--ratio"), ("method", "nope", "unknown method 'nope'"), ("noise", "blur", "--noise"),
    ("net", "resnet", "--net"), ("size", "12x", "--size"), ("steps", "0", "--steps"), ("amp", "fp8", "--amp"),
])
def test_bad_values_name_the_option(key, value, message):
    with pytest.raises(ConfigError, match=message):
        make_config(**{key: value})


def test_unknown_option_and_fraction_sum():
    with pytest.raises(ConfigError, match="unknown option"):
        make_config(learning_rate=3)
    with pytest.raises(ConfigError, match="leaves no training split"):
        make_config(meta_fraction=0.4, val_fraction=0.3, test_fraction=0.3)


def test_config_files_yaml_and_json(tmp_path):
    y = tmp_path / "c.yaml"
    y.write_text("ratio: 0.2\nmeta-fraction: 0.15\nsize: [32, 48]\n")
    c = make_config(str(y), ratio=0.8)                      # the explicit value wins over the file
    assert c.ratio == 0.8 and c.meta_fraction == 0.15 and c.size == (32, 48)
    j = tmp_path / "c.json"
    j.write_text(json.dumps({**make_config().to_dict(), "version": "0.1.0", "steps": 7}))
    assert make_config(str(j)).steps == 7                   # a run's config.json is a valid config file
    bad = tmp_path / "bad.yaml"
    bad.write_text("ratio: [\n")
    with pytest.raises(ConfigError, match="cannot be read"):
        make_config(str(bad))
    with pytest.raises(ConfigError, match="does not exist"):
        make_config(str(tmp_path / "missing.yaml"))


def test_differences_ignore_run_only_options():
    a = make_config(steps=10)
    assert a.differences(a.replace(quiet=True, resume=True, workers=2)) == []
    assert a.differences(a.replace(lr=0.1, steps=11)) == ["lr", "steps"]


def test_option_names_unique_and_flags():
    names = [o.name for o in all_options()]
    assert len(names) == len(set(names))
    assert parse_size("112x112x80") == (112, 112, 80) and parse_size("none") is None


def test_default_out():
    assert default_out(make_config(method="clean", noise="none", seed=3)) == os.path.join("runs", "clean-clean-s3")
    assert default_out(make_config(ratio=0.4)) == os.path.join("runs", "baseline-dilation-0.4-s0")


def test_lr_schedules():
    assert lr_factor("poly", 0, 100) == 1 and lr_factor("poly", 100, 100) == 0
    assert lr_factor("step", 2499, 6000) == 1 and lr_factor("step", 2500, 6000) == pytest.approx(0.1)
    assert lr_factor("cosine", 50, 100) == pytest.approx(0.5) and lr_factor("constant", 70, 100) == 1


def test_run_folder_refuses_another_run(tmp_path):
    out = str(tmp_path / "run")
    cfg = make_config(steps=5).to_dict()
    diff = lambda saved: Config(saved).differences(Config(cfg))  # noqa: E731
    run_folder.prepare(out, cfg, resume=False, overwrite=False, differences=diff)
    run_folder.write_json(os.path.join(out, "config.json"), cfg)
    with pytest.raises(RunFolderError, match="holds another run"):
        run_folder.prepare(out, cfg, resume=False, overwrite=False, differences=diff)
    keep = os.path.join(out, "notes.txt")
    open(keep, "w").close()
    run_folder.prepare(out, cfg, resume=False, overwrite=True, differences=diff)
    assert not os.path.exists(os.path.join(out, "config.json")) and os.path.exists(keep)  # only run files go
    other = str(tmp_path / "other")
    os.makedirs(other)
    open(os.path.join(other, "x"), "w").close()
    with pytest.raises(RunFolderError, match="not empty"):
        run_folder.prepare(other, cfg, resume=False, overwrite=False, differences=diff)


def test_resume_with_other_config_names_the_keys(tmp_path):
    out = str(tmp_path / "run")
    saved = make_config(steps=5, lr=0.01)
    os.makedirs(out)
    run_folder.write_json(os.path.join(out, "config.json"), {**saved.to_dict(), "version": "x"})
    now = saved.replace(lr=0.02, batch=4)
    with pytest.raises(ConfigError, match=r"differs .*batch \(8 -> 4\), lr \(0.01 -> 0.02\)"):
        run_folder.prepare(out, now.to_dict(), resume=True, overwrite=False,
                           differences=lambda s: now.differences(Config(s)))
    with pytest.raises(RunFolderError, match="no run to resume"):
        run_folder.prepare(str(tmp_path / "empty"), now.to_dict(), resume=True, overwrite=False,
                           differences=lambda s: [])


def test_metrics_log_keeps_rows_up_to_the_resumed_step(tmp_path):
    path = str(tmp_path / "metrics.csv")
    log = run_folder.MetricsLog(path)
    log.append({"step": 10, "val_dice": 0.5})
    log.append({"step": 20, "val_dice": 0.6, "extra": float("nan")})
    again = run_folder.MetricsLog(path, keep_until_step=10)
    assert [r["step"] for r in again.rows] == [10] and again.rows[0]["val_dice"] == 0.5
    assert open(path).readline().strip() == "step,val_dice,extra"
