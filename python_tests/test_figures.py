"""Figures: each writes a PNG that PIL opens; contours are drawn in the right colours where expected;
3D inputs, CSV-style rows and empty inputs."""

import math

import numpy as np
import pytest
import torch
from PIL import Image

from noisyseg_ext.figures import (foreground_dice, moving_average, plot_corruption, plot_overlays, plot_progress,
                                  plot_ratio_curves, select_slice)


def open_png(path):
    with Image.open(path) as im:
        assert im.format == "PNG"
        return np.asarray(im.convert("RGB")).astype(int)


def pure(rgb, channel):
    """Mask of pixels that are pure-ish red (channel 0) or green (channel 1)."""
    others = [c for c in range(3) if c != channel]
    return (rgb[..., channel] > 200) & (rgb[..., others[0]] < 60) & (rgb[..., others[1]] < 60)


def square(size, lo, hi, dims=2):
    m = torch.zeros((size,) * dims, dtype=torch.long)
    m[(slice(lo, hi),) * dims] = 1
    return m


def test_overlay_colours_where_expected(tmp_path):
    """GT square on the left half, prediction square on the right half: green pixels only on the
    left, red only on the right; the image is uniform grey so the colours come from the contours."""
    gt = torch.zeros(32, 32, dtype=torch.long)
    gt[8:24, 2:12] = 1
    pred = torch.zeros(32, 32, dtype=torch.long)
    pred[8:24, 20:30] = 1
    image = torch.zeros(1, 32, 32)
    path = plot_overlays([image], [pred], [gt], [0.0], str(tmp_path / "overlay.png"))
    rgb = open_png(path)
    green, red = pure(rgb, 1), pure(rgb, 0)
    assert green.sum() > 50 and red.sum() > 50
    cols_green, cols_red = np.nonzero(green)[1], np.nonzero(red)[1]
    assert cols_green.max() < cols_red.min()  # GT (left) left of the prediction (right)
    # the axes span the figure's width minus margins: green in its left part, red in its right part
    assert np.median(cols_green) < rgb.shape[1] / 2 < np.median(cols_red)


def test_overlay_batches_sizes_and_dice_text(tmp_path):
    images = torch.randn(6, 1, 24, 24)
    gts = torch.stack([square(24, 4, 14 + i) for i in range(6)])
    preds = torch.stack([square(24, 5, 15 + i) for i in range(6)])
    path = plot_overlays(images, preds, gts, [0.93] * 6, str(tmp_path / "sub" / "o.png"), names=list("abcdef"),
                         max_images=5)
    with Image.open(path) as im:
        w, h = im.size
    assert w > h  # 5 panels: a row of 4 and one below -> wider than tall (4 x 2.6 in by 2 x 2.6 in)
    assert (w, h) == (4 * 260, 2 * 260)


def test_overlay_of_an_empty_prediction_and_nan_dice(tmp_path):
    gt = square(16, 4, 10)
    path = plot_overlays([torch.randn(1, 16, 16)], [torch.zeros(16, 16, dtype=torch.long)], [gt], [math.nan],
                         str(tmp_path / "o.png"))
    rgb = open_png(path)
    assert pure(rgb, 1).sum() > 20 and pure(rgb, 0).sum() == 0


def test_overlay_multiclass_contours_each_class(tmp_path):
    gt = torch.zeros(32, 32, dtype=torch.long)
    gt[4:12, 4:12] = 1
    gt[20:28, 20:28] = 2  # class 2 far from class 1: both must get a contour
    path = plot_overlays([torch.zeros(1, 32, 32)], [torch.zeros_like(gt)], [gt], None, str(tmp_path / "m.png"))
    ys, xs = np.nonzero(pure(open_png(path), 1))
    assert ys.size > 0
    mid_y, mid_x = (ys.min() + ys.max()) / 2, (xs.min() + xs.max()) / 2
    assert ((ys < mid_y) & (xs < mid_x)).any() and ((ys > mid_y) & (xs > mid_x)).any()


def test_overlay_3d_uses_the_slice_with_most_ground_truth(tmp_path):
    gt = torch.zeros(16, 16, 12, dtype=torch.long)
    gt[4:12, 4:12, 1:3] = 1  # foreground only near the start: the middle slice (6) would be empty
    gt[6:10, 6:10, 9] = 1
    assert select_slice(gt.numpy()) == 1
    assert select_slice(np.zeros((4, 4, 6)), gt[:4, :4, :6].numpy() * 0) == 3  # both empty: middle
    pred = torch.zeros_like(gt)
    pred[5:11, 5:11, 1] = 1  # drawn: on the chosen slice (the first of the two fullest)
    path = plot_overlays([torch.randn(2, 16, 16, 12)], [pred], [gt], None, str(tmp_path / "v.png"))
    rgb = open_png(path)
    assert pure(rgb, 1).sum() > 20 and pure(rgb, 0).sum() > 20


def test_overlay_input_errors(tmp_path):
    with pytest.raises(ValueError, match="differ in length"):
        plot_overlays([torch.zeros(1, 8, 8)] * 2, [square(8, 2, 4)], [square(8, 2, 4)] * 2, None,
                      str(tmp_path / "e.png"))
    with pytest.raises(ValueError, match="does not match"):
        plot_overlays([torch.zeros(1, 8, 9)], [square(8, 2, 4)], [square(8, 2, 4)], None, str(tmp_path / "e.png"))
    with pytest.raises(ValueError, match="no images"):
        plot_overlays([], [], [], [], str(tmp_path / "e.png"))


def test_corruption_figure_and_dice(tmp_path):
    clean = [square(24, 6, 18), square(24, 6, 18, dims=3)]
    noisy = [square(24, 4, 20), square(24, 8, 16, dims=3)]
    images = [torch.randn(1, 24, 24), torch.randn(1, 24, 24, 24)]
    path = plot_corruption(images, clean, noisy, str(tmp_path / "c.png"), names=["2d", "3d"])
    rgb = open_png(path)
    assert pure(rgb, 1).sum() > 20 and pure(rgb, 0).sum() > 20
    assert foreground_dice(noisy[0], clean[0]) == pytest.approx(2 * 144 / (144 + 256))
    assert math.isnan(foreground_dice(torch.zeros(4, 4), torch.zeros(4, 4)))


def metrics_rows():
    rows = []
    for step in range(10, 110, 10):
        rows.append({"step": step, "train_loss": 1.0 / step, "lr": 1e-3 * (1 - step / 120),
                     "val_dice": 0.5 + step / 250 if step % 20 == 0 else "",  # CSV: empty cell
                     "val_hd95": 40.0 / step ** 0.5 if step % 20 == 0 else None,
                     "train_seconds": step * 0.3, "train_weight_mean": 0.4 + step / 1000, "note": "x"})
    return rows


def test_progress_png(tmp_path):
    path = plot_progress(metrics_rows(), str(tmp_path / "progress.png"))
    with Image.open(path) as im:
        w, h = im.size
    assert (w, h) == (1000, 3 * 320)  # three panels: loss / Dice, lr, diagnostics


def test_progress_strings_one_row_and_fewer_panels(tmp_path):
    rows = [{"step": "10", "train_loss": "0.7", "val_dice": "0.81"}]  # csv.DictReader's strings
    path = plot_progress(rows, str(tmp_path / "p.png"))
    with Image.open(path) as im:
        assert im.size == (1000, 320)  # no lr, no diagnostics: one panel
    with pytest.raises(ValueError, match="no rows"):
        plot_progress([], str(tmp_path / "q.png"))


def test_moving_average_is_nnunets_ema():
    assert moving_average([1.0, 0.0, 0.0]) == pytest.approx([1.0, 0.9, 0.81])
    assert moving_average([]) == []


def test_ratio_curves(tmp_path):
    rows = []
    for method, base in [("baseline", 0.9), ("mcpm", 0.92)]:
        for ratio in (0.8, 0.2, 0.4):
            rows.append({"method": method, "noise": "dilation", "ratio": ratio, "dice_mean": base - ratio / 10,
                         "dice_std": 0.01, "hd95_mean": float("nan")})
    rows.append({"method": "clean", "ratio": "0.0", "dice_mean": "0.95", "dice_std": ""})
    path = plot_ratio_curves(rows, str(tmp_path / "r.png"))
    with Image.open(path) as im:
        assert im.size == (640, 420)
    with pytest.raises(ValueError, match="hd95_mean"):
        plot_ratio_curves(rows, str(tmp_path / "h.png"), metric="hd95")  # all NaN
    with pytest.raises(ValueError, match="no rows"):
        plot_ratio_curves([], str(tmp_path / "e.png"))
