"""Mean Dice(noisy, clean) of the corrupted samples, per protocol and noise ratio.

    python -m noisyseg_ext.noise.report --data /work/shared/data/hc18
    python -m noisyseg_ext.noise.report --data DIR --split train --size 108 160 \\
        --protocols dilation erode_dilate --ratios 0.2 0.6 --seed 1 --param dilation.iterations=3,8

Prints a Markdown table. Protocols whose implementation is missing from this installation
(``elastic`` without noisyseg_ext.ops.elastic) are skipped with a note unless named explicitly.
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import math
import sys
import time
from typing import Any, Optional, Sequence

import torch
from torch import Tensor

from noisyseg_ext.noise.overlap import dice_per_sample
from noisyseg_ext.noise.protocols import DEFAULTS, PROTOCOLS, corrupt_labels, resolve_params

DEFAULT_RATIOS = (0.2, 0.4, 0.6, 0.8)


def elastic_available() -> bool:
    try:
        return importlib.util.find_spec("noisyseg_ext.ops.elastic") is not None
    except ModuleNotFoundError:
        return False


def noise_table(masks: Tensor, protocols: Sequence[str] = PROTOCOLS, ratios: Sequence[float] = DEFAULT_RATIOS,
                *, seed: int = 0, params: Optional[dict[str, dict[str, Any]]] = None) -> list[dict[str, Any]]:
    """One row per (protocol, ratio): corrupted count and the mean / std / min Dice(noisy, clean)
    over the corrupted samples (samples with an empty clean mask excluded, as NaN Dice)."""
    rows = []
    for protocol in protocols:
        extra = (params or {}).get(protocol, {})
        for ratio in ratios:
            start = time.perf_counter()
            noisy, records = corrupt_labels(masks, protocol, ratio, seed=seed, **extra)
            seconds = time.perf_counter() - start
            hit = torch.tensor([r.corrupted for r in records], dtype=torch.bool)
            d = dice_per_sample(noisy[hit.to(noisy.device)], masks[hit.to(masks.device)]).cpu()
            d = d[~torch.isnan(d)]
            rows.append({"protocol": protocol, "ratio": ratio, "corrupted": int(hit.sum()), "total": len(records),
                         "mean": float(d.mean()) if len(d) else math.nan,
                         "std": float(d.std()) if len(d) > 1 else math.nan,
                         "min": float(d.min()) if len(d) else math.nan, "seconds": seconds,
                         "params": resolve_params(protocol, extra)})
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    lines = ["| protocol | parameters | ratio | corrupted / total | mean Dice(noisy, clean) | std | min |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        p = ", ".join(f"{k}={v[0] if isinstance(v, tuple) and v[0] == v[1] else v}" for k, v in r["params"].items())
        lines.append(f"| {r['protocol']} | {p} | {r['ratio']:.2f} | {r['corrupted']} / {r['total']} | "
                     f"{r['mean']:.4f} | {r['std']:.4f} | {r['min']:.4f} |")
    return "\n".join(lines)


def _parse_params(items: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``protocol.name=value`` (value as a Python literal; ``3,8`` -> (3, 8))."""
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        key, _, value = item.partition("=")
        protocol, _, name = key.partition(".")
        if not name or not value:
            raise SystemExit(f"--param expects protocol.name=value; got {item!r}")
        try:
            parsed = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            parsed = value
        out.setdefault(protocol, {})[name] = tuple(parsed) if isinstance(parsed, list) else parsed
    return out


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m noisyseg_ext.noise.report", description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="HC18-style folder with images/ and masks/")
    ap.add_argument("--split", default=None, choices=["train", "val", "test"], help="default: every mask")
    ap.add_argument("--size", type=int, nargs=2, default=None, metavar=("H", "W"), help="resize masks (nearest)")
    ap.add_argument("--protocols", nargs="+", default=None, choices=list(PROTOCOLS))
    ap.add_argument("--ratios", type=float, nargs="+", default=list(DEFAULT_RATIOS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--param", action="append", default=[], help="protocol.name=value, e.g. dilation.iterations=3,8")
    args = ap.parse_args(argv)

    from noisyseg_ext.data.hc18 import load_hc18

    masks = load_hc18(args.data, args.split, size=tuple(args.size) if args.size else None).masks.to(args.device)
    protocols = args.protocols
    if protocols is None:
        protocols = [p for p in PROTOCOLS if p != "elastic" or elastic_available()]
        if "elastic" not in protocols:
            print("note: 'elastic' skipped: noisyseg_ext.ops.elastic is not in this installation", file=sys.stderr)
    rows = noise_table(masks, protocols, args.ratios, seed=args.seed, params=_parse_params(args.param))
    shape = "x".join(str(s) for s in masks.shape[1:])
    print(f"Mean Dice(noisy, clean) of the corrupted masks: {args.data} "
          f"({args.split or 'all'} masks, {len(masks)} of {shape}), seed {args.seed}\n")
    print(format_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
