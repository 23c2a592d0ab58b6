"""distance_transform and mask_surface: kernels vs scipy.ndimage, vs the pure-torch reference,
conventions (empty / full masks), bad input, opcheck and torch.compile."""

import math

import numpy as np
import pytest
import scipy.ndimage as ndi
import torch

import noisyseg_ext
from noisyseg_ext.ops import reference
from noisyseg_ext.ops.distance_transform import mask_surface

SHAPES = [(3, 40), (2, 17, 23), (3, 31, 8), (2, 9, 11, 13), (2, 12, 1, 7), (1, 1, 5, 6)]


def random_mask(shape, density, gen):
    return torch.rand(shape, generator=gen) < density


def scipy_edt(mask, spacing):
    return np.stack([ndi.distance_transform_edt(~m, sampling=spacing) for m in mask.cpu().numpy()])


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("density", [0.02, 0.3, 0.9])
def test_matches_scipy_unit_spacing_exactly(shape, density, device):
    gen = torch.Generator().manual_seed(hash((shape, density)) % 2**31)
    mask = random_mask(shape, density, gen)
    mask.view(mask.shape[0], -1)[:, 0] = True  # no empty image here (scipy has no convention)
    got = noisyseg_ext.distance_transform(mask.to(device))
    assert got.dtype == torch.float32 and got.shape == mask.shape and got.device.type == device.type
    # unit spacing: every intermediate is an integer, so the result is scipy's rounded to float32
    np.testing.assert_array_equal(got.cpu().numpy(), scipy_edt(mask, None).astype(np.float32))


@pytest.mark.parametrize("shape", SHAPES)
def test_matches_scipy_anisotropic(shape, device):
    gen = torch.Generator().manual_seed(7)
    mask = random_mask(shape, 0.05, gen)
    mask.view(mask.shape[0], -1)[:, -1] = True
    D = len(shape) - 1
    spacing = [0.7, 2.3, 1.1][:D]
    got = noisyseg_ext.distance_transform(mask.to(device), spacing=spacing)
    np.testing.assert_allclose(got.cpu().numpy(), scipy_edt(mask, spacing), rtol=4e-7, atol=0)


def test_scalar_spacing_and_tensor_spacing():
    mask = torch.zeros(1, 6, 7, dtype=torch.bool)
    mask[0, 2, 3] = True
    a = noisyseg_ext.distance_transform(mask, spacing=2.5)
    b = noisyseg_ext.distance_transform(mask, spacing=torch.tensor([2.5, 2.5]))
    np.testing.assert_allclose(a.numpy(), 2.5 * scipy_edt(mask, None), rtol=4e-7)
    assert torch.equal(a, b)


@pytest.mark.parametrize("shape", [(2, 33), (2, 14, 19), (2, 7, 9, 8)])
def test_matches_reference(shape, device):
    gen = torch.Generator().manual_seed(3)
    mask = random_mask(shape, 0.1, gen).to(device)
    mask[1] = False  # one empty image
    spacing = [1.7, 0.6, 1.2][: len(shape) - 1]
    got = noisyseg_ext.distance_transform(mask, spacing=spacing)
    ref = reference.distance_transform(mask, spacing)
    torch.testing.assert_close(got, ref, rtol=4e-7, atol=0)


def test_empty_and_full_masks(device):
    mask = torch.zeros(3, 5, 6, 4, dtype=torch.bool, device=device)
    mask[1] = True
    mask[2, 4, 5, 3] = True
    got = noisyseg_ext.distance_transform(mask, spacing=(1.0, 2.0, 3.0))
    assert torch.isinf(got[0]).all() and (got[0] > 0).all()   # empty: +inf everywhere
    assert (got[1] == 0).all()                                # full: 0 everywhere
    assert got[2, 4, 5, 3] == 0
    assert got[2, 0, 0, 0].item() == pytest.approx(math.sqrt(16 + 100 + 81))


def test_single_seed_far_corner_long_line(device):
    mask = torch.zeros(1, 2000, dtype=torch.bool, device=device)
    mask[0, -1] = True
    got = noisyseg_ext.distance_transform(mask, spacing=0.5)
    expected = 0.5 * torch.arange(1999, -1, -1, dtype=torch.float32)
    torch.testing.assert_close(got[0].cpu(), expected, rtol=0, atol=0)


def test_binary_integer_and_float_inputs(device):
    gen = torch.Generator().manual_seed(1)
    mask = random_mask((2, 10, 12), 0.2, gen).to(device)
    ref = noisyseg_ext.distance_transform(mask)
    for dtype in (torch.uint8, torch.int64, torch.float32):
        assert torch.equal(noisyseg_ext.distance_transform(mask.to(dtype)), ref)
    # non-contiguous input
    t = mask.transpose(1, 2)
    assert torch.equal(noisyseg_ext.distance_transform(t), noisyseg_ext.distance_transform(t.contiguous()))


def test_zero_size():
    assert noisyseg_ext.distance_transform(torch.zeros(0, 4, 4, dtype=torch.bool)).shape == (0, 4, 4)
    assert noisyseg_ext.distance_transform(torch.zeros(2, 0, 4, dtype=torch.bool)).shape == (2, 0, 4)


@pytest.mark.any_cpu_isa
def test_bad_input():
    mask = torch.zeros(2, 4, 5, dtype=torch.bool)
    with pytest.raises(ValueError, match="binary"):
        noisyseg_ext.distance_transform(torch.full((2, 4, 5), 2))
    with pytest.raises(ValueError, match="binary"):
        noisyseg_ext.distance_transform(torch.full((2, 4, 5), 0.5))
    with pytest.raises(ValueError, match="spatial dims"):
        noisyseg_ext.distance_transform(torch.zeros(4, dtype=torch.bool))
    with pytest.raises(ValueError, match="spatial dims"):
        noisyseg_ext.distance_transform(torch.zeros(1, 2, 3, 4, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="expected one per spatial dim"):
        noisyseg_ext.distance_transform(mask, spacing=(1.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="> 0"):
        noisyseg_ext.distance_transform(mask, spacing=(1.0, -1.0))
    with pytest.raises(ValueError, match="> 0"):
        noisyseg_ext.distance_transform(mask, spacing=0)
    with pytest.raises(ValueError, match="> 0"):
        noisyseg_ext.distance_transform(mask, spacing=(float("nan"), 1.0))
    with pytest.raises(TypeError, match="spacing"):
        noisyseg_ext.distance_transform(mask, spacing="1")
    with pytest.raises(TypeError, match="torch.Tensor"):
        noisyseg_ext.distance_transform(np.zeros((2, 4, 5), bool))


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int32, torch.int64])
def test_mask_boxes_match_numpy(dtype, device):
    gen = torch.Generator().manual_seed(5)
    labels = torch.zeros(2, 9, 12, 14, dtype=torch.int64)
    labels[0, 2:5, 3:9, 1:4] = 1
    labels[0, 7, 11, 13] = 1
    labels[1, 4, 5:7, 6] = 2
    labels[1] = torch.where(random_mask((9, 12, 14), 0.01, gen), 1, labels[1])
    pred, ref = labels.to(dtype).to(device), labels.flip(1).to(dtype).to(device)
    S = 9 * 12 * 14
    # (source, plane offset, first class, classes, first box): classes 1..3 of both images of both
    # sources; class 3 is empty everywhere
    rows = torch.tensor([[w, n * S, 1, 3, (2 * w + n) * 3] for w in (0, 1) for n in (0, 1)], device=device)
    box, flag = torch.ops.noisyseg.mask_boxes(pred, ref, rows, [9, 12, 14], 12, 4)
    assert flag.tolist()[0] == 0
    box = box.cpu()
    for w, src in enumerate((labels, labels.flip(1))):
        for n in range(2):
            for k, cls in enumerate((1, 2, 3)):
                b = box[(2 * w + n) * 3 + k]
                m = (src[n] == cls).numpy()
                if not m.any():
                    assert b[3:].tolist() == [-1, -1, -1] and (b[:3] == torch.iinfo(torch.int32).max).all()
                    continue
                where = np.argwhere(m)
                assert b.tolist() == where.min(0).tolist() + where.max(0).tolist()
    # a value outside [0, num_values) is flagged
    _, flag = torch.ops.noisyseg.mask_boxes(pred, ref, rows, [9, 12, 14], 12, 2)
    assert flag.tolist() == [1, 2]
    # 1D images: the padded leading axes span [0, 0]
    flat = torch.tensor([[0, 1, 1, 0, 1, 0]], dtype=dtype, device=device)
    one = torch.tensor([[0, 0, 1, 1, 0]], device=device)
    assert torch.ops.noisyseg.mask_boxes(flat, flat, one, [6], 1, 2)[0].tolist() == [[0, 0, 1, 0, 0, 4]]


@pytest.mark.parametrize("shape", [(3, 30), (2, 13, 17), (2, 6, 7, 9), (1, 1, 4, 5), (2, 5, 1)])
def test_surface_matches_scipy_erosion(shape, device):
    gen = torch.Generator().manual_seed(11)
    mask = random_mask(shape, 0.7, gen)
    mask[-1] = True  # a full image: its surface is the image border
    got = mask_surface(mask.to(device)).cpu().numpy()
    cross = ndi.generate_binary_structure(len(shape) - 1, 1)
    for b, m in enumerate(mask.numpy()):
        expected = m ^ ndi.binary_erosion(m, structure=cross)  # border_value=0 (default)
        np.testing.assert_array_equal(got[b], expected)
    assert torch.equal(mask_surface(mask.to(device)), reference.mask_surface(mask.to(device)))


@pytest.mark.any_cpu_isa
def test_opcheck():
    gen = torch.Generator().manual_seed(2)
    mask = random_mask((2, 9, 10), 0.2, gen)
    torch.library.opcheck(torch.ops.noisyseg.distance_transform.default, (mask, [1.0, 2.0]))
    torch.library.opcheck(torch.ops.noisyseg.mask_surface.default, (mask,))
    rows = torch.tensor([[0, 0, 1, 1, 0], [1, 90, 1, 1, 1]])
    torch.library.opcheck(torch.ops.noisyseg.mask_boxes.default, (mask, mask, rows, [9, 10], 2, 2))


@pytest.mark.any_cpu_isa
def test_torch_compile_fullgraph():
    def f(m):
        return noisyseg_ext.distance_transform(m, spacing=(1.0, 0.5)).clamp(max=4.0) + mask_surface(m).float()

    gen = torch.Generator().manual_seed(4)
    mask = random_mask((2, 11, 13), 0.1, gen)
    compiled = torch.compile(f, fullgraph=True)  # inductor around the opaque custom ops
    assert torch.equal(compiled(mask), f(mask))
