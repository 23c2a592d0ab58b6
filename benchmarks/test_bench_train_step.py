"""One training step through the Trainer beside a hand-written PyTorch loop doing the same work.

Run: pytest benchmarks/test_bench_train_step.py --benchmark-only
Same network (U-Net, 16 base channels, 4 levels, BatchNorm), same batch (8 HC18-sample images at
112 x 160 and their labels), Adam. Three steps per group:

* ``trainer``: ``Trainer._train_step`` of the ``baseline`` method (fused ``weighted_ce``, the
  method dispatch, the LR scheduler, the log accumulation and the finite-loss check);
* ``hand_cross_entropy``: ``zero_grad; F.cross_entropy(net(x), y).backward(); opt.step()``, what a
  user would write (the issue's baseline: Trainer overhead <= 5 %);
* ``hand_weighted_ce``: the same loop with the fused loss, which separates the trainer's own
  overhead from the loss kernel's gain.
"""

import copy

import pytest
import torch
import torch.nn.functional as F

from _devices import DEVICE_PARAMS, run_pedantic, trainer_steps
from noisyseg_ext import weighted_ce
from noisyseg_ext.training import Trainer, make_config

ROUNDS = {"cpu": 15, "cuda": 50}


@pytest.fixture(scope="module", params=DEVICE_PARAMS)
def setup(request, tmp_path_factory):
    device = request.param
    out = tmp_path_factory.mktemp("bench_train_step")
    cfg = make_config(steps=10_000, batch=8, out=str(out / "run"), quiet=True, device=device, eval_every=10_000)
    trainer = Trainer(cfg)
    batch = {k: v.to(device) for k, v in trainer.train_set.fixed_batch(list(range(8))).items()}
    net = copy.deepcopy(trainer.net)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    return device, trainer, batch, net, opt



def test_trainer_step(benchmark, setup):
    device, trainer, batch, _, _ = setup
    benchmark.group = f"train step {device}"
    run_pedantic(benchmark, trainer_steps(trainer, batch), device=device, rounds=ROUNDS[device], warmup_rounds=3)


@pytest.mark.parametrize("loss", ["cross_entropy", "weighted_ce"])
def test_hand_written_step(benchmark, setup, loss):
    device, _, batch, net, opt = setup
    benchmark.group = f"train step {device}"
    fn = F.cross_entropy if loss == "cross_entropy" else weighted_ce
    x, y = batch["image"], batch["label"]

    def step():
        opt.zero_grad(set_to_none=True)
        fn(net(x), y).backward()
        opt.step()

    run_pedantic(benchmark, step, device=device, rounds=ROUNDS[device], warmup_rounds=3)


def interleaved(rounds: int = 20, device: str = "cpu") -> dict[str, list[float]]:
    """Seconds per step of the three variants, run in turn within each round (_interleaved.py),
    so that the load of a shared machine falls on all three alike; pytest-benchmark runs each
    group's cases one after the other."""
    import tempfile

    from _interleaved import time_interleaved

    with tempfile.TemporaryDirectory() as tmp:
        cfg = make_config(steps=10_000, batch=8, out=f"{tmp}/run", quiet=True, device=device, eval_every=10_000)
        trainer = Trainer(cfg)
        batch = {k: v.to(device) for k, v in trainer.train_set.fixed_batch(list(range(8))).items()}
        net = copy.deepcopy(trainer.net)
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        x, y = batch["image"], batch["label"]

        def hand(fn):
            def step(_):
                opt.zero_grad(set_to_none=True)
                fn(net(x), y).backward()
                opt.step()
            return step

        steps = {"trainer": (lambda i: trainer._train_step(batch, i), None),
                 "hand cross_entropy": (hand(F.cross_entropy), None), "hand weighted_ce": (hand(weighted_ce), None)}
        return time_interleaved(steps, rounds, warmup=3, device=device)


if __name__ == "__main__":
    import argparse
    import statistics

    ap = argparse.ArgumentParser(description="Trainer step against hand-written loops, interleaved")
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None)
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    t = interleaved(a.rounds, a.device)
    ref_min, ref_med = min(t["hand cross_entropy"]), statistics.median(t["hand cross_entropy"])
    print(f"{a.device}, {torch.get_num_threads()} threads, {a.rounds} interleaved rounds")
    for name, v in t.items():
        print(f"{name:20s} min {min(v) * 1e3:7.1f} ms ({min(v) / ref_min:5.3f}x)  "
              f"median {statistics.median(v) * 1e3:7.1f} ms ({statistics.median(v) / ref_med:5.3f}x)")
