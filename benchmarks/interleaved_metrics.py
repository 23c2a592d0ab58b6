"""HD95 / ASSD: noisyseg_ext vs MONAI in one process, calls interleaved (ours, MONAI, ours per
round), medians over the rounds: the ratio stays meaningful on a shared, noisy machine where
pytest-benchmark's group-by-group timing drifts with the load. Same masks and inputs as
test_bench_metrics.py (uint8 label maps for us, one-hot float32 for MONAI); asserts equal numbers.

    PYTHONPATH=. python benchmarks/interleaved_metrics.py [rounds] [label]
"""

import statistics
import sys
import time
import warnings

import torch

import noisyseg_ext
from test_bench_metrics import CASES, data, monai_metric, ours

warnings.filterwarnings("ignore", category=FutureWarning)


def main(rounds=7, label=""):
    for case in CASES:
        pred, ref, yp, y = data(case)
        for metric in ("hd95", "assd"):
            m = monai_metric(metric)
            torch.testing.assert_close(m(yp, y).float(), ours(metric, pred, ref), rtol=1e-5, atol=1e-4)
            t_ours, t_monai = [], []
            for _ in range(rounds):
                for timings, fn in ((t_ours, lambda: ours(metric, pred, ref)), (t_monai, lambda: m(yp, y)),
                                    (t_ours, lambda: ours(metric, pred, ref))):
                    t = time.perf_counter()
                    fn()
                    timings.append(time.perf_counter() - t)
            a, b = statistics.median(t_ours), statistics.median(t_monai)
            print(f"{label} {metric} {case}: ours {a * 1e3:.1f} ms  MONAI {b * 1e3:.1f} ms  ratio {b / a:.2f}x",
                  flush=True)
    mask = data("3d_4x128^3")[0] == 1
    t_edt = []
    for _ in range(rounds):
        t = time.perf_counter()
        noisyseg_ext.distance_transform(mask, spacing=(1.5, 0.8, 0.8))
        t_edt.append(time.perf_counter() - t)
    print(f"{label} distance_transform 4x128^3: {statistics.median(t_edt) * 1e3:.1f} ms", flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 7, sys.argv[2] if len(sys.argv) > 2 else "")
