"""Memory-roofline accounting for the benchmarks, and the table that benchmarks/gpu_check.sh prints.

Two halves:

* the byte counts (``*_bytes``) and :func:`tag`, called by the benchmark files: every benchmark
  stores in pytest-benchmark's ``extra_info`` what it ran (op, case, dtype, device, GPU name,
  implementation, whether it is ours) and the fewest bytes the op must move through device
  memory, so a ``--benchmark-json`` file is self-contained;
* the report (``python benchmarks/roofline.py bench*.json``): per group (op, case, dtype, device),
  our median, each baseline's median, baseline / ours, achieved GB/s = min_bytes / our median,
  and that as % of the card's peak HBM bandwidth (H100 SXM 3.35 TB/s, H100 PCIe 2.0 TB/s,
  H200 4.8 TB/s; --peak-gbs overrides; unknown device or CPU: n/a). With a GPU present it also
  times a 1 GiB device-to-device copy (bytes read + written) and reports % of that measured ceiling.

"Fewest bytes" (METHOD.md): each input the op needs read once from HBM, each output written once;
no intermediate, no re-read. That is a floor, not what a multi-kernel implementation moves: the
counts below say where a real implementation must move more. Sizes use the benchmark's dtypes
(int64 targets: 8 bytes a label, as the user passes them).

The module imports only the standard library at the top (torch only for the copy measurement),
so the report runs anywhere the JSON is.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import defaultdict

# --------------------------------------------------------------------------------------------
# byte counts

_DTYPE_BYTES = {"float64": 8, "float32": 4, "bfloat16": 2, "float16": 2, "int64": 8, "int32": 4,
                "uint8": 1, "bool": 1}


def dtype_bytes(dtype) -> int:
    return _DTYPE_BYTES[str(dtype).replace("torch.", "")]


def weighted_ce_bytes(shape, dtype, label_dtype="int64", weight=True) -> int:
    """weighted_ce forward + backward, logits (N, C, *spatial), reduction "mean":
    read logits N*C*S*e, target N*S*l, weight N*S*e; write grad_logits N*C*S*e (the scalar loss
    is negligible). The floor needs forward and backward in one pass (the gradient of a mean
    reduction is known up to the scalar grad_output); a separate backward kernel that re-reads
    logits, target and weight moves 2*(N*C*S*e + N*S*(l + e)) + N*C*S*e."""
    n, c, *sp = shape
    s = math.prod(sp)
    e, l = dtype_bytes(dtype), dtype_bytes(label_dtype)
    return n * c * s * e + n * s * l + (n * s * e if weight else 0) + n * c * s * e


def pint_bytes(t, n, c, spatial, dtype="float32", label_dtype="int64") -> int:
    """PINT step = mc_uncertainty over T teacher passes + pint_loss forward + backward:
    read the T teacher passes once T*N*C*S*e, the student N*C*S*e, the target N*S*l; write
    grad_student N*C*S*e (loss scalar negligible; mean_prob / uncertainties are intermediates the
    caller does not keep in this benchmark). Note: the image gate (keep_ratio over the per-image
    mean uncertainty) depends on every teacher pixel of an image, so a real implementation has a
    second pass: storing mean_prob + u in float32 and reading them back adds 2*(N*C*S + N*S)*4 bytes
    (the fused kernels do this), re-reading the teacher instead adds T*N*C*S*e."""
    s = math.prod(spatial)
    e, l = dtype_bytes(dtype), dtype_bytes(label_dtype)
    return t * n * c * s * e + n * c * s * e + n * s * l + n * c * s * e


def pint_op_bytes(t, n, c, spatial, dtype="float32", label_dtype="int64") -> int:
    """The same PINT step counted op by op, as the public API runs it (each op's inputs read once,
    its outputs written once): mc_uncertainty reads the T passes and writes mean_prob (N, C, S)
    and u (N, S) in float32; pint_loss forward + backward reads the student, the target,
    mean_prob and u, writes the gate (N, S) bool and grad_student. The floor of any implementation
    that keeps the two ops (the image gate needs every pixel's u before the loss: pint_bytes' note)."""
    s = math.prod(spatial)
    e, l = dtype_bytes(dtype), dtype_bytes(label_dtype)
    mc = t * n * c * s * e + (n * c * s + n * s) * 4
    loss = n * c * s * e + n * s * l + (n * c * s + n * s) * 4 + n * s + n * c * s * e
    return mc + loss


def morphology_bytes(n, spatial, dtype="bool") -> int:
    """dilate / erode: read the masks once, write the result once, N*S bytes each for bool.
    (Radius-r structures done as several passes, or a multi-plane stack, move more.)"""
    return 2 * n * math.prod(spatial) * dtype_bytes(dtype)


def elastic_bytes(n, spatial, dtype, points=3) -> int:
    """elastic_deform: read the image / label map once, write the deformed one once (N*S*e each),
    plus the control grids N*D*P^D float64 (negligible). The dense displacement field is an
    intermediate (recomputed per voxel from the grid in the floor; for order 3 the image
    prefilter is another read + write of N*S*4)."""
    d = len(spatial)
    return 2 * n * math.prod(spatial) * dtype_bytes(dtype) + n * d * points ** d * 8


def tag(benchmark, *, op: str, case: str, dtype, device: str, impl: str, ours: bool, min_bytes: int) -> None:
    """Record what a benchmark ran in its JSON extra_info (read by the report below)."""
    import _devices  # sibling module; torch imported there
    benchmark.extra_info.update(op=op, case=case, dtype=str(dtype).replace("torch.", ""), device=device,
                                device_name=_devices.device_name(device), impl=impl, ours=bool(ours),
                                min_bytes=int(min_bytes))


# elasticdeform.deform_grid (CPU, single-threaded C) medians on the benchmark's shapes, from
# benchmarks/RESULTS.md (2-core AMD EPYC, elasticdeform 0.5.1): the smallest median any run there
# measured per case (the conservative baseline for a "GPU >= 100x elasticdeform" ratio). The GPU
# machine has no elasticdeform, so the CUDA elastic rows are compared against these; on a machine
# with elasticdeform the CPU groups carry the measured baseline instead.
ELASTICDEFORM_REF_S = {
    ("2d_16x256x256", "order 0"): 0.156, ("2d_16x256x256", "order 3"): 0.236,
    ("3d_1x128x128x128", "order 0"): 1.78, ("3d_1x128x128x128", "order 3"): 2.38,
    ("3d_4x112x112x80", "order 0"): 4.26, ("3d_4x112x112x80", "order 3"): 4.55,
}

# MONAI 1.6.1 HausdorffDistanceMetric(percentile=95) / SurfaceDistanceMetric(symmetric=True) CPU
# medians on the metrics benchmark's masks, from benchmarks/RESULTS.md (same machine as above):
# the smallest median measured there per case, the baseline of "GPU >= 50x MONAI's CPU path".
MONAI_REF_S = {
    ("3d_4x128^3", "hd95"): 0.283, ("3d_4x128^3", "assd"): 0.260,
    ("2d_64x256^2", "hd95"): 0.449, ("2d_64x256^2", "assd"): 0.440,
}

# --------------------------------------------------------------------------------------------
# report


def peak_gbs(name: str):
    """Datasheet HBM bandwidth in GB/s from a device name, None when unknown (or CPU)."""
    u = name.upper()
    if "H200" in u:
        return 4800.0
    if "H100" in u:
        return 2000.0 if "PCIE" in u else 3900.0 if "NVL" in u else 3350.0
    return None


def measure_copy_gbs(nbytes=1 << 30, reps=20):
    """Device-to-device copy bandwidth (bytes read + written), median of reps; None without CUDA."""
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    src = torch.empty(nbytes // 4, dtype=torch.int32, device="cuda").random_()
    dst = torch.empty_like(src)
    for _ in range(3):
        dst.copy_(src)
    times = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        dst.copy_(src)
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b) / 1e3)
    times.sort()
    return 2 * nbytes / times[len(times) // 2] / 1e9


def load(paths):
    """[(extra_info, median seconds, rounds)] of every tagged benchmark in the JSON files."""
    rows = []
    for p in paths:
        try:
            with open(p) as f:
                data = json.load(f)
        except (OSError, ValueError) as e:
            print(f"roofline: skipping {p}: {e}", file=sys.stderr)
            continue
        for b in data.get("benchmarks", []):
            info = b.get("extra_info") or {}
            if "op" in info and b.get("stats"):
                rows.append((info, b["stats"]["median"], b["stats"].get("rounds")))
    return rows


def _ms(s):
    if s is None:
        return "-"
    ms = s * 1e3
    return f"{ms:.4f}" if ms < 1 else (f"{ms:.3f}" if ms < 100 else f"{ms:.1f}")


def table(rows, peak_override=None, copy_gbs=None):
    """Lines of the report table (one line per ours x baseline pair of a group)."""
    groups = defaultdict(lambda: {"ours": [], "base": []})
    for info, med, rounds in rows:
        key = (info["op"], info["case"], info["dtype"], info["device"])
        groups[key]["ours" if info.get("ours") else "base"].append((info, med))
    head = ["op", "case", "dtype", "dev", "ours", "ours ms", "baseline", "base ms", "base/ours", "GB/s",
            "%peak"] + (["%copy"] if copy_gbs else [])
    out = [head]
    for key in sorted(groups):
        op, case, dtype, dev = key
        g = groups[key]
        base = list(g["base"])
        if dev == "cuda" and op.startswith("elastic"):
            ref = ELASTICDEFORM_REF_S.get((case, op.split(" ", 1)[1] if " " in op else ""))
            if ref is not None and not any(i["impl"].startswith("elasticdeform") for i, _ in base):
                base.append(({"impl": "elasticdeform CPU (RESULTS.md ref)"}, ref))
        if dev == "cuda" and op.startswith("metrics "):
            ref = MONAI_REF_S.get((case, op.split(" ", 1)[1]))
            if ref is not None and not any(i["impl"].startswith("MONAI") for i, _ in base):
                base.append(({"impl": "MONAI CPU (RESULTS.md ref)"}, ref))
        for info, med in g["ours"] or [({"impl": "-", "min_bytes": 0, "device_name": ""}, None)]:
            gbs = info.get("min_bytes", 0) / med / 1e9 if med else None
            peak = peak_override or peak_gbs(info.get("device_name", ""))
            pct = f"{100 * gbs / peak:.0f}%" if gbs and peak and (dev == "cuda" or peak_override) else "n/a"
            pct_copy = [f"{100 * gbs / copy_gbs:.0f}%" if gbs and dev == "cuda" else "n/a"] if copy_gbs else []
            for binfo, bmed in base or [({"impl": "-"}, None)]:
                ratio = f"{bmed / med:.2f}x" if bmed and med else "-"
                out.append([op, case, dtype, dev, info["impl"], _ms(med), binfo["impl"], _ms(bmed), ratio,
                            "-" if gbs is None else (f"{gbs:.0f}" if gbs >= 10 else f"{gbs:.2f}"), pct] + pct_copy)
    widths = [max(len(str(r[i])) for r in out) for i in range(len(head))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in out]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


def _impl_label(info) -> str:
    """The implementation with its CPU variant: "fused-avx2" / "fused" on avx512 -> "fused [avx2]" / "fused [avx512]"."""
    impl, isa = info["impl"], info.get("cpu_isa")
    if not isa or "[" in impl:
        return impl
    base = impl[: -len(isa) - 1] if impl.endswith("-" + isa) else impl
    return f"{base} [{isa}]"


def markdown(rows) -> list[str]:
    """Markdown tables, the form of benchmarks/RESULTS.md: one table per op family (the op's first
    word, e.g. "dilate", "pint"), a row per (op, case, dtype, device), a column per implementation:
    its median in ms and, for ours, the reference baseline's median divided by it (the reference:
    the eager one, else the first baseline)."""
    families = defaultdict(lambda: defaultdict(dict))
    for info, med, rounds in rows:
        key = (info["op"], info["case"], info["dtype"], info["device"])
        families[info["op"].split(" ")[0]][key][_impl_label(info)] = (info, med)
    out = []
    for fam in sorted(families):
        groups = families[fam]
        impls = {}
        for g in groups.values():
            for label, (info, _) in g.items():
                impls.setdefault(label, bool(info.get("ours")))
        cols = sorted(impls, key=lambda k: (not impls[k], k))
        out += ["", f"| {fam}: op, case | " + " | ".join(cols) + " |", "| --- " * (len(cols) + 1) + "|"]
        for key in sorted(groups):
            g = groups[key]
            bases = [v for k, v in g.items() if not impls[k]]
            ref = next((v for k, v in g.items() if not impls[k] and "eager" in k), bases[0] if bases else None)
            cells = []
            for c in cols:
                if c not in g:
                    cells.append("")
                    continue
                med = g[c][1]
                ratio = f" ({ref[1] / med:.2f}x)" if impls[c] and ref and med else ""
                cells.append(f"{_ms(med)}{ratio}")
            op, case, dtype, dev = key
            out.append(f"| {op} {case} {dtype} {dev} | " + " | ".join(cells) + " |")
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("json", nargs="+", help="pytest-benchmark --benchmark-json files")
    ap.add_argument("--peak-gbs", type=float, default=None, help="override the peak bandwidth (GB/s)")
    ap.add_argument("--no-copy", action="store_true", help="do not time a device-to-device copy")
    ap.add_argument("--markdown", action="store_true", help="print markdown tables instead: per op family, ms and (reference baseline / ours) per implementation (RESULTS.md)")
    ap.add_argument("--save-merged", metavar="PATH", help="also write the benchmarks of all the JSON files into one")
    args = ap.parse_args(argv)
    if args.save_merged:
        merged = None
        for p in args.json:
            try:
                with open(p) as f:
                    d = json.load(f)
            except (OSError, ValueError):
                continue
            if merged is None:
                merged = d
            else:
                merged.setdefault("benchmarks", []).extend(d.get("benchmarks", []))
        with open(args.save_merged, "w") as f:
            json.dump(merged or {"benchmarks": []}, f, indent=1)
    rows = load(args.json)
    if args.markdown:
        print("\n".join(markdown(rows)))
        return 0
    names = sorted({i.get("device_name", "?") for i, _, _ in rows if i.get("device") == "cuda"})
    for n in names:
        p = args.peak_gbs or peak_gbs(n)
        print(f"device: {n}; peak HBM bandwidth used: {f'{p:.0f} GB/s' if p else 'unknown (pass --peak-gbs)'}")
    if not names:
        print("device: no CUDA benchmarks in the JSON (CPU rows: % of peak is n/a unless --peak-gbs)")
    copy_gbs = None if args.no_copy else measure_copy_gbs()
    if copy_gbs:
        print(f"measured device-to-device copy: {copy_gbs:.0f} GB/s (read + write)")
    print("GB/s = fewest bytes the op must move (benchmarks/roofline.py) / our median; "
          "base/ours > 1: ours is faster")
    for line in table(rows, args.peak_gbs, copy_gbs):
        print(line)
    if not rows:
        print("(no tagged benchmarks found)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
