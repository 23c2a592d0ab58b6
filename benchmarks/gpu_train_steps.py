"""GPU check: training steps of every method on CUDA must not wait for the device.

    python benchmarks/gpu_train_steps.py            # exits non-zero if any method failed
    python benchmarks/gpu_train_steps.py --device cpu   # the same steps without the sync check

For each method, a Trainer on the embedded HC18 sample (64 x 96, a small U-Net with dropout): a few
``Trainer._train_step`` calls on batches already on the GPU run under
``torch.cuda.set_sync_debug_mode("error")``, so any operation that synchronises the host with the
device (``.item()``, a device-to-host copy, a label check read back) raises; then a short
``Trainer.fit()`` (which reads the loss back at its logging steps only) runs end to end. The
fp16 GradScaler reads its inf check back in every step by design, so the sync check runs in float32
and bf16 only. Needs a CUDA device; prints one line per method and exits 1 if any failed.
"""

from __future__ import annotations

import sys
import tempfile
import traceback

import torch

METHODS = ("baseline", "clean", "mwnet", "l2rw", "mcpm", "uamt", "pnt", "int", "pint")


def check(method: str, amp: str, root: str, device: str = "cuda") -> None:
    from noisyseg_ext.training import Trainer, make_config

    cfg = make_config(method=method, data="hc18-sample", size=(64, 96), base=8, depth=4, batch=4, steps=8,
                      eval_every=8, log_every=4, dropout=0.1, amp=amp, device=device, quiet=True,
                      out=f"{root}/{method}-{amp}", overwrite=True, gate_warmup_steps=2)
    trainer = Trainer(cfg)
    batches = [trainer._to_device(trainer.train_set.fixed_batch(list(range(i, i + 4)))) for i in (0, 4, 8)]
    from noisyseg_ext.ops import label_checks

    with label_checks.label_check_mode("deferred"):
        trainer._train_step(batches[0], 0)  # warm-up outside the check (first-call allocations, cuDNN)
        cuda = device == "cuda"
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.set_sync_debug_mode("error")
        try:
            for step, batch in enumerate(batches[1:] * 2, start=1):
                trainer._train_step(batch, step)
        finally:
            if cuda:
                torch.cuda.set_sync_debug_mode("default")
        label_checks.check_deferred()
    Trainer(cfg.replace(out=f"{root}/{method}-{amp}-fit")).fit()


def main() -> int:
    # --device cpu runs the same code without the sync check (to try the script on a machine without a GPU)
    device = sys.argv[sys.argv.index("--device") + 1] if "--device" in sys.argv else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        print("gpu_train_steps: no CUDA device")
        return 1
    failed = []
    with tempfile.TemporaryDirectory() as root:
        for amp in ("off", "bf16") if device == "cuda" else ("off",):
            for method in METHODS:
                try:
                    check(method, amp, root, device)
                    print(f"ok    {method:8s} amp={amp}")
                except Exception:  # report every method, then fail
                    failed.append(f"{method} amp={amp}")
                    print(f"FAIL  {method:8s} amp={amp}\n{traceback.format_exc()}")
    print(f"gpu_train_steps: {len(failed)} failed" + (f": {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
