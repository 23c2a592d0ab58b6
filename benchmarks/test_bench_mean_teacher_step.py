"""One mean-teacher training step (pint, uamt) beside the baseline's step on the same batch and net.

Run: pytest benchmarks/test_bench_mean_teacher_step.py --benchmark-only -s
(``-s`` prints the ratio table; the ratios are also in each case's ``extra_info``.)

Every step is the Trainer's own ``_train_step`` (method.training_step under the --amp context,
backward, Adam step, LR schedule, after_step: the teacher's EMA update, log accumulation), on a
fixed batch of the training split, ``--dropout 0.1``, ``--T 8``, gates open from step 0
(``--gate-warmup-steps 0``: the warm-up's steps are plain CE steps):

* ``2d``: U-Net base 16, depth 4, BatchNorm; 8 HC18-sample images 1 x 112 x 160 (108 x 160 padded);
* ``3d``: V-Net (UA-MT's layout, PINT's backbone) base 16, depth 4; 2 synthetic volumes 1 x 48 x 48 x 32.

Cases: ``baseline``; ``pint`` and ``uamt`` with the automatic teacher settings (on this CPU: streamed
passes, bfloat16, channels_last); on 2D also ``pint`` with one setting changed at a time (batched
passes, float32 passes, contiguous teacher, both float32 and contiguous) to show what each choice
buys. Issue goals: time <= (T/4 + 1.5) x the baseline step (3.5x at T = 8), peak memory <= 1.3x.

On a shared machine the load drifts between pytest-benchmark's cases, so ``test_interleaved_ratio``
also times baseline, case, baseline, ... in alternation (one trainer each, same batch) and reports
the ratio of the medians: the figure to quote from a noisy machine.

Peak memory: CUDA: ``torch.cuda.max_memory_allocated`` over one step. CPU: the process's peak
resident set (``VmHWM`` after resetting it through ``/proc/self/clear_refs``) during one step, in a
fresh subprocess per case (after two untimed steps) with glibc's mmap threshold fixed at 128 KiB so
that every freed tensor goes back to the OS and the resident set follows the live tensors. Reported:
the step's peak above the memory resident before it (``step_peak_mib``: activations, teacher passes,
gradients) and the whole process's peak (``process_peak_mib``: also the interpreter, torch, data and
both networks); the ratios are of the step peaks.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

import pytest
import torch

from _devices import DEVICES, device_param, run_pedantic, sync, trainer_steps

T = 8
GOAL_TIME = T / 4 + 1.5
GOAL_MEMORY = 1.3
ROUNDS = {("2d", "cpu"): 10, ("3d", "cpu"): 4, ("2d", "cuda"): 30, ("3d", "cuda"): 20}
CASES = {  # name -> (method, options); "baseline" first: the ratios divide by it
    "baseline": ("baseline", {}),
    "pint": ("pint", {}),
    "uamt": ("uamt", {}),
    "pint_batched": ("pint", {"teacher_passes": "batched"}),
    "pint_float32": ("pint", {"teacher_precision": "float32"}),
    "pint_contiguous": ("pint", {"teacher_memory_format": "contiguous"}),
    "pint_float32_contiguous": ("pint", {"teacher_precision": "float32", "teacher_memory_format": "contiguous"}),
}
CASES_3D = ("baseline", "pint", "uamt")
MEAN_TEACHER_DEFAULTS = {"T": T, "gate_warmup_steps": 0}

_MEDIANS: dict = {}
_PEAKS: dict = {}


def build(device: str, shape: str, case: str, out: str):
    """(trainer, batch) of ``case`` on ``shape``; identical networks and batches across cases."""
    from noisyseg_ext.training import Trainer, make_config

    method, options = CASES[case]
    if method != "baseline":
        options = {**MEAN_TEACHER_DEFAULTS, **options}
    common = dict(method=method, steps=100_000, eval_every=100_000, quiet=True, device=device, out=out, dropout=0.1,
                  noise="dilation", ratio=0.5, **options)
    if shape == "2d":
        trainer = Trainer(make_config(batch=8, base=16, depth=4, **common))
        n = 8
    else:
        from noisyseg_ext.data import synthetic_dataset

        data = synthetic_dataset(16, (48, 48, 32), seed=0)
        trainer = Trainer(make_config(batch=2, net="vnet", base=16, depth=4, val_fraction=0.15, test_fraction=0.15,
                                      meta_fraction=0.0, **common), data=data)
        n = 2
    batch = {k: v.to(device) for k, v in trainer.train_set.fixed_batch(list(range(n))).items()}
    return trainer, batch



def _vm_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def probe_cpu_memory(shape: str, case: str) -> None:
    """Subprocess entry: prints {"step_peak_mib", "process_peak_mib"} of one CPU step of ``case``."""
    with tempfile.TemporaryDirectory() as tmp:
        trainer, batch = build("cpu", shape, case, os.path.join(tmp, "run"))
        for step in range(2):
            trainer._train_step(batch, step)
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current resident set
        before = _vm_kib("VmRSS")
        trainer._train_step(batch, 2)
        peak = _vm_kib("VmHWM")
    print(json.dumps({"step_peak_mib": (peak - before) / 1024, "process_peak_mib": peak / 1024}))


def measure_memory(device: str, shape: str, case: str, trainer, batch, step: int) -> dict:
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        trainer._train_step(batch, step)
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated()
        return {"step_peak_mib": (peak - before) / 2**20, "process_peak_mib": peak / 2**20}
    if not os.access("/proc/self/clear_refs", os.W_OK):
        return {}
    here = os.path.dirname(os.path.abspath(__file__))
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072", "MALLOC_TRIM_THRESHOLD_": "131072"}
    code = (f"import sys; sys.path.insert(0, {here!r}); import test_bench_mean_teacher_step as b; "
            f"b.probe_cpu_memory({shape!r}, {case!r})")
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


PARAMS = [device_param(d, d, s, c, id=f"{s}-{c}-{d}") for d in DEVICES for s in ("2d", "3d") for c in CASES
          if s == "2d" or c in CASES_3D]


@pytest.mark.parametrize("device,shape,case", PARAMS)
def test_step(benchmark, tmp_path, device, shape, case):
    trainer, batch = build(device, shape, case, str(tmp_path / "run"))
    benchmark.group = f"mean-teacher step {shape} {device}"
    steps = trainer_steps(trainer, batch)
    run_pedantic(benchmark, steps, device=device, rounds=ROUNDS[(shape, device)], warmup_rounds=2)
    key = (device, shape)
    median = benchmark.stats.stats.median
    memory = measure_memory(device, shape, case, trainer, batch, steps.count)
    info = {"median_s": median, **memory}
    if case == "baseline":
        _MEDIANS[key], _PEAKS[key] = median, memory.get("step_peak_mib")
    elif key in _MEDIANS:
        info["time_ratio"] = median / _MEDIANS[key]
        info["time_goal"] = GOAL_TIME
        if memory and _PEAKS.get(key):
            info["memory_ratio"] = memory["step_peak_mib"] / _PEAKS[key]
            info["memory_goal"] = GOAL_MEMORY
    if case != "baseline":
        info["teacher_passes"] = trainer.method.passes.resolved_mode(batch["image"])
        info["teacher_dtype"] = str(trainer.method.passes.dtype)
        info["teacher_memory_format"] = str(trainer.method.passes.memory_format)
    benchmark.extra_info.update(info)
    print(f"\n[{shape} {device} {case}] " + ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
                                                     for k, v in info.items()))


INTERLEAVED = [device_param(d, d, s, c, id=f"{s}-{c}-{d}") for d in DEVICES for s in ("2d", "3d")
               for c in CASES if c != "baseline" and (s == "2d" or c in CASES_3D)]


@pytest.mark.parametrize("device,shape,case", INTERLEAVED)
def test_interleaved_ratio(benchmark, tmp_path, device, shape, case):
    import statistics
    import time

    base, batch = build(device, shape, "baseline", str(tmp_path / "base"))
    other, _ = build(device, shape, case, str(tmp_path / "case"))
    benchmark.group = f"mean-teacher interleaved {shape} {device}"
    times = {"baseline": [], case: []}
    state = {"step": 0}

    def timed(trainer, name):
        sync(device)
        t = time.perf_counter()
        trainer._train_step(batch, state["step"])
        sync(device)
        times[name].append(time.perf_counter() - t)

    def one_round():  # baseline, case, baseline: each case step has a baseline step on either side
        timed(base, "baseline")
        timed(other, case)
        timed(base, "baseline")
        state["step"] += 1

    for _ in range(2):  # untimed warm-up
        one_round()
    times = {"baseline": [], case: []}
    run_pedantic(benchmark, one_round, device=device, rounds=ROUNDS[(shape, device)], warmup_rounds=0)
    b, c = statistics.median(times["baseline"]), statistics.median(times[case])
    info = {"baseline_median_s": b, f"{case}_median_s": c, "time_ratio": c / b, "time_goal": GOAL_TIME}
    benchmark.extra_info.update(info)
    print(f"\n[interleaved {shape} {device} {case}] " + ", ".join(f"{k} {v:.3f}" for k, v in info.items()))


def round_robin(device: str = "cpu", shape: str = "2d", rounds: int = 5, cases=None) -> dict:
    """Every case's step and a baseline step in alternation, round after round (baseline, case 1,
    baseline, case 2, ...), so that all cases see the same load; returns {case: (median s, ratio)}."""
    import statistics
    import time

    cases = [c for c in (cases or CASES) if c != "baseline" and (shape == "2d" or c in CASES_3D)]
    with tempfile.TemporaryDirectory() as tmp:
        trainers = {c: build(device, shape, c, os.path.join(tmp, c))[0] for c in ["baseline", *cases]}
        batch = build(device, shape, "baseline", os.path.join(tmp, "batch"))[1]
        times = {c: [] for c in trainers}
        for r in range(rounds + 2):  # two untimed rounds first
            for c in cases:
                for name in ("baseline", c):
                    sync(device)
                    t = time.perf_counter()
                    trainers[name]._train_step(batch, r)
                    sync(device)
                    if r >= 2:
                        times[name].append(time.perf_counter() - t)
    base = statistics.median(times["baseline"])
    out = {"baseline": (base, 1.0)}
    out.update({c: (statistics.median(times[c]), statistics.median(times[c]) / base) for c in cases})
    return out


def teacher_pass_variants(device: str = "cpu", shape: str = "2d", rounds: int = 7) -> dict:
    """The T = 8 teacher passes alone (no student), for every pass mode x precision x layout, beside
    one plain training step (forward + backward + Adam) of the same network and batch, interleaved
    round by round. Returns {name: (min s, median s)}; the minimum is the figure least disturbed by
    other processes on a shared machine."""
    import copy
    import statistics
    import time

    from noisyseg_ext.methods.mean_teacher import EMATeacher, TeacherPasses

    with tempfile.TemporaryDirectory() as tmp:
        trainer, batch = build(device, shape, "baseline", os.path.join(tmp, "b"))
    dims = 2 if shape == "2d" else 3
    cl = torch.channels_last if dims == 2 else torch.channels_last_3d
    teachers = {fmt: EMATeacher(trainer.net, memory_format=m).net for fmt, m in (("contiguous", None), ("cl", cl))}
    student = copy.deepcopy(trainer.net)
    opt = torch.optim.Adam(student.parameters(), 1e-3)
    x, y = batch["image"], batch["label"]

    def plain_step():
        opt.zero_grad(set_to_none=True)
        trainer.ctx.loss_fn(student(x), y).backward()
        opt.step()

    variants = {"plain step": plain_step}
    for mode in ("stream", "batched"):
        for dtype in (torch.float32, torch.bfloat16):
            for fmt in ("contiguous", "cl"):
                passes = TeacherPasses(T=T, mode=mode, dtype=dtype, memory_format=None if fmt == "contiguous" else cl)
                name = f"passes {mode} {str(dtype)[6:]} {fmt}"
                variants[name] = (lambda p=passes, n=teachers[fmt]: p(n, x))
    times = {k: [] for k in variants}
    for r in range(rounds + 1):
        for k, fn in variants.items():
            sync(device)
            t = time.perf_counter()
            fn()
            sync(device)
            if r:
                times[k].append(time.perf_counter() - t)
    return {k: (min(v), statistics.median(v)) for k, v in times.items()}


def main(argv=None) -> None:
    """python benchmarks/test_bench_mean_teacher_step.py {steps,passes} [--shape 2d|3d] [--rounds K]
    [--device cpu|cuda] [--threads N]"""
    import argparse

    p = argparse.ArgumentParser(description="mean-teacher step timings, interleaved (see the module docstring)")
    p.add_argument("what", choices=("steps", "passes"))
    p.add_argument("--shape", default="2d", choices=("2d", "3d"))
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    tag = f"{a.shape} {a.device} {torch.get_num_threads()} threads"
    if a.what == "passes":
        res = teacher_pass_variants(a.device, a.shape, a.rounds)
        step_min = res["plain step"][0]
        for name, (lo, med) in res.items():
            print(f"{tag} {name:34s} min {lo * 1e3:8.1f} ms  median {med * 1e3:8.1f} ms  "
                  f"min / plain step {lo / step_min:5.2f}", flush=True)
    else:
        for case, (median, ratio) in round_robin(a.device, a.shape, a.rounds).items():
            print(f"{tag} {case:26s} {median * 1e3:9.1f} ms  {ratio:5.2f}x baseline (goal {GOAL_TIME:.1f}x)",
                  flush=True)


if __name__ == "__main__":
    main()
