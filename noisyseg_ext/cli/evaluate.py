"""`noisyseg eval`: a checkpoint's metrics on a dataset's clean labels (table + results.json)."""

from __future__ import annotations

import argparse
import os

from noisyseg_ext.errors import DataError

SPLITS = ("all", "train", "meta", "val", "test")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="a run's checkpoints/best.pt or last.pt")
    p.add_argument("--data", default=None, help="dataset (folder, nnU-Net folder or hc18-sample; default: the run's)")
    p.add_argument("--split", default=None, choices=SPLITS,
                   help="which images: a split of the run's splits.json (default test when --data is the run's "
                        "dataset) or all (default for another dataset)")
    p.add_argument("--model", default=None, choices=("student", "teacher"),
                   help="network to evaluate (default: the one the run evaluated)")
    p.add_argument("--out", default=None, help="folder for results.json (default: <run>/eval-<split>-<model>)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:K or auto (default auto)")
    p.add_argument("--eval-batch", type=int, default=8, help="images per inference batch (default 8)")
    p.add_argument("--quiet", action="store_true", help="no table")


def run(args: argparse.Namespace) -> dict:
    from noisyseg_ext.data import load_dataset, load_splits
    from noisyseg_ext.training import run_folder
    from noisyseg_ext.training.distributed import DistInfo, resolve_device
    from noisyseg_ext.training.evaluation import evaluate
    from noisyseg_ext.training.report import format_results_table
    from noisyseg_ext.training.restore import load_trained_net

    device = resolve_device(args.device, DistInfo())
    trained = load_trained_net(args.checkpoint, model=args.model, device=device)
    cfg = trained.config
    run_dir = os.path.dirname(os.path.dirname(os.path.abspath(args.checkpoint)))
    same_data = args.data is None or args.data == cfg.data
    split = args.split or ("test" if same_data else "all")
    data = load_dataset(args.data or cfg.data, size=cfg.size, subject_regex=cfg.subject_regex,
                        normalize=cfg.normalize)
    if data.in_channels != trained.info["in_channels"] or data.dims != trained.info["dims"]:
        raise DataError(f"{args.data or cfg.data}: {data.dims}D images with {data.in_channels} channel(s), but the "
                        f"network was trained on {trained.info['dims']}D images with {trained.info['in_channels']}")
    if data.num_classes > trained.info["num_classes"]:
        raise DataError(f"{args.data or cfg.data} has {data.num_classes} classes; the network predicts "
                        f"{trained.info['num_classes']}")
    data.num_classes = trained.info["num_classes"]
    if split != "all":
        splits_file = os.path.join(run_dir, "splits.json")
        if not os.path.isfile(splits_file):
            raise DataError(f"--split {split}: {splits_file} not found; use --split all")
        data = data.subset(load_splits(splits_file, data)[split])
    result = evaluate(trained.net, data, device=device, multiple=trained.info["size_multiple"],
                      patch=cfg.patch if trained.info["dims"] == 3 else None, overlap=cfg.overlap,
                      batch=args.eval_batch)
    results = {**result.mean, **{f"{k}_std": v for k, v in result.std.items()},
               "checkpoint": os.path.abspath(args.checkpoint), "model": trained.model, "steps": trained.step,
               "data": args.data or cfg.data, "split": split, "num_images": len(result.rows),
               "miou_includes_background": True, "per_image": result.rows}
    out = args.out or os.path.join(run_dir, f"eval-{split}-{trained.model}")
    os.makedirs(out, exist_ok=True)
    run_folder.write_json(os.path.join(out, "results.json"), results)
    if not args.quiet:
        print(format_results_table(results, title=f"{trained.model} of {args.checkpoint} on {results['data']} "
                                                  f"({split}, {len(result.rows)} images)"))
        print(f"results: {os.path.join(out, 'results.json')}")
    return results
