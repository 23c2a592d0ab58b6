"""Where a CUDA step's time goes: wall time against device (kernel) time, per op, fused vs eager.

pytest-benchmark times a whole step (Python, launches, synchronisations and kernels); the issues'
roofline goals are about the bytes the kernels move. This script separates the two on one GPU:

* wall ms    median over ROUNDS of one step (L2 flushed before, synchronised after), as the
             benchmark files time it; every case's wall time is taken before the first profile;
* device ms  the step's GPU time: sum of the durations of its kernels and memcpys / memsets from
             torch.profiler over PROFILED steps, divided by the step count (the L2 flush between
             steps is a bitwise_not kernel, left out);
* kernels    device events per step; top: the three largest by time;
* fused-op   the fused step with every op through its custom op (direct calls off, ops/_direct.py),
             to show what the direct calls save; the (1, 2, 8, 8) case is all host overhead;
* GB/s       fewest bytes (benchmarks/roofline.py) / device ms, and that as % of a measured
             device-to-device copy (bytes read + written, roofline.measure_copy_gbs); PINT also
             against the floor op by op (roofline.pint_op_bytes: mean_prob and u written and read).

wall - device is host time the GPU waits for (Python, dispatch, launches, synchronisations).

    python -P benchmarks/gpu_profile.py            # from the repo root, with a GPU (run by gpu_check.sh)
    GPU_PROFILE_CASES="pint" python -P benchmarks/gpu_profile.py   # only some groups (weighted_ce pint other)
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import roofline  # noqa: E402
import test_bench_pint as bp  # noqa: E402
import test_bench_weighted_ce as bw  # noqa: E402

import noisyseg_ext  # noqa: E402
from noisyseg_ext.ops import _direct  # noqa: E402
from noisyseg_ext import metrics as M  # noqa: E402

ROUNDS = 30
PROFILED = 10
_FLUSH = {}


def flush_l2() -> None:
    """Untimed: overwrite 256 MiB so that the inputs come from HBM (bitwise_not: a kernel name
    that no step here launches, so the profiler rows can leave it out)."""
    if "buf" not in _FLUSH:
        _FLUSH["buf"] = torch.zeros(64 * 1024 * 1024, dtype=torch.int32, device="cuda")
    _FLUSH["buf"].bitwise_not_()


def wall_ms(step) -> float:
    times = []
    for _ in range(ROUNDS + 2):
        flush_l2()
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        step()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times[2:]) * 1e3


def device_profile(step):
    """(device ms per step, device events per step, [(name, ms per step)] largest three)."""
    from torch.profiler import ProfilerActivity, profile
    step()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(PROFILED):
            flush_l2()
            step()
        torch.cuda.synchronize()
    total_us, count, per_name = 0.0, 0, {}
    for e in prof.events():
        if e.device_type != torch.autograd.DeviceType.CUDA or "bitwise_not" in e.name:
            continue
        us = e.time_range.elapsed_us()
        total_us += us
        count += 1
        per_name[e.name] = per_name.get(e.name, 0.0) + us
    top = sorted(per_name.items(), key=lambda kv: -kv[1])[:3]
    return (total_us / PROFILED / 1e3, count / PROFILED,
            [(name[:60], us / PROFILED / 1e3) for name, us in top])


def through_custom_ops(fn):
    """fn with direct calls off: every op through its torch.library custom op (ops/_direct.py)."""
    def wrapped(*args):
        previous = _direct.set_direct_calls(False)
        try:
            return fn(*args)
        finally:
            _direct.set_direct_calls(previous)
    return wrapped


def weighted_ce_cases():
    for shape, dtype in [((1, 2, 8, 8), torch.float32), ((16, 2, 128, 128), torch.float32), ((4, 2, 112, 112, 80), torch.float32),
                         ((4, 2, 112, 112, 80), torch.bfloat16), ((8, 14, 256, 256), torch.float32)]:
        x, y, w = bw.make(shape, "cuda", dtype)
        nbytes = roofline.weighted_ce_bytes(shape, str(dtype).replace("torch.", ""))
        impls = [("fused", bw.fused_loss), ("eager", bw.eager_loss)]
        if shape[0] == 1 or len(shape) == 5 and dtype == torch.float32:
            impls.insert(1, ("fused-op", through_custom_ops(bw.fused_loss)))
        for name, fn in impls:
            def step(fn=fn, x=x, y=y, w=w):
                x.grad = None
                fn(x, y, w).backward()
            yield f"weighted_ce {shape} {str(dtype)[6:]}", name, step, nbytes


def pint_cases():
    for key, (T, N, C, spatial) in bp.SHAPES.items():
        g = torch.Generator().manual_seed(0)
        teacher = (torch.randn(T, N, C, *spatial, generator=g) * 2).cuda()
        student = (torch.randn(N, C, *spatial, generator=g) * 2).cuda().requires_grad_()
        target = torch.randint(0, C, (N, *spatial), generator=g).cuda()
        nbytes = (roofline.pint_bytes(T, N, C, spatial), roofline.pint_op_bytes(T, N, C, spatial))
        for name, fn in [("fused", bp.fused_loss), ("fused-op", through_custom_ops(bp.fused_loss)),
                         ("streaming", bp.streaming_loss), ("eager", bp.eager_loss)]:
            def step(fn=fn, teacher=teacher, student=student, target=target):  # bound now: the
                student.grad = None  # steps run after every case is made (a late binding timed 3D twice)
                fn(teacher, student, target, bp.THRESHOLD, bp.KEEP_RATIO, bp.WEIGHT).backward()
            yield f"pint {key} T={T} N={N}", name, step, nbytes


def other_cases():
    masks = torch.rand(16, 256, 256, device="cuda") > 0.7
    nbytes = roofline.morphology_bytes(16, (256, 256))
    yield "dilate box r=1 16x256^2", "fused", lambda: noisyseg_ext.dilate(masks, 1, structure="box"), nbytes
    yield "dilate box r=1 16x256^2", "max_pool", lambda: torch.nn.functional.max_pool2d(
        masks[:, None].half(), 3, 1, 1)[:, 0] > 0, nbytes
    labels = (torch.rand(4, 128, 128, 128, device="cuda") > 0.5).to(torch.uint8)
    pred = noisyseg_ext.dilate(labels.bool(), 2, structure="ball").to(torch.uint8)
    yield "hd95 4x128^3", "fused", lambda: M.hausdorff(pred, labels, num_classes=2, percentile=95), 2 * labels.numel()


def main() -> None:
    if not torch.cuda.is_available():
        print("gpu_profile: no CUDA device")
        return
    ceiling = roofline.measure_copy_gbs()
    print(f"device: {torch.cuda.get_device_name()}; device-to-device copy {ceiling:.0f} GB/s (read + write)")
    cases = []
    groups = os.environ.get("GPU_PROFILE_CASES", "weighted_ce pint other").split()  # a subset: fewer device seconds
    for make_cases in [globals()[f"{g}_cases"] for g in groups]:
        try:
            cases.extend(make_cases())
        except Exception as exc:
            print(f"{make_cases.__name__} failed: {type(exc).__name__}: {str(exc)[:200]}")
    # Every wall time before the first profiler session: once CUPTI is attached, launches may stay
    # slower for the rest of the process (the first run of this script timed walls between
    # profiles and got about twice the pytest-benchmark medians).
    walls = {}
    for case, impl, step, _ in cases:
        try:
            walls[case, impl] = wall_ms(step)
        except Exception as exc:  # keep timing the other cases
            walls[case, impl] = exc
    print(f"{'case':34s} {'impl':9s} {'wall ms':>8s} {'dev ms':>8s} {'kern':>5s} {'GB/s':>6s} {'%copy':>6s}  top kernels (ms/step)")
    for case, impl, step, nbytes in cases:
        try:
            wall = walls[case, impl]
            if isinstance(wall, Exception):
                raise wall
            dev, kern, top = device_profile(step)
            floor, op_floor = nbytes if isinstance(nbytes, tuple) else (nbytes, None)
            gbs = floor / (dev * 1e-3) / 1e9 if dev > 0 else float("nan")
            tops = "; ".join(f"{n} {ms:.3f}" for n, ms in top)
            if op_floor:  # PINT: also against the floor op by op (roofline.pint_op_bytes)
                tops = f"[op by op: {100 * op_floor / (dev * 1e-3) / 1e9 / ceiling:.1f}% of copy]  " + tops
            print(f"{case:34s} {impl:9s} {wall:8.3f} {dev:8.3f} {kern:5.1f} {gbs:6.0f} {100 * gbs / ceiling:5.1f}%  {tops}")
        except Exception as exc:  # keep profiling the other cases
            print(f"{case:34s} {impl:9s} failed: {type(exc).__name__}: {str(exc)[:150]}")

if __name__ == "__main__":
    main()
