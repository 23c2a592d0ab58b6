"""DDP on the CPU (gloo): two processes with torchrun against one process, same global batch.

GroupNorm (no batch statistics), so the two-process step equals the one-process step up to the
order of float sums (each rank's mean over its half, averaged by DDP, is the global mean). Stated
tolerance: weights within 1e-4 absolute after 4 Adam steps (seen: ~1e-7)."""

import os
import subprocess
import sys

import pytest
import torch

from noisyseg_ext.training.checkpoint import load_checkpoint

COMMON = ["--data", "hc18-sample", "--size", "32x48", "--net", "unet", "--base", "4", "--depth", "2", "--norm", "group",
          "--steps", "4", "--eval-every", "4", "--batch", "4", "--device", "cpu", "--quiet", "--seed", "3"]


def _run(cmd, env_extra=None):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore", **(env_extra or {}))
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return r


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed unavailable")
def test_two_gloo_processes_match_one(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    _run([sys.executable, "-m", "noisyseg_ext.cli.main", "train", *COMMON, "--out", str(one)])
    _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
          "-m", "noisyseg_ext.cli.main", "train", *COMMON, "--out", str(two)])
    a = load_checkpoint(str(one / "checkpoints" / "last.pt"))["net"]
    b = load_checkpoint(str(two / "checkpoints" / "last.pt"))["net"]
    assert a.keys() == b.keys()
    worst = max(float((a[k].float() - b[k].float()).abs().max()) for k in a)
    print(f"largest weight difference, 2 processes vs 1: {worst:.3g}")
    assert worst < 1e-4, worst
    # rank 0 alone wrote the run folder (one metrics row per evaluation, not two)
    assert (two / "metrics.csv").read_text().count("\n") == 2
