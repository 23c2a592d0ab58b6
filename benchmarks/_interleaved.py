"""Interleaved timing: every case once a round, in turn, for many rounds.

pytest-benchmark times a group's cases one after the other; on a shared 2-core VM the load (and
the host's page-fault cost, which came and went in runs of rounds: docs/performance-notes.md)
then falls on one case and not the other, and a ratio of two medians taken minutes apart can
swing 2x. Run in turn within each round, the cases share the load, and the median of the
per-round ratios is the steadiest figure. The benchmark modules' script modes use this, e.g.
``cd benchmarks && python test_bench_pint.py --rounds 200``.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from typing import Callable, Optional

import torch

from _devices import sync
from noisyseg_ext.ops import _kernels

# name -> (step function taking the round index, CPU variant to run it under or None)
Cases = dict[str, tuple[Callable[[int], object], Optional[str]]]


def time_interleaved(cases: Cases, rounds: int, warmup: int = 3, device: str = "cpu") -> dict[str, list[float]]:
    """Seconds per call of each case, ``warmup`` untimed rounds first; the per-round lists are
    aligned (entry k of every case is from round k)."""
    times: dict[str, list[float]] = {k: [] for k in cases}
    order = list(cases.items())
    for i in range(warmup + rounds):
        # each round starts one case later: none always follows the same one (cache, allocator)
        for name, (fn, isa) in order[i % len(order):] + order[:i % len(order)]:
            with _kernels.use_cpu_isa(isa) if isa else contextlib.nullcontext():
                t0 = time.perf_counter()
                fn(i)
                sync(device)
                t = time.perf_counter() - t0
            if i >= warmup:
                times[name].append(t)
    return times


def report(times: dict[str, list[float]], baseline: str, title: str) -> str:
    """Lines: per case min / median ms, the ratios of the baseline's to them, and the median and
    the 10th-90th percentile range of the per-round ratios (baseline time / case time)."""
    ref = times[baseline]
    lines = [title]
    for name, v in times.items():
        r = sorted(b / t for b, t in zip(ref, v))
        p10, p90 = r[len(r) // 10], r[(len(r) * 9) // 10]
        lines.append(f"  {name:34s} min {min(v) * 1e3:8.3f} ms  median {statistics.median(v) * 1e3:8.3f} ms  "
                     f"{baseline} / this: medians {statistics.median(ref) / statistics.median(v):5.2f}x, "
                     f"per round {statistics.median(r):5.2f}x (p10-p90 {p10:4.2f}-{p90:4.2f}x)")
    return "\n".join(lines)


def parse_args(description: str) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--rounds", type=int, default=100)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    return a


def variant_cases(name: str, fn: Callable[[int], object]) -> Cases:
    """``fn`` once under each CPU variant this machine runs, named ``name [variant]``."""
    return {f"{name} [{isa}]": (fn, isa) for isa in _kernels.cpu_isas()[::-1]} if _kernels.cpu_isas() \
        else {name: (fn, None)}
