"""noisyseg_ext.metrics against independent references: medpy.metric.binary (hd, hd95 pooled,
asd, assd, dc, jc), MONAI (HausdorffDistanceMetric's max of directed percentiles, surface
distance, Dice), a plain numpy/scipy KD-tree computation; conventions, bad input, accumulation."""

import math

import numpy as np
import pytest
import scipy.ndimage as ndi
import torch
from scipy.spatial import cKDTree

from noisyseg_ext import metrics as M
from noisyseg_ext.metrics.surface import segment_percentile


def ellipsoid_labels(n, shape, num_classes, seed, jitter=0.0, noise=0.0):
    """(n, *shape) int64 label maps: one ellipsoid per foreground class (later classes drawn
    over earlier ones), centres / radii moved by `jitter` (a fraction of the size) and a fraction
    `noise` of voxels near the objects flipped to a random class (speckle, outliers)."""
    rng = np.random.default_rng(seed)
    grids = np.meshgrid(*[np.arange(s, dtype=np.float64) for s in shape], indexing="ij")
    out = np.zeros((n, *shape), np.int64)
    for i in range(n):
        for c in range(1, num_classes):
            centre = [s * rng.uniform(0.3, 0.7) for s in shape]
            radii = [s * rng.uniform(0.12, 0.3) for s in shape]
            if jitter:
                centre = [x + s * rng.uniform(-jitter, jitter) for x, s in zip(centre, shape)]
                radii = [r * rng.uniform(1 - 2 * jitter, 1 + 2 * jitter) for r in radii]
            inside = sum(((g - x) / r) ** 2 for g, x, r in zip(grids, centre, radii)) <= 1
            out[i][inside] = c
        if noise:
            flip = rng.random(shape) < noise
            out[i][flip] = rng.integers(0, num_classes, size=int(flip.sum()))
    return torch.from_numpy(out)


def pair(n, shape, num_classes, seed):
    ref = ellipsoid_labels(n, shape, num_classes, seed)
    pred = ellipsoid_labels(n, shape, num_classes, seed, jitter=0.08, noise=0.002)
    return pred, ref


def one_hot(labels, num_classes):
    return torch.nn.functional.one_hot(labels, num_classes).movedim(-1, 1)


CASES = [((24, 31), None), ((24, 31), (0.7, 1.9)), ((14, 17, 19), None), ((14, 17, 19), (2.5, 0.8, 1.1))]


@pytest.mark.parametrize("shape,spacing", CASES)
def test_surface_metrics_match_medpy(shape, spacing, device):
    binary = pytest.importorskip("medpy.metric.binary")
    pred, ref = pair(3, shape, 3, seed=len(shape) * 10 + (spacing is None))
    pred, ref = pred.to(device), ref.to(device)
    kw = dict(num_classes=3, spacing=spacing)
    hd = M.hausdorff(pred, ref, **kw)
    hd95_pooled = M.hausdorff(pred, ref, percentile=95, mode="pooled", **kw)
    asd = M.average_surface_distance(pred, ref, **kw)
    assd = M.average_surface_distance(pred, ref, symmetric=True, **kw)
    for out in (hd, hd95_pooled, asd, assd):
        assert out.shape == (3, 2) and out.dtype == torch.float32 and out.device.type == device.type
    p, g = pred.cpu().numpy(), ref.cpu().numpy()
    for n in range(3):
        for c in (1, 2):
            P, G = p[n] == c, g[n] == c
            assert P.any() and G.any()
            for ours, fn in ((hd, binary.hd), (hd95_pooled, binary.hd95), (asd, binary.asd), (assd, binary.assd)):
                assert ours[n, c - 1].item() == pytest.approx(fn(P, G, voxelspacing=spacing), rel=2e-6), fn.__name__


def directed_distances(P, G, spacing):
    """Numpy/scipy ground truth: distances from each surface voxel of P to the nearest surface
    voxel of G (KD-tree over physical coordinates)."""
    cross = ndi.generate_binary_structure(P.ndim, 1)
    sp = np.ones(P.ndim) if spacing is None else np.asarray(spacing, np.float64)
    sP = np.argwhere(P ^ ndi.binary_erosion(P, cross)) * sp
    sG = np.argwhere(G ^ ndi.binary_erosion(G, cross)) * sp
    return cKDTree(sG).query(sP)[0]


@pytest.mark.parametrize("shape,spacing", CASES)
def test_hausdorff_modes_match_numpy(shape, spacing):
    pred, ref = pair(2, shape, 3, seed=5)
    kw = dict(num_classes=3, spacing=spacing)
    got = {q: M.hausdorff(pred, ref, percentile=q, **kw) for q in (None, 95, 50)}
    directed = M.hausdorff(pred, ref, percentile=95, mode="directed", **kw)
    asd = M.average_surface_distance(pred, ref, **kw)
    for n in range(2):
        for c in (1, 2):
            P, G = pred[n].numpy() == c, ref[n].numpy() == c
            d1, d2 = directed_distances(P, G, spacing), directed_distances(G, P, spacing)
            assert got[None][n, c - 1].item() == pytest.approx(max(d1.max(), d2.max()), rel=1e-6)
            for q in (95, 50):
                expected = max(np.percentile(d1, q), np.percentile(d2, q))  # METHODS.md: max of directed
                assert got[q][n, c - 1].item() == pytest.approx(expected, rel=1e-6)
            assert directed[n, c - 1].item() == pytest.approx(np.percentile(d1, 95), rel=1e-6)
            assert asd[n, c - 1].item() == pytest.approx(d1.mean(), rel=1e-6)


@pytest.mark.parametrize("shape,spacing", CASES)
def test_matches_monai(shape, spacing):
    monai_hd = pytest.importorskip("monai.metrics.hausdorff_distance")
    monai_sd = pytest.importorskip("monai.metrics.surface_distance")
    pred, ref = pair(4, shape, 3, seed=9)
    pred[0][pred[0] == 2] = 0  # class 2 missing from a prediction, class 1 from a reference
    ref[1][ref[1] == 1] = 0
    yp, y = one_hot(pred, 3).float(), one_hot(ref, 3).float()
    # where exactly one mask is empty we say +inf; MONAI says inf, or NaN once torch.quantile
    # interpolates between infinities: compare those entries to our convention only
    one_empty = (yp[:, 1:].flatten(2).amax(-1) != y[:, 1:].flatten(2).amax(-1))
    assert one_empty.any() and not one_empty.all()

    def check(got, expected):
        assert torch.isposinf(got[one_empty]).all()
        torch.testing.assert_close(got[~one_empty], expected.float()[~one_empty], rtol=2e-6, atol=1e-6)

    for q in (None, 95):
        with pytest.warns(UserWarning):
            expected = monai_hd.compute_hausdorff_distance(yp, y, percentile=q, spacing=spacing)
        got = M.hausdorff(yp, y, percentile=q, spacing=spacing)  # one-hot input
        check(got, expected)
        assert torch.equal(got, M.hausdorff(pred, ref, num_classes=3, percentile=q, spacing=spacing))
    with pytest.warns(UserWarning):
        expected = monai_hd.compute_hausdorff_distance(yp, y, percentile=95, directed=True, spacing=spacing)
    check(M.hausdorff(yp, y, percentile=95, mode="directed", spacing=spacing), expected)
    for symmetric in (False, True):
        with pytest.warns(UserWarning):
            expected = monai_sd.compute_average_surface_distance(yp, y, symmetric=symmetric, spacing=spacing)
        check(M.average_surface_distance(yp, y, symmetric=symmetric, spacing=spacing), expected)


def test_include_background_and_one_dimension():
    binary = pytest.importorskip("medpy.metric.binary")
    pred, ref = pair(2, (60,), 2, seed=1)
    got = M.average_surface_distance(pred, ref, num_classes=2, include_background=True, symmetric=True)
    assert got.shape == (2, 2)
    for n in range(2):
        for c in (0, 1):
            P, G = pred[n].numpy() == c, ref[n].numpy() == c
            assert got[n, c].item() == pytest.approx(binary.assd(P, G), rel=2e-6)


def test_hd95_max_and_pooled_differ_where_expected():
    # a large object and a tiny one: the directions have very different distributions
    ref = torch.zeros(1, 1, 40, 40, dtype=torch.bool)
    pred = torch.zeros_like(ref)
    ref[0, 0, 5:35, 5:35] = True
    pred[0, 0, 5:35, 5:33] = True
    pred[0, 0, 38, 38] = True  # outlier far from the reference
    kw = dict(percentile=95, include_background=True)
    max_mode, pooled = M.hausdorff(pred, ref, **kw), M.hausdorff(pred, ref, mode="pooled", **kw)
    assert max_mode.item() >= pooled.item()
    binary = pytest.importorskip("medpy.metric.binary")
    assert pooled.item() == pytest.approx(binary.hd95(pred[0, 0].numpy(), ref[0, 0].numpy()), rel=1e-6)


def test_empty_mask_conventions(device):
    shape = (2, 4, 12, 10)  # one-hot (N, C, H, W) with background in channel 0
    pred = torch.zeros(shape, dtype=torch.bool, device=device)
    ref = torch.zeros_like(pred)
    pred[:, 1, 2:5, 3:6] = True   # class 1: both present
    ref[:, 1, 3:6, 3:7] = True
    pred[:, 2, 1:3, 1:3] = True   # class 2: reference empty
    ref[:, 3, 4:8, 2:5] = True    # class 3: prediction empty; class 0: both empty
    spacing = (2.0, 0.5)
    for fn in (M.hausdorff, lambda p, r, **k: M.hausdorff(p, r, percentile=95, **k),
               M.average_surface_distance, lambda p, r, **k: M.average_surface_distance(p, r, symmetric=True, **k)):
        out = fn(pred, ref, include_background=True, spacing=spacing)
        assert out.shape == (2, 4)
        assert torch.isnan(out[:, 0]).all()
        assert torch.isfinite(out[:, 1]).all()
        assert torch.isposinf(out[:, 2]).all() and torch.isposinf(out[:, 3]).all()
        diag = math.hypot(11 * 2.0, 9 * 0.5)
        penalised = fn(pred, ref, include_background=True, spacing=spacing, empty_penalty="diagonal")
        assert torch.allclose(penalised[:, 2:].cpu(), torch.full((2, 2), diag))
        assert torch.equal(penalised[:, 1], out[:, 1]) and torch.isnan(penalised[:, 0]).all()
        fixed = fn(pred, ref, include_background=True, spacing=spacing, empty_penalty=50)
        assert (fixed[:, 2:] == 50).all()
    d = M.dice(pred, ref)
    assert torch.isnan(d[:, 0]).all() and (d[:, 2:] == 0).all() and (d[:, 1] > 0).all()
    assert (M.dice(pred, ref, empty_score=1.0)[:, 0] == 1).all()


def test_empty_conventions_match_monai_for_one_empty():
    monai_hd = pytest.importorskip("monai.metrics.hausdorff_distance")
    pred = torch.zeros(1, 2, 10, 10)
    ref = torch.zeros_like(pred)
    ref[0, 1, 2:6, 2:6] = 1
    with pytest.warns(UserWarning):
        expected = monai_hd.compute_hausdorff_distance(pred, ref)  # with percentile=95 MONAI gets NaN
    assert torch.isposinf(expected).all() and torch.isposinf(M.hausdorff(pred, ref)).all()


def test_dice_iou_match_medpy_and_monai(device):
    binary = pytest.importorskip("medpy.metric.binary")
    pred, ref = pair(4, (20, 22), 4, seed=3)
    d = M.dice(pred.to(device), ref.to(device), num_classes=4)
    j = M.iou(pred.to(device), ref.to(device), num_classes=4)
    assert d.shape == (4, 4) and d.device.type == device.type
    for n in range(4):
        for c in range(4):
            P, G = pred[n].numpy() == c, ref[n].numpy() == c
            assert d[n, c].item() == pytest.approx(binary.dc(P, G), rel=1e-6)
            assert j[n, c].item() == pytest.approx(binary.jc(P, G), rel=1e-6)
    miou = M.mean_iou(pred, ref, num_classes=4)
    torch.testing.assert_close(miou, j.cpu().mean(1))
    monai_meandice = pytest.importorskip("monai.metrics.meandice")
    yp, y = one_hot(pred, 4), one_hot(ref, 4)
    expected = monai_meandice.compute_dice(yp, y, include_background=False, ignore_empty=False)
    torch.testing.assert_close(M.dice(yp, y, include_background=False), expected.float())


def test_label_maps_equal_one_hot(device):
    pred, ref = pair(2, (9, 10, 11), 3, seed=4)
    pred, ref = pred.to(device), ref.to(device)
    for fn in (M.dice, M.iou, M.hausdorff, M.average_surface_distance):
        for bg in (False, True):
            a = fn(pred, ref, num_classes=3, include_background=bg)
            b = fn(one_hot(pred, 3), one_hot(ref, 3), include_background=bg)
            assert torch.equal(a.nan_to_num(-1.0), b.nan_to_num(-1.0))


def test_device_matches_cpu(device):
    pred, ref = pair(2, (16, 15, 14), 3, seed=6)
    kw = dict(num_classes=3, spacing=(1.2, 0.9, 2.0))
    for fn in (lambda p, r: M.hausdorff(p, r, percentile=95, **kw), lambda p, r: M.hausdorff(p, r, **kw),
               lambda p, r: M.average_surface_distance(p, r, symmetric=True, **kw)):
        torch.testing.assert_close(fn(pred.to(device), ref.to(device)).cpu(), fn(pred, ref))


def test_segment_percentile_matches_numpy():
    rng = np.random.default_rng(0)
    counts = [1, 0, 2, 7, 20, 3, 0, 101]
    values = [rng.random(c).astype(np.float32) * 10 for c in counts]
    values[4][:5] = values[4][5]  # ties
    flat = torch.from_numpy(np.concatenate(values))
    ids = torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts))
    for q in (0, 5, 50, 95, 99.5, 100):
        got = segment_percentile(flat, ids, torch.tensor(counts), q)
        for i, v in enumerate(values):
            if len(v) == 0:
                assert math.isnan(got[i])
            else:
                assert got[i].item() == pytest.approx(np.percentile(v.astype(np.float64), q), rel=1e-12, abs=1e-12)


@pytest.mark.any_cpu_isa
def test_bad_input():
    pred, ref = pair(2, (8, 9), 3, seed=2)
    with pytest.raises(ValueError, match="same shape"):
        M.dice(pred, ref[:, :7], num_classes=3)
    with pytest.raises(ValueError, match="same shape"):
        M.hausdorff(one_hot(pred, 3), one_hot(ref, 3)[:1])
    with pytest.raises(ValueError, match="binary"):
        M.hausdorff(pred.unsqueeze(1), ref.unsqueeze(1))  # label maps given as one-hot
    with pytest.raises(ValueError, match="binary"):
        M.dice(one_hot(pred, 3) * 0.5, one_hot(ref, 3).float())
    for dtype in (torch.float32, torch.float64, torch.float16, torch.int64):
        half = one_hot(pred, 3).to(dtype)
        half[0, 1, 3, 4] = 0.5 if dtype.is_floating_point else 2
        with pytest.raises(ValueError, match="binary"):  # read in place by the kernel (or checked first)
            M.hausdorff(half, one_hot(ref, 3).to(dtype))
    nan = one_hot(pred, 3).float()
    nan[1, 2, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="binary"):
        M.average_surface_distance(nan, one_hot(ref, 3).float())
    with pytest.raises(ValueError, match="outside"):
        M.dice(pred, ref, num_classes=2)
    with pytest.raises(ValueError, match="outside"):
        M.average_surface_distance(pred - 1, ref, num_classes=3)
    with pytest.raises(TypeError, match="integer class indices"):
        M.dice(pred.float(), ref.float(), num_classes=3)
    with pytest.raises(ValueError, match="expected one per spatial dim"):
        M.hausdorff(pred, ref, num_classes=3, spacing=(1.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="> 0"):
        M.average_surface_distance(pred, ref, num_classes=3, spacing=(1.0, -2.0))
    with pytest.raises(ValueError, match="percentile"):
        M.hausdorff(pred, ref, num_classes=3, percentile=101)
    with pytest.raises(ValueError, match="mode"):
        M.hausdorff(pred, ref, num_classes=3, mode="mean")
    with pytest.raises(ValueError, match="empty_penalty"):
        M.hausdorff(pred, ref, num_classes=3, empty_penalty="huge")
    with pytest.raises(ValueError, match="num_classes"):
        M.dice(pred, ref, num_classes=0)
    with pytest.raises(ValueError, match="spatial dims"):
        M.dice(pred[0, 0], ref[0, 0], num_classes=3)
    with pytest.raises(ValueError, match="spatial dims"):
        M.dice(one_hot(pred, 3)[:, :, 0, 0], one_hot(ref, 3)[:, :, 0, 0])  # (N, C): no spatial dim


def test_reduce_metric_and_nanmean():
    v = torch.tensor([[1.0, float("nan"), 3.0], [float("nan"), float("nan"), 5.0]])
    mean, count = M.reduce_metric(v, "mean")
    assert mean.item() == pytest.approx(3.0) and count.item() == 3
    mb, cb = M.reduce_metric(v, "mean_batch")
    assert mb[0].item() == 1.0 and math.isnan(mb[1]) and mb[2].item() == 4.0 and cb.tolist() == [1, 0, 2]
    mc, cc = M.reduce_metric(v, "mean_channel")
    assert mc.tolist() == [2.0, 5.0] and cc.tolist() == [2, 1]
    s, _ = M.reduce_metric(v, "sum_batch")
    assert s.tolist() == [1.0, 0.0, 8.0]
    none, valid = M.reduce_metric(v, "none")
    assert none is v and valid.tolist() == [[1, 0, 1], [0, 0, 1]]
    inf = torch.tensor([[1.0, float("inf")]])
    assert math.isinf(M.reduce_metric(inf)[0])  # one-empty (inf) propagates
    assert math.isnan(M.nanmean(torch.full((3,), float("nan"))))
    with pytest.raises(ValueError, match="reduction"):
        M.reduce_metric(v, "median")


def test_cumulative_metric():
    pred, ref = pair(5, (12, 13), 3, seed=8)
    hd95 = M.CumulativeMetric("hd95", num_classes=3, spacing=(1.0, 0.5))
    batch_scores = [hd95.update(pred[:2], ref[:2]), hd95(pred[2:], ref[2:])]
    assert len(hd95) == 5
    full = M.hausdorff(pred, ref, num_classes=3, spacing=(1.0, 0.5), percentile=95)
    assert torch.equal(hd95.get_buffer(), full) and torch.equal(torch.cat(batch_scores), full)
    value, count = hd95.aggregate(return_counts=True)
    assert value.item() == pytest.approx(M.nanmean(full).item()) and count.item() == 10
    torch.testing.assert_close(hd95.aggregate("mean_batch"), M.nanmean(full, dim=0))
    hd95.reset()
    assert len(hd95) == 0 and hd95.get_buffer().numel() == 0
    dice = M.CumulativeMetric("dice", num_classes=3, reduction="mean_batch")
    dice.update(pred, ref)
    assert dice.aggregate().shape == (3,)
    custom = M.CumulativeMetric(lambda p, r: M.iou(p, r, num_classes=3))
    custom.update(pred, ref)
    assert torch.equal(custom.get_buffer(), M.iou(pred, ref, num_classes=3))
    with pytest.raises(ValueError, match="unknown metric"):
        M.CumulativeMetric("hd99")


def _sorted_groups(values, ids, B):
    return [sorted(values[ids == b].tolist()) for b in range(B)]


@pytest.mark.parametrize("shape,spacing", [((30,), (0.5,)), ((18, 21), (1.5, 0.7)), ((9, 12, 11), (1.0, 2.0, 0.5))])
def test_fused_surface_distances_match_reference_route(shape, spacing, device):
    from noisyseg_ext.metrics._inputs import mask_sources
    from noisyseg_ext.metrics.surface import SurfaceDistances

    pred, ref = pair(3, shape, 4, seed=12)
    pred[0][pred[0] == 3] = 0  # an empty prediction mask
    src = mask_sources(pred.to(device), ref.to(device), num_classes=4, include_background=True, op="test")
    fused = SurfaceDistances(src, list(spacing))
    slow = SurfaceDistances.__new__(SurfaceDistances)
    slow._init_reference(src, list(spacing))
    for name in ("pred_empty", "ref_empty", "counts", "ids"):
        assert torch.equal(getattr(fused, name).cpu(), getattr(slow, name).cpu()), name
    assert fused.counts.sum() > 0 and (fused.counts[[0, 12]] > 0).all()
    a = _sorted_groups(fused.values.cpu(), fused.ids.cpu(), 24)
    b = _sorted_groups(slow.values.cpu(), slow.ids.cpu(), 24)
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, rtol=4e-7)
    d1, ids1 = fused.direction(1)
    assert d1.numel() == fused.counts[12:].sum() and (ids1 >= 0).all() and (ids1 < 12).all()


def test_many_classes_and_other_label_dtypes():
    # more classes than one box scan handles (32), int16 labels (converted), matches one-hot input
    gen = torch.Generator().manual_seed(0)
    ref = torch.randint(0, 40, (2, 6, 7, 8), generator=gen)
    pred = torch.where(torch.rand(ref.shape, generator=gen) < 0.2, torch.randint(0, 40, ref.shape, generator=gen), ref)
    a = M.hausdorff(pred.to(torch.int16), ref.to(torch.int16), num_classes=40, percentile=95)
    b = M.hausdorff(one_hot(pred, 40).bool(), one_hot(ref, 40).bool(), percentile=95)
    assert a.shape == (2, 39) and torch.equal(a.nan_to_num(-1.0), b.nan_to_num(-1.0))
    binary = pytest.importorskip("medpy.metric.binary")
    for c in (1, 33, 39):
        P, G = pred[1].numpy() == c, ref[1].numpy() == c
        d1, d2 = directed_distances(P, G, None), directed_distances(G, P, None)
        assert a[1, c - 1].item() == pytest.approx(max(np.percentile(d1, 95), np.percentile(d2, 95)), rel=1e-6)
        assert M.hausdorff(pred, ref, num_classes=40, percentile=95, mode="pooled")[1, c - 1].item() == \
            pytest.approx(binary.hd95(P, G), rel=1e-6)


@pytest.mark.any_cpu_isa
def test_surface_distance_map_opcheck():
    from noisyseg_ext.metrics._inputs import mask_sources

    pred, ref = pair(2, (10, 11), 3, seed=2)
    src = mask_sources(pred, ref, num_classes=3, include_background=False, op="test")
    torch.library.opcheck(torch.ops.noisyseg.mask_boxes.default,
                          (src.pred, src.ref, src.box_rows, list(src.spatial), 8, 3))
    from noisyseg_ext.ops.distance_transform import job_lines

    S = 110
    # job 0: class 1 over the whole image; job 1: class 2 of image 1 in a box, seeds / queries in
    # sub-boxes of it
    jobs = torch.tensor([[1, 0, 1, 0, 0, 1, 0, 0, 0, 1, 10, 11, 0, 0, 0, 0, 1, 10, 11, 0, 0, 0, 1, 10, 11],
                         [0, S, 2, 1, S, 2, 0, 2, 1, 1, 6, 9, 110, 0, 2, 3, 1, 8, 10, 0, 4, 1, 1, 6, 7]])
    counts = job_lines(jobs)
    line_start = torch.cat([torch.zeros((1, 4), dtype=torch.int64), counts.cumsum(0)]).t().contiguous()
    lines = line_start[:, -1].tolist()
    torch.library.opcheck(torch.ops.noisyseg.surface_distance_map.default,
                          (src.pred, src.ref, jobs, line_start, lines, [10, 11], [1.0, 0.5], 164))
    with pytest.raises(ValueError, match="inconsistent job table"):
        bad = jobs.clone()
        bad[1, 11] = 10  # the box U leaves the image
        torch.ops.noisyseg.surface_distance_map(src.pred, src.ref, bad, line_start, lines, [10, 11], [1.0, 0.5], 164)


def _fused_and_reference(pred, ref, num_classes, spacing, device):
    from noisyseg_ext.metrics._inputs import mask_sources
    from noisyseg_ext.metrics.surface import SurfaceDistances

    src = mask_sources(pred.to(device), ref.to(device), num_classes=num_classes, include_background=False, op="test")
    fused = SurfaceDistances(src, list(spacing))
    slow = SurfaceDistances.__new__(SurfaceDistances)
    slow._init_reference(src, list(spacing))
    for name in ("pred_empty", "ref_empty", "counts", "ids"):
        assert torch.equal(getattr(fused, name).cpu(), getattr(slow, name).cpu()), name
    B = fused.counts.numel()
    for x, y in zip(_sorted_groups(fused.values.cpu(), fused.ids.cpu(), B),
                    _sorted_groups(slow.values.cpu(), slow.ids.cpu(), B)):
        if all(s == 1.0 for s in spacing):
            assert x == y  # unit spacing: exact
        else:
            np.testing.assert_allclose(x, y, rtol=4e-7)
    return fused


@pytest.mark.parametrize("spacing", [None, (1.3, 0.6, 2.1)])
def test_fused_route_crop_edge_cases(spacing, device):
    # boxes of the two masks cropped to their union: masks touching every border, one-voxel masks,
    # an empty mask, far-apart masks (the seed and query boxes barely overlap), and striped masks
    # whose last-pass lines hold many query voxels (the lower envelope, not the direct minimum)
    shape = (52, 40, 9)
    pred = torch.zeros(6, *shape, dtype=torch.uint8)
    ref = torch.zeros_like(pred)
    pred[0, :, :, :] = 1; ref[0, 3:9, 5:30, 2:7] = 1                 # full image vs inner box
    pred[0, 0, 0, 0] = 2; ref[0, 51, 39, 8] = 2                      # one voxel each, opposite corners
    pred[1, ::2, :, :] = 1; ref[1, :, 1::3, :] = 1                   # stripes along axes 0 and 1
    pred[1, 5, 7, 3] = 2                                             # ref class 2 empty
    pred[2, 0:2, 0:3, 0:2] = 1; ref[2, 50:52, 37:40, 7:9] = 1        # far apart, both at borders
    pred[3, 2:11, 4:36, 1:8] = 2; ref[3, 2:11, 4:36, 1:8] = 2        # identical: all distances 0
    pred[4, 6, :, 4] = 1; ref[4, :, 20, :] = 1                       # a line and a plane
    # 3x3x3 specks that stretch one box only
    pred[5, 4:9, 10:30, 2:7] = 1; ref[5, 4:9, 12:31, 2:6] = 1; pred[5, 0:3, 37:40, 6:9] = 1
    h = [1.0] * 3 if spacing is None else list(spacing)
    fused = _fused_and_reference(pred, ref, 3, h, device)
    assert fused.pred_empty.tolist() == [False, False, False, False, False, True, True, False, False, True, False, True]
    assert fused.ref_empty[3] and not fused.ref_empty[0] and fused.counts.sum() > 0
    # 2D, with last-pass lines (along axis 0) crossing many query voxels
    pred2 = torch.zeros(2, 60, 31, dtype=torch.int64)
    ref2 = torch.zeros_like(pred2)
    pred2[0, ::2, 3:29] = 1; ref2[0, 1::4, 0:31] = 1
    pred2[1, :, 0] = 1; ref2[1, 59, :] = 1
    _fused_and_reference(pred2, ref2, 2, h[:2], device)
    # bool label maps (num_classes=2) equal their one-hot form
    pb, rb = pred2 == 1, ref2 == 1
    a = M.hausdorff(pb.to(device), rb.to(device), num_classes=2, percentile=95)
    b = M.hausdorff(one_hot(pred2, 2).to(device), one_hot(ref2, 2).to(device), percentile=95)
    assert torch.equal(a, b)
