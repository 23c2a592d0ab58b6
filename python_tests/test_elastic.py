"""elastic_deform / random_elastic_deform: kernels vs elasticdeform itself and vs the pure-torch
reference, several tensors in one call, determinism, custom-op checks, bad input."""

import math
import zlib

import numpy as np
import pytest
import torch

import noisyseg_ext
from noisyseg_ext.ops import reference

FLOATS = [torch.float32, torch.float64]
LABELS = [torch.uint8, torch.int32, torch.int64, torch.bool]
MODES = ["constant", "nearest", "mirror"]

# (spatial, points): 2D and 3D, square and not, points 2..5 (also different per axis)
CASES = [
    ((33, 47), (3, 3)),
    ((40, 24), (2, 5)),
    ((31, 31), (4, 4)),
    ((17, 21, 13), (3, 3, 3)),
    ((12, 19, 16), (2, 4, 5)),
    ((14, 14, 14), (5, 5, 5)),
]


def _seed_of(*args) -> int:
    return zlib.crc32(repr(args).encode()) % 10000


def _grid(n, spatial, points, sigma, seed, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn((n, len(spatial), *points), generator=g, dtype=torch.float64) * sigma).to(dtype)


def _image(n, spatial, seed, dtype=torch.float64, channels=None):
    g = torch.Generator().manual_seed(seed)
    shape = (n, *spatial) if channels is None else (n, channels, *spatial)
    return torch.randn(shape, generator=g, dtype=torch.float64).to(dtype)


def _labels(n, spatial, seed, dtype, classes=4):
    g = torch.Generator().manual_seed(seed)
    # blocky label maps (like masks), so nearest sampling is mostly away from .5 ties
    coarse = torch.randint(0, classes, (n, *[max(2, s // 4) for s in spatial]), generator=g)
    lab = torch.nn.functional.interpolate(coarse[:, None].float(), size=spatial, mode="nearest")[:, 0].long()
    return lab.bool() if dtype == torch.bool else lab.to(dtype)


def _elasticdeform_per_sample(ed, x, d, order, mode, cval):
    return np.stack([ed.deform_grid(x[i].numpy(), d[i].numpy(), order=order, mode=mode, cval=cval)
                     for i in range(x.shape[0])])


# ----------------------------------------------------------------------------------------------
# against elasticdeform

@pytest.mark.parametrize("spatial,points", CASES)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("order", [1, 3])
def test_float_images_match_elasticdeform(spatial, points, mode, order):
    ed = pytest.importorskip("elasticdeform")
    seed = _seed_of(spatial, points, mode, order)
    x = _image(2, spatial, seed)
    d = _grid(2, spatial, points, sigma=4.0, seed=seed + 1)
    want = _elasticdeform_per_sample(ed, x, d, order, mode, cval=0.25)
    for dtype in FLOATS:
        got = noisyseg_ext.elastic_deform(x.to(dtype), d, order=order, mode=mode, cval=0.25)
        assert got.dtype == dtype and got.shape == x.shape
        err = np.abs(got.double().numpy() - want)
        # 1e-4 relative to the image's value range (values straddle 0, so plain relative is ill-posed)
        assert err.max() <= 1e-4 * np.abs(want).max(), (dtype, err.max())
        if dtype == torch.float64:
            assert err.max() < 1e-10


@pytest.mark.parametrize("spatial,points", CASES)
@pytest.mark.parametrize("mode", MODES)
def test_label_maps_match_elasticdeform(spatial, points, mode):
    ed = pytest.importorskip("elasticdeform")
    seed = _seed_of(spatial, points, mode)
    d = _grid(2, spatial, points, sigma=5.0, seed=seed)
    for dtype in LABELS:
        lab = _labels(2, spatial, seed + 1, dtype)
        want = _elasticdeform_per_sample(ed, lab, d, 0, mode, cval=0)
        got = noisyseg_ext.elastic_deform(lab, d, order=0, mode=mode)
        assert got.dtype == dtype and got.shape == lab.shape
        assert (got.numpy() == want).mean() >= 0.999, dtype


def test_float_order0_and_cval_match_elasticdeform():
    ed = pytest.importorskip("elasticdeform")
    x = _image(1, (30, 26), 3)
    d = _grid(1, (30, 26), (3, 3), sigma=8.0, seed=4)
    got = noisyseg_ext.elastic_deform(x, d, order=0, mode="constant", cval=-2.5)
    want = _elasticdeform_per_sample(ed, x, d, 0, "constant", -2.5)
    assert (got.numpy() == want).mean() >= 0.999
    assert (want == -2.5).any()  # the constant border is exercised


@pytest.mark.parametrize("spatial,points,sigma", [((64, 48), (5, 3), 40.0), ((24, 20, 18), (4, 2, 3), 30.0),
                                                  ((50, 7), (2, 2), 100.0)])
@pytest.mark.parametrize("mode", MODES)
def test_strong_deformation_matches_elasticdeform(spatial, points, sigma, mode):
    """Positions far outside the image: the border modes fold them several times."""
    ed = pytest.importorskip("elasticdeform")
    x = _image(1, spatial, 5)
    d = _grid(1, spatial, points, sigma=sigma, seed=6)
    for order in (0, 1, 3):
        want = _elasticdeform_per_sample(ed, x, d, order, mode, 0.0)
        got = noisyseg_ext.elastic_deform(x, d, order=order, mode=mode).numpy()
        if order == 0:
            assert (got == want).mean() >= 0.999
        else:
            assert np.abs(got - want).max() < 1e-10


@pytest.mark.parametrize("cval", [2.5, -1.5, 300.0])
def test_label_cval_rounding_matches_elasticdeform(cval):
    ed = pytest.importorskip("elasticdeform")
    d = _grid(1, (20, 16), (3, 3), sigma=8.0, seed=1)
    for dtype in LABELS:
        lab = _labels(1, (20, 16), 2, dtype)
        want = _elasticdeform_per_sample(ed, lab, d, 0, "constant", cval)
        got = noisyseg_ext.elastic_deform(lab, d, cval=cval)
        assert (got.numpy() == want).mean() >= 0.999, dtype


def test_large_3d_labels_match_elasticdeform():
    ed = pytest.importorskip("elasticdeform")
    spatial = (48, 40, 36)
    d = _grid(1, spatial, (3, 3, 3), sigma=6.0, seed=7)
    lab = _labels(1, spatial, 8, torch.uint8)
    got = noisyseg_ext.elastic_deform(lab, d)
    want = _elasticdeform_per_sample(ed, lab, d, 0, "constant", 0)
    assert (got.numpy() == want).mean() >= 0.999


# ----------------------------------------------------------------------------------------------
# against the pure-torch reference (every device)

@pytest.mark.parametrize("spatial,points", CASES[::2] + [((9, 1), (2, 3)), ((1, 6, 5), (2, 2, 3))])
@pytest.mark.parametrize("order", [0, 1, 3])
def test_kernel_matches_reference(device, spatial, points, order):
    d = _grid(3, spatial, points, sigma=3.0, seed=11).to(device)
    for mode in MODES:
        for dtype in [torch.float64, torch.float32, torch.float16, torch.bfloat16]:
            x = _image(3, spatial, 12, dtype).to(device)
            got = noisyseg_ext.elastic_deform(x, d, order=order, mode=mode, cval=0.5)
            want = reference.elastic_deform(x, d, order=order, mode=mode, cval=0.5)
            assert got.dtype == dtype and got.shape == x.shape
            tol = {torch.float64: 1e-10, torch.float32: 1e-5, torch.float16: 1e-2, torch.bfloat16: 6e-2}[dtype]
            mismatch = ~torch.isclose(got.double(), want.double(), rtol=tol, atol=tol)
            assert mismatch.double().mean() <= (0.002 if order == 0 else 0.0), (mode, dtype)
        if order == 0:
            for dtype in LABELS:
                lab = _labels(3, spatial, 13, dtype).to(device)
                got = noisyseg_ext.elastic_deform(lab, d, order=0, mode=mode, cval=3)
                want = reference.elastic_deform(lab, d, order=0, mode=mode, cval=3)
                assert got.dtype == dtype
                assert (got == want).double().mean() >= 0.999


def test_channels_dimension(device):
    spatial = (20, 18)
    d = _grid(2, spatial, (3, 4), sigma=3.0, seed=1).to(device)
    x = _image(2, spatial, 2, channels=3).to(device)
    got = noisyseg_ext.elastic_deform(x, d, order=3, mode="mirror")
    for c in range(3):
        one = noisyseg_ext.elastic_deform(x[:, c], d, order=3, mode="mirror")
        torch.testing.assert_close(got[:, c], one, rtol=0, atol=0)
    torch.testing.assert_close(got, reference.elastic_deform(x, d, order=3, mode="mirror"), rtol=1e-10, atol=1e-10)


def test_several_tensors_one_call(device):
    spatial = (16, 12, 10)
    d = _grid(2, spatial, (3, 3, 3), sigma=3.0, seed=5).to(device)
    img = _image(2, spatial, 6, torch.float32).to(device)
    mask = _labels(2, spatial, 7, torch.int64).to(device)
    out_img, out_mask = noisyseg_ext.elastic_deform([img, mask], d, order=[3, 0], mode="nearest")
    assert torch.equal(out_img, noisyseg_ext.elastic_deform(img, d, order=3, mode="nearest"))
    assert torch.equal(out_mask, noisyseg_ext.elastic_deform(mask, d, order=0, mode="nearest"))
    out = noisyseg_ext.elastic_deform((img, mask), d, order=(1, 0), cval=[1.5, 2])
    assert isinstance(out, tuple) and len(out) == 2
    assert out[0].dtype == torch.float32 and out[1].dtype == torch.int64


def test_identity_and_translation(device):
    x = _image(2, (15, 22), 1).to(device)
    lab = _labels(2, (15, 22), 2, torch.uint8).to(device)
    zero = torch.zeros(2, 2, 3, 3, dtype=torch.float64, device=device)
    for order in (0, 1, 3):
        torch.testing.assert_close(noisyseg_ext.elastic_deform(x, zero, order=order), x, rtol=1e-12, atol=1e-12)
    assert torch.equal(noisyseg_ext.elastic_deform(lab, zero), lab)
    # a uniform grid of +2 pixels along the last axis pulls x[..., j + 2]; constant mode fills cval
    shift = zero.clone()
    shift[:, 1] = 2.0
    out = noisyseg_ext.elastic_deform(lab, shift, cval=9)
    assert torch.equal(out[..., :-2], lab[..., 2:])
    assert (out[..., -2:] == 9).all()
    out = noisyseg_ext.elastic_deform(x, shift, order=1, mode="nearest")
    torch.testing.assert_close(out[..., -3:], x[..., -1:].expand(-1, -1, 3))


def test_noncontiguous_input(device):
    x = _image(2, (20, 30), 1).to(device).transpose(1, 2)  # (2, 30, 20) view
    d = _grid(2, (30, 20), (3, 3), 3.0, 2).to(device)
    torch.testing.assert_close(noisyseg_ext.elastic_deform(x, d, order=3),
                               noisyseg_ext.elastic_deform(x.contiguous(), d, order=3), rtol=0, atol=0)


def test_nonfinite_displacement_gives_cval_not_a_crash(device):
    d = torch.zeros(1, 2, 3, 3, dtype=torch.float64, device=device)
    d[0, 0, 1, 1] = float("nan")
    d[0, 1, 0, 0] = float("inf")
    lab = torch.ones(1, 12, 12, dtype=torch.uint8, device=device)
    for mode in MODES:
        out = noisyseg_ext.elastic_deform(lab, d, mode=mode, cval=7)
        assert out.shape == lab.shape
        assert set(out.unique().tolist()) <= {1, 7}
    big = torch.full((1, 2, 3, 3), 1e300, dtype=torch.float64, device=device)
    for mode in MODES:
        out = noisyseg_ext.elastic_deform(lab, big, order=0, mode=mode, cval=7)
        assert set(out.unique().tolist()) <= {1, 7}


def test_empty_batch(device):
    x = torch.zeros(0, 8, 9, device=device)
    d = torch.zeros(0, 2, 3, 3, device=device)
    assert noisyseg_ext.elastic_deform(x, d, order=3).shape == (0, 8, 9)


# ----------------------------------------------------------------------------------------------
# random_elastic_deform

def test_random_elastic_deform_reproducible_and_consistent(device):
    lab = _labels(3, (24, 20), 1, torch.uint8).to(device)
    out1, d1 = noisyseg_ext.random_elastic_deform(lab, 4.0, 3, generator=torch.Generator().manual_seed(3),
                                                  return_displacement=True)
    out2 = noisyseg_ext.random_elastic_deform(lab, 4.0, 3, generator=torch.Generator().manual_seed(3))
    assert torch.equal(out1, out2)
    assert d1.shape == (3, 2, 3, 3) and d1.dtype == torch.float64 and d1.device == lab.device
    assert torch.equal(out1, noisyseg_ext.elastic_deform(lab, d1))
    assert not torch.equal(out1, lab)  # it did deform
    # the same generator state gives the same grid whatever the images' device
    d_cpu = noisyseg_ext.random_displacement(3, 4.0, 3, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(d1.cpu(), d_cpu, rtol=0, atol=0)
    # sigma is the standard deviation in pixels
    big = noisyseg_ext.random_displacement(64, 5.0, (4, 5), generator=torch.Generator().manual_seed(0))
    assert big.shape == (64, 2, 4, 5) and abs(big.std().item() - 5.0) < 0.3


def test_random_elastic_deform_image_with_channels_and_mask():
    x, m = _image(2, (16, 14), 0, torch.float32, channels=3), _labels(2, (16, 14), 1, torch.bool)
    g = torch.Generator().manual_seed(0)
    (xo, mo), d = noisyseg_ext.random_elastic_deform([x, m], 3.0, 4, order=[3, 0], generator=g,
                                                     return_displacement=True)
    assert d.shape == (2, 2, 4, 4) and xo.shape == x.shape and mo.dtype == torch.bool
    assert torch.equal(mo, noisyseg_ext.elastic_deform(m, d))
    xo3 = noisyseg_ext.random_elastic_deform(x, 3.0, 4, ndim=2, order=3, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(xo3, xo, rtol=0, atol=0)


def test_random_elastic_deform_sigma_zero_is_identity_3d():
    x = _image(2, (9, 10, 11), 0)
    out = noisyseg_ext.random_elastic_deform([x, x.float()], 0.0, points=(2, 3, 4), order=[3, 1])
    torch.testing.assert_close(out[0], x, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(out[1], x.float())


# ----------------------------------------------------------------------------------------------
# custom-op machinery

@pytest.mark.any_cpu_isa
def test_opcheck():
    d = _grid(2, (10, 9), (3, 4), 2.0, 0)
    field = torch.ops.noisyseg.elastic_field(d, [10, 9])
    assert field.shape == (2, 2, 3, 9) and field.dtype == torch.float64
    torch.library.opcheck(torch.ops.noisyseg.elastic_field, (d, [10, 9]))
    torch.library.opcheck(torch.ops.noisyseg.elastic_field, (_grid(1, (6, 7, 8), (2, 3, 4), 2.0, 1), [6, 7, 8]))
    x = _image(2, (10, 9), 1, torch.float32)
    lab = _labels(2, (10, 9), 2, torch.int64)
    for args in [(x, field, 3, "mirror", 0.0, 0), (x, field, 1, "constant", 1.0, 0),
                 (lab, field, 0, "nearest", 0.0, 0)]:
        torch.library.opcheck(torch.ops.noisyseg.elastic_sample, args)


@pytest.mark.any_cpu_isa
def test_torch_compile_fullgraph():
    d = _grid(2, (16, 12), (3, 3), 3.0, 0)
    x = _image(2, (16, 12), 1, torch.float32)
    lab = _labels(2, (16, 12), 2, torch.uint8)

    def f(x, lab, d):
        img, mask = noisyseg_ext.elastic_deform([x, lab], d, order=[3, 0], mode="mirror")
        return img * 2, mask

    compiled = torch.compile(f, fullgraph=True)
    got, want = compiled(x, lab, d), f(x, lab, d)
    torch.testing.assert_close(got[0], want[0], rtol=0, atol=0)
    assert torch.equal(got[1], want[1])


@pytest.mark.parametrize("order", [0, 1, 3])
@pytest.mark.parametrize("mode", MODES)
def test_gradcheck_wrt_x(order, mode):
    for spatial, points, channels in [((7, 6), (3, 2), None), ((5, 4, 6), (2, 3, 2), 2)]:
        d = _grid(2, spatial, points, sigma=2.0, seed=3)
        x = _image(2, spatial, 4, channels=channels).requires_grad_()
        assert torch.autograd.gradcheck(lambda x: noisyseg_ext.elastic_deform(x, d, order=order, mode=mode, cval=0.3),
                                        (x,), eps=1e-6, atol=1e-8, fast_mode=True)


def test_gradient_matches_reference_autograd():
    d = _grid(2, (12, 9), (3, 3), sigma=3.0, seed=1)
    x = _image(2, (12, 9), 2, torch.float32).requires_grad_()
    g = _image(2, (12, 9), 3, torch.float32)
    (gx,) = torch.autograd.grad(noisyseg_ext.elastic_deform(x, d, order=3, mode="mirror"), x, g)
    (want,) = torch.autograd.grad(reference.elastic_deform(x, d, order=3, mode="mirror"), x, g)
    assert gx.dtype == torch.float32
    torch.testing.assert_close(gx, want, rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------------------------
# bad input

@pytest.mark.parametrize("call,exc,match", [
    (lambda x, d, lab: noisyseg_ext.elastic_deform(x[0], d), ValueError, "spatial"),                 # (H, W) only
    (lambda x, d, lab: noisyseg_ext.elastic_deform(x[:, None, None], d), ValueError, "spatial"),      # too many dims
    (lambda x, d, lab: noisyseg_ext.elastic_deform(x, d[:, :1]), ValueError, "shape\\[1\\]"),
    (lambda x, d, lab: noisyseg_ext.elastic_deform(x, d[:, :, :, :, None]), ValueError, "ndim"),
    (lambda x, d, lab: noisyseg_ext.elastic_deform(x, d[0]), ValueError, "displacement"),
    (lambda x, d, lab: noisyseg_ext.elastic_deform(x, d[:1]), ValueError, "samples"),
    (lambda x, d, lab: noisyseg_ext.elastic_deform(x, d[:, :, :1]), ValueError, "at least 2 points"),
    (lambda x, d, lab: noisyseg_ext.elastic_deform(x, d.long()), TypeError, "floating"),
    (lambda x, d, lab: noisyseg_ext.elastic_deform(x, d.numpy()), TypeError, "torch.Tensor"),
    (lambda x, d, lab: noisyseg_ext.elastic_deform(x.numpy(), d), TypeError, "tensor"),
    (lambda x, d, lab: noisyseg_ext.elastic_deform(x, d, order=2), ValueError, "order"),
    (lambda x, d, lab: noisyseg_ext.elastic_deform(x, d, order=1.0), TypeError, "order"),
    (lambda x, d, lab: noisyseg_ext.elastic_deform(x, d, mode="wrap"), ValueError, "mode"),
    (lambda x, d, lab: noisyseg_ext.elastic_deform(x, d, cval="0"), TypeError, "cval"),
    (lambda x, d, lab: noisyseg_ext.elastic_deform(lab, d, order=1), ValueError, "order=0"),
    (lambda x, d, lab: noisyseg_ext.elastic_deform(lab, d, cval=math.nan), ValueError, "finite"),
    (lambda x, d, lab: noisyseg_ext.elastic_deform(x, d, labels=True), TypeError, "label map"),
    (lambda x, d, lab: noisyseg_ext.elastic_deform([x, lab], d, labels=[False, True], order=[0, 0, 0]),
     ValueError, "entries"),
    (lambda x, d, lab: noisyseg_ext.elastic_deform([x, lab[:, :-1]], d), ValueError, "same spatial size"),
    (lambda x, d, lab: noisyseg_ext.elastic_deform([], d), TypeError, "non-empty"),
    (lambda x, d, lab: noisyseg_ext.elastic_deform(x.to(torch.int16), d), TypeError, "dtype|label map"),
    (lambda x, d, lab: noisyseg_ext.random_elastic_deform(x, -1.0), ValueError, "sigma"),
    (lambda x, d, lab: noisyseg_ext.random_elastic_deform(x, "1"), TypeError, "sigma"),
    (lambda x, d, lab: noisyseg_ext.random_elastic_deform(x, 2.0, points=1), ValueError, "points"),
    (lambda x, d, lab: noisyseg_ext.random_elastic_deform(x, 2.0, points=(3, 3, 3)), TypeError, "points"),
    (lambda x, d, lab: noisyseg_ext.random_elastic_deform(x[0, 0], 2.0), ValueError, "spatial"),
    (lambda x, d, lab: noisyseg_ext.random_elastic_deform(x, 2.0, labels=True), TypeError, "label map"),
])
@pytest.mark.any_cpu_isa
def test_bad_input(call, exc, match):
    x = _image(2, (12, 10), 0, torch.float32)
    lab = _labels(2, (12, 10), 1, torch.uint8)
    d = _grid(2, (12, 10), (3, 3), 2.0, 2)
    with pytest.raises(exc, match=match):
        call(x, d, lab)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_devices():
    x = _image(2, (12, 10), 0).cuda()
    d = _grid(2, (12, 10), (3, 3), 2.0, 2)
    # a CPU grid is copied to the images' device; a CUDA grid with CPU images is an error
    torch.testing.assert_close(noisyseg_ext.elastic_deform(x, d, order=3),
                               noisyseg_ext.elastic_deform(x, d.cuda(), order=3))
    with pytest.raises(ValueError, match="device"):
        noisyseg_ext.elastic_deform(x.cpu(), d.cuda())
    with pytest.raises(ValueError, match="device"):
        noisyseg_ext.elastic_deform([x, x.cpu()], d)


@pytest.mark.any_cpu_isa
def test_reference_fallback_path(monkeypatch):
    """What a CUDA tensor gets from a CPU-only build: the public function on the reference."""
    from noisyseg_ext.ops import elastic as elastic_mod

    d = _grid(2, (14, 11), (3, 4), 3.0, 0)
    img, lab = _image(2, (14, 11), 1, torch.float32), _labels(2, (14, 11), 2, torch.int32)
    want = noisyseg_ext.elastic_deform([img, lab], d, order=[3, 0], cval=[0.5, -1.5], mode="constant")
    monkeypatch.setattr(elastic_mod._kernels, "use_kernel", lambda op, device: False)
    got = noisyseg_ext.elastic_deform([img, lab], d, order=[3, 0], cval=[0.5, -1.5], mode="constant")
    torch.testing.assert_close(got[0], want[0], rtol=1e-5, atol=1e-5)
    assert (got[1] == want[1]).double().mean() >= 0.999
    assert (got[1] == -2).any()  # cval -1.5 rounds half away from zero, as elasticdeform
