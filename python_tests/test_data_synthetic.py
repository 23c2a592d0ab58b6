"""synthetic_dataset: shapes, classes, determinism, and that its classes are visible in the image."""

import torch
import torch.nn.functional as F

from noisyseg_ext.data import synthetic_dataset
from noisyseg_ext.noise.overlap import dice_per_sample


def test_shapes_2d_3d_and_channels():
    d2 = synthetic_dataset(3, (20, 28), num_classes=3, channels=2, seed=1)
    assert len(d2) == 3 and d2.dims == 2 and d2.in_channels == 2 and d2.num_classes == 3
    assert d2.images[0].shape == (2, 20, 28) and d2.images[0].dtype == torch.float32
    assert d2.masks[0].shape == (20, 28) and d2.masks[0].dtype == torch.uint8
    assert set(torch.cat([m.flatten() for m in d2.masks]).unique().tolist()) == {0, 1, 2}
    d3 = synthetic_dataset(2, (12, 14, 10))
    assert d3.images[1].shape == (1, 12, 14, 10) and d3.masks[1].shape == (12, 14, 10) and d3.dims == 3
    assert d3.spacings[0] == (1.0, 1.0, 1.0) and d3.names == ["synthetic_000", "synthetic_001"]
    assert all(0.02 < float((m != 0).float().mean()) < 0.6 for m in d3.masks)


def test_deterministic_and_prefix_stable():
    a, b = synthetic_dataset(4, (16, 16), seed=3), synthetic_dataset(2, (16, 16), seed=3)
    assert torch.equal(a.images[1], b.images[1]) and torch.equal(a.masks[1], b.masks[1])
    assert not torch.equal(a.masks[1], synthetic_dataset(2, (16, 16), seed=4).masks[1])


def test_foreground_is_brighter_than_background():
    # A 3 x 3 mean (one convolution's reach) and a threshold give Dice > 0.85: the task is learnable.
    # The pixel noise and the intensity ramp keep a plain threshold well below that.
    data = synthetic_dataset(6, (32, 32), seed=0)
    image, mask = torch.stack([x[0] for x in data.images]), torch.stack(data.masks).long()
    cut = 0.5 * (image[mask == 1].mean() + image[mask == 0].mean())
    assert float(dice_per_sample((image > cut).long(), mask).mean()) < 0.8
    smooth = F.avg_pool2d(image[:, None], 3, 1, 1)[:, 0]
    cut = 0.5 * (smooth[mask == 1].mean() + smooth[mask == 0].mean())
    assert float(dice_per_sample((smooth > cut).long(), mask).mean()) > 0.85
