"""One training step of each meta-learning method beside the baseline step, on the same batch.

Run:
    pytest benchmarks/test_bench_meta_step.py --benchmark-only        # pytest-benchmark, CPU and CUDA cases
    python benchmarks/test_bench_meta_step.py [--device cpu] [--threads 1] [--rounds 5] [--small]
                                                                      # table: time / baseline, peak memory
    python benchmarks/test_bench_meta_step.py --phases [--small]      # where an mcpm step's time goes
    python benchmarks/test_bench_meta_step.py --precision             # meta-gradient under bf16 / fp16 autocast
    python benchmarks/test_bench_meta_step.py --head-effect           # --meta-params head against all

A step is what the trainer runs: ``method.training_step`` (real forward, and for the meta methods
the meta-gradient and the weight net's Adam step), then zero_grad, backward, the network's SGD step
(lr 0.01, momentum 0.9). Shape: UNet (base 16, depth 4, BatchNorm, 2 classes), batch 8 of 1 x 112 x 160,
meta batch 8 (``--small``: batch 4 of 1 x 64 x 96). Cases: baseline; mwnet / l2rw / mcpm x
``--meta-grad`` forward / reverse x ``--meta-params`` all / head.

Peak memory, as the step's high-water mark above the memory held before it (network, optimiser
state, batch), after a warm-up step: CUDA ``torch.cuda.max_memory_allocated``; CPU the process's
peak resident set (``VmHWM`` of /proc/self/status, reset by writing 5 to /proc/self/clear_refs after
``malloc_trim``, with glibc's mmap threshold fixed at 64 KiB so that freed tensors leave the resident
set), which counts every allocation torch's CPU allocator makes (it caches nothing).
Times in the table are the minimum over interleaved rounds of each case's process CPU time (CPU;
robust to other processes on a shared machine) or of synchronised wall time (CUDA).
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import os
import sys
import time

import pytest
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _devices import DEVICES, device_param, require_kernels, run_pedantic  # noqa: E402

from noisyseg_ext.methods.meta import build_method  # noqa: E402
from noisyseg_ext.nets import UNet  # noqa: E402

FULL = dict(batch=8, size=(112, 160))
SMALL = dict(batch=4, size=(64, 96))
CASES = [("baseline", None, None)] + [(m, g, p) for m in ("mwnet", "l2rw", "mcpm")
                                      for g in ("forward", "reverse") for p in ("all", "head")]


def case_id(case) -> str:
    method, grad, params = case
    return method if grad is None else f"{method}-{grad}-{params}"


def make_case(case, device: str, batch: int, size: tuple[int, int]):
    """(step function, objects to keep alive) for one case; the same initial network and batches in
    every case."""
    method_name, grad, params = case
    dev = torch.device(device)
    torch.manual_seed(0)
    net = UNet(1, 2, base=16, depth=4).to(dev)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    g = torch.Generator().manual_seed(0)
    image = torch.randn(batch, 1, *size, generator=g).to(dev)
    label = (torch.rand(batch, *size, generator=g) < 0.3).long().to(dev)
    meta = {"image": torch.randn(batch, 1, *size, generator=g).to(dev),
            "label": (torch.rand(batch, *size, generator=g) < 0.3).long().to(dev)}
    options = {} if grad is None else {"meta_grad": grad, "meta_params": params}
    method = build_method(method_name, net, opt, [meta], **options)
    method.train()
    batch_dict = {"image": image, "label": label}
    state = {"step": 0}

    def step():
        out = method.training_step(batch_dict, state["step"])
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        opt.step()
        state["step"] += 1
        if dev.type == "cuda":
            torch.cuda.synchronize()

    return step, (method, net, opt)


# -- pytest-benchmark ---------------------------------------------------------------------------

BENCH = [device_param(d, c, d, id=f"{case_id(c)}-{d}") for d in DEVICES for c in CASES]


@pytest.mark.parametrize("case,device", BENCH)
def test_meta_step(benchmark, case, device):
    require_kernels(device)
    shape = FULL
    benchmark.group = f"meta step UNet16 {shape['batch']}x1x{shape['size'][0]}x{shape['size'][1]} {device}"
    benchmark.extra_info.update(method=case[0], meta_grad=case[1], meta_params=case[2])
    step, keep = make_case(case, device, **shape)
    step()  # warm-up (oneDNN primitives, CUDA kernels)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        step()
        benchmark.extra_info["peak_step_mib"] = (torch.cuda.max_memory_allocated() - base) / 2**20
    run_pedantic(benchmark, step, device=device, rounds=3 if device == "cpu" else 20, warmup_rounds=0)


# -- table ----------------------------------------------------------------------------------------

_LIBC = ctypes.CDLL("libc.so.6")


def fixed_mmap_threshold() -> None:
    """glibc: every allocation of 64 KiB or more gets its own mapping, returned to the system when freed
    (a fixed M_MMAP_THRESHOLD; the default threshold grows after frees and then serves large tensors
    from the heap, which keeps freed memory resident and blurs the peak of one case into the next)."""
    _LIBC.mallopt(-3, 64 * 1024)  # M_MMAP_THRESHOLD


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def peak_step_mib(step, device: str) -> float:
    """The step's memory high-water mark above what is held before it, in MiB (module docstring)."""
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        step()
        return (torch.cuda.max_memory_allocated() - base) / 2**20
    gc.collect()
    _LIBC.malloc_trim(0)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM to the current resident set
    base = _status_kib("VmRSS")
    step()
    return (_status_kib("VmHWM") - base) / 1024


def table(device: str, rounds: int, shape: dict) -> list[dict]:
    """Time and peak memory of every case, interleaved rounds; rows with ratios to the baseline."""
    timer = time.process_time if device == "cpu" else time.perf_counter
    memory, steps, keep = {}, {}, []
    if device == "cpu":
        fixed_mmap_threshold()
    for case in CASES:
        step, objs = make_case(case, device, **shape)
        step()
        memory[case] = peak_step_mib(step, device)
        steps[case] = step
        keep.append(objs)
    times = {case: [] for case in CASES}
    for _ in range(rounds):
        for case in CASES:
            t0 = timer()
            steps[case]()
            times[case].append(timer() - t0)
    base_t, base_m = min(times[CASES[0]]), memory[CASES[0]]
    return [{"case": case_id(c), "seconds": min(times[c]), "time_ratio": min(times[c]) / base_t,
             "peak_mib": memory[c], "memory_ratio": memory[c] / base_m} for c in CASES]


def phases(device: str, rounds: int, shape: dict, case=("mcpm", "forward", "all")) -> dict[str, float]:
    """Seconds per step of each ``meta:*`` phase (torch.profiler record_function scopes in the
    methods) and of the trainer's backward and optimiser step, minimum over ``rounds`` steps."""
    from torch.profiler import ProfilerActivity, profile, record_function

    step_fn, keep = make_case(case, device, **shape)
    method, net, opt = keep
    batch = {"image": torch.randn(shape["batch"], 1, *shape["size"], device=device),
             "label": (torch.rand(shape["batch"], *shape["size"], device=device) < 0.3).long()}

    def step(k):
        with record_function("step:training_step"):
            out = method.training_step(batch, k)
        opt.zero_grad(set_to_none=True)
        with record_function("step:backward"):
            out["loss"].backward()
        with record_function("step:optimizer"):
            opt.step()

    step(0)
    best: dict[str, float] = {}
    for k in range(rounds):
        with profile(activities=[ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])) as prof:
            step(k + 1)
        for e in prof.key_averages():
            if e.key.startswith(("meta:", "step:")):
                t = (e.device_time_total if device == "cuda" else e.cpu_time_total) / 1e6
                best[e.key] = min(best.get(e.key, float("inf")), t)
    return best


# -- analyses on HC18 ---------------------------------------------------------------------------

def hc18_problem(size=(64, 96), batch=8, seed=0):
    """The embedded HC18 sample at ``size``: (noisy batch, clean meta batch, a noisy batch iterator),
    dilation noise on 60 % of the training images."""
    from noisyseg_ext import corrupt_labels
    from noisyseg_ext.data import load_dataset

    data = load_dataset("hc18-sample", size=size)
    images = torch.stack(list(data.images)).float()
    masks = torch.stack(list(data.masks)).long()
    train, meta = slice(0, 48), slice(48, 64)
    noisy, _ = corrupt_labels(masks[train], "dilation", 0.6, seed=seed)
    g = torch.Generator().manual_seed(seed)

    def batches():
        while True:
            idx = torch.randperm(48, generator=g)[:batch]
            yield {"image": images[train][idx], "label": noisy[idx].long(), "clean": masks[train][idx]}

    meta_batches = [{"image": images[meta][i:i + batch], "label": masks[meta][i:i + batch]} for i in (0, 8)]
    return batches(), meta_batches


def flat(tensors) -> torch.Tensor:
    return torch.cat([t.reshape(-1).double() for t in tensors])


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a.reshape(1, -1).double(), b.reshape(1, -1).double()))


def mcpm_gradients(net, mask_net, batch, meta, mode="forward", names=None, autocast=None, alpha=0.01):
    """(dL_meta/d theta of the meta mask net flattened, dL_meta/dc per pixel) for one batch."""
    from noisyseg_ext.methods.meta import meta_gradient, real_forward
    from noisyseg_ext.ops import weighted_ce

    ctx = autocast() if autocast else torch.autocast("cpu", enabled=False)
    with ctx:
        torch.manual_seed(1)
        first = real_forward(net, batch["image"])
        loss_map = weighted_ce(first.logits, batch["label"], reduction="none")
        r = mask_net(loss_map.detach())
        c_leaf = (r / r.numel()).detach().requires_grad_()
        c = r / r.numel() + (c_leaf - c_leaf.detach())  # one coefficient map, two differentiation targets
        phi = list(mask_net.parameters()) + [c_leaf]
        result = meta_gradient(net, first, batch["label"], loss_map, c, phi, alpha, meta["image"], meta["label"],
                               mode=mode, param_names=names)
    return flat(result.grads[:-1]), result.grads[-1].double()


def train_mcpm(steps, size=(64, 96), names=None):
    """An MCPM run of ``steps`` on the HC18 sample (SGD 0.01, momentum 0.9): (net, mask net, batches, meta)."""
    batches, meta = hc18_problem(size)
    torch.manual_seed(0)
    net = UNet(1, 2, base=16, depth=4)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    method = build_method("mcpm", net, opt, meta, **({"meta_params": ",".join(names)} if names else {}))
    for k in range(steps):
        out = method.training_step(next(batches), k)
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        opt.step()
    return net, method.weight_net, batches, meta


def precision_report(checkpoints=(0, 30)) -> list[str]:
    """The meta-gradient under autocast against float64, after ``checkpoints`` MCPM steps."""
    import copy

    lines = ["steps  precision  path     cos(dtheta)  rel.err(dtheta)  cos(dL/dc)"]
    done = 0
    net, mask_net, batches, meta = train_mcpm(0)
    for target in checkpoints:
        if target > done:
            net, mask_net, batches, meta = train_mcpm(target)
            done = target
        batch = next(batches)
        ref_net, ref_mask = copy.deepcopy(net).double(), copy.deepcopy(mask_net).double()
        ref_batch = {k: (v.double() if v.is_floating_point() else v) for k, v in batch.items()}
        ref_meta = {k: (v.double() if v.is_floating_point() else v) for k, v in meta[0].items()}
        ref_t, ref_c = mcpm_gradients(ref_net, ref_mask, ref_batch, ref_meta)
        for label, autocast in [("fp32", None), ("bf16", lambda: torch.autocast("cpu", dtype=torch.bfloat16)),
                                ("fp16", lambda: torch.autocast("cpu", dtype=torch.float16))]:
            for mode in ("forward", "reverse"):
                t, c = mcpm_gradients(net, mask_net, batch, meta[0], mode, autocast=autocast)
                err = float((t - ref_t).norm() / ref_t.norm())
                lines.append(f"{target:5d}  {label:9s}  {mode:7s}  {cosine(t, ref_t):11.6f}  {err:15.2e}  "
                             f"{cosine(c, ref_c):10.6f}")
    return lines


def head_effect_report(checkpoints=(0, 20, 60)) -> list[str]:
    """--meta-params head against all along an MCPM run: cosine of the weight net's gradient, of the
    per-pixel signal dL/dc, and of the first-order change of R that the gradient step makes."""
    from noisyseg_ext.methods.meta import select_meta_parameters

    lines = ["steps  cos(dtheta)  cos(dL/dc)  cos(dR)  |dtheta_head|/|dtheta_all|"]
    for target in checkpoints:
        net, mask_net, batches, meta = train_mcpm(target)
        head = select_meta_parameters(net, "head")
        batch = next(batches)
        t_all, c_all = mcpm_gradients(net, mask_net, batch, meta[0])
        t_head, c_head = mcpm_gradients(net, mask_net, batch, meta[0], names=head)
        # dR = J_theta R . (-dtheta): the change of the weight map a plain gradient step would make
        from noisyseg_ext.ops import weighted_ce

        with torch.no_grad():
            loss_map = weighted_ce(net(batch["image"]), batch["label"], reduction="none")
        params = dict(mask_net.named_parameters())

        def r_of(p):
            return torch.func.functional_call(mask_net, p, (loss_map,))

        def change(t):
            pieces, offset = {}, 0
            for n, p in params.items():
                pieces[n] = -t[offset:offset + p.numel()].view_as(p).float()
                offset += p.numel()
            return torch.func.jvp(r_of, ({n: p.detach() for n, p in params.items()},), (pieces,))[1]

        lines.append(f"{target:5d}  {cosine(t_all, t_head):11.4f}  {cosine(c_all, c_head):10.4f}  "
                     f"{cosine(change(t_all), change(t_head)):7.4f}  {float(t_head.norm() / t_all.norm()):10.3f}")
    return lines


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--small", action="store_true", help="batch 4 of 64 x 96 instead of 8 of 112 x 160")
    ap.add_argument("--phases", action="store_true", help="per-phase time of an mcpm (forward, all) step")
    ap.add_argument("--precision", action="store_true", help="meta-gradient accuracy under autocast (CPU)")
    ap.add_argument("--head-effect", action="store_true", help="--meta-params head against all (CPU)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    shape = SMALL if args.small else FULL
    if args.precision or args.head_effect:
        for line in (precision_report() if args.precision else head_effect_report()):
            print(line)
        return
    if args.phases:
        for case in [("baseline", None, None), ("mcpm", "forward", "all"), ("mcpm", "reverse", "all"),
                     ("mcpm", "forward", "head")]:
            best = phases(args.device, args.rounds, shape, case)
            print(case_id(case), " ".join(f"{k}={v * 1e3:.1f}ms" for k, v in sorted(best.items(), key=lambda kv: -kv[1])))
        return
    rows = table(args.device, args.rounds, shape)
    print(f"UNet base 16 depth 4, batch {shape['batch']} x 1 x {shape['size'][0]} x {shape['size'][1]}, "
          f"{args.device}, {torch.get_num_threads()} threads, min of {args.rounds} rounds")
    print(f"{'case':<22} {'s/step':>8} {'x base':>7} {'peak MiB':>9} {'x base':>7}")
    for r in rows:
        print(f"{r['case']:<22} {r['seconds']:8.3f} {r['time_ratio']:7.2f} {r['peak_mib']:9.1f} {r['memory_ratio']:7.2f}")


if __name__ == "__main__":
    main()
