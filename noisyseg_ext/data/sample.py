"""The HC18 sample embedded in the package, so that demos and smoke tests run anywhere.

64 fetal-head ultrasound images with their expert masks, one image per subject (every 12th
subject of the HC18 Grand Challenge training set), resized from 320x216 to 160x108.
Source: HC18 challenge (Zenodo record 1327317), CC BY 4.0. T. L. A. van den Heuvel, D. de Bruijn,
C. L. de Korte, B. van Ginneken, "Automated measurement of fetal head circumference using 2D
ultrasound images", PLoS ONE 13(8): e0200412, 2018.
"""

from __future__ import annotations

from importlib import resources

import numpy as np
import torch


def load_hc18_sample() -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Returns (images (64, 1, 108, 160) float32 in [0, 1], masks (64, 108, 160) uint8 in {0, 1},
    file names)."""
    with resources.files("noisyseg_ext.data").joinpath("hc18_sample.npz").open("rb") as f:
        data = np.load(f)
        images = torch.from_numpy(data["images"]).float().div_(255).unsqueeze(1)
        masks = torch.from_numpy(data["masks"])
        names = [str(n) for n in data["names"]]
    return images, masks, names
