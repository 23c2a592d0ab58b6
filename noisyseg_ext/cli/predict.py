"""`noisyseg predict`: the masks a checkpoint predicts for a folder of images.

Each input is prepared like the training run's images (its --size and --normalize), predicted
(sliding windows for volumes trained on patches), resized back to the input's own size (nearest
neighbour) and written under --out with the input's name: PNG inputs give PNG masks (0/255 for two
classes, else the class values), NIfTI inputs NIfTI masks with the input's affine, others .npy / .tif
as the input."""

from __future__ import annotations

import argparse
import os


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="a run's checkpoints/best.pt or last.pt")
    p.add_argument("--input", required=True, help="folder of images (nnU-Net channel files CASE_0000... stacked)")
    p.add_argument("--out", required=True, help="folder for the masks")
    p.add_argument("--model", default=None, choices=("student", "teacher"),
                   help="network (default: the one the run evaluated)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:K or auto (default auto)")
    p.add_argument("--quiet", action="store_true")


def run(args: argparse.Namespace) -> list[str]:
    import torch

    from noisyseg_ext.data import save_mask
    from noisyseg_ext.data.image_folder import load_image_folder
    from noisyseg_ext.data.mask_writer import mask_file_name
    from noisyseg_ext.data.transforms import resize_mask
    from noisyseg_ext.training.distributed import DistInfo, resolve_device
    from noisyseg_ext.training.inference import predict_logits
    from noisyseg_ext.training.restore import load_trained_net

    device = resolve_device(args.device, DistInfo())
    trained = load_trained_net(args.checkpoint, model=args.model, device=device)
    cfg, info = trained.config, trained.info
    images = load_image_folder(args.input, dims=info["dims"], channels=info["in_channels"], size=cfg.size,
                               normalize=cfg.normalize)
    os.makedirs(args.out, exist_ok=True)
    written = []
    patch = cfg.patch if info["dims"] == 3 else None
    with torch.no_grad():
        for item in images:
            logits = predict_logits(trained.net, item.image.to(device), multiple=info["size_multiple"], patch=patch,
                                    overlap=cfg.overlap)
            mask = logits.argmax(0).cpu()
            if tuple(mask.shape) != item.original_shape:
                mask = resize_mask(mask, item.original_shape)
            ending = item.ending if item.ending in (".png", ".nii", ".nii.gz", ".npy", ".tif", ".tiff") else ".png"
            path = os.path.join(args.out, mask_file_name(item.name, ending))
            save_mask(path, mask, affine=item.affine, num_classes=info["num_classes"])
            written.append(path)
    if not args.quiet:
        print(f"wrote {len(written)} mask(s) to {args.out}")
    return written
