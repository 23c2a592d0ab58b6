"""Inference: whole-image padding and cropping, sliding windows with Gaussian weighting, against
MONAI's sliding_window_inference."""

import math
from contextlib import contextmanager

import pytest
import torch
from torch import nn

from noisyseg_ext.training.inference import (gaussian_importance, predict_batch, predict_logits,
                                             window_starts)


class MultipleChecked(nn.Module):
    """Identity on channel 0 (a 1-class output) that insists on sizes divisible by ``multiple``."""

    def __init__(self, multiple):
        super().__init__()
        self.multiple = multiple
        self.calls = []

    def forward(self, x):
        assert all(s % self.multiple == 0 for s in x.shape[2:]), x.shape
        self.calls.append(tuple(x.shape))
        return x[:, :1]


def conv_net(dims, kernel, seed=0):
    torch.manual_seed(seed)
    conv = nn.Conv2d if dims == 2 else nn.Conv3d
    return nn.Sequential(conv(2, 4, kernel, padding=kernel // 2), nn.Tanh(), conv(4, 3, 1)).eval()


@pytest.mark.parametrize("shape", [(13, 7), (16, 16), (5, 9, 6)])
def test_whole_image_identity_crops_back(shape):
    net = MultipleChecked(8)
    image = torch.randn(2, *shape)
    out = predict_logits(net, image, multiple=8)
    assert out.shape == (1, *shape) and out.dtype == torch.float32
    torch.testing.assert_close(out, image[:1])
    padded = tuple(-(-s // 8) * 8 for s in shape)
    assert net.calls == [(1, 2, *padded)]


def test_whole_image_pads_at_the_end_with_zeros():
    class Probe(nn.Module):
        def forward(self, x):
            self.seen = x.clone()
            return x
    net = Probe()
    image = torch.ones(1, 5, 6)
    predict_logits(net, image, multiple=4)
    assert net.seen.shape == (1, 1, 8, 8)
    assert net.seen[0, 0, :5, :6].eq(1).all() and net.seen[0, 0, 5:].eq(0).all() and net.seen[0, 0, :, 6:].eq(0).all()


def test_window_starts_follow_nnunet():
    assert window_starts(48, 16, 0.5) == [0, 8, 16, 24, 32]
    assert window_starts(16, 16, 0.5) == [0]
    assert window_starts(10, 16, 0.5) == [0]
    starts = window_starts(37, 16, 0.5)  # 4 windows, steps 7: evenly spread, last ends at the border
    assert starts == [0, 7, 14, 21]
    for size, patch, overlap in [(37, 16, 0.5), (100, 24, 0.25), (33, 32, 0.9), (50, 8, 0.0)]:
        s = window_starts(size, patch, overlap)
        assert s[0] == 0 and s[-1] == size - patch
        assert max(b - a for a, b in zip(s, s[1:])) <= patch * (1 - overlap) + 0.5


def test_gaussian_importance():
    w = gaussian_importance((16, 9))
    assert w.shape == (16, 9) and w.dtype == torch.float32
    torch.testing.assert_close(w, w.flip(0).flip(1))  # symmetric about the window centre
    edge = lambda p: math.exp(-0.5 * ((p - 1) / 2 / (p / 8)) ** 2)  # noqa: E731  (distance (p-1)/2, sigma p/8)
    assert w.max() == pytest.approx(math.exp(-0.5 * (0.5 / 2) ** 2))  # even axis: 1/2 pixel off centre
    assert w[0, 0].item() == pytest.approx(edge(16) * edge(9), rel=1e-5) and w.min() > 0  # no 1e-3 floor
    assert gaussian_importance((9, 5)).max() == 1  # odd sizes: a pixel at the centre
    assert w[8, 4] > w[0, 4] * 100  # the edge weighs far less than the centre (4 sigma: exp(-8))


@pytest.mark.parametrize("dims,shape,patch", [(2, (37, 29), (16, 16)), (2, (40, 40), (16, 8)),
                                              (3, (19, 13, 11), (8, 8, 8))])
def test_sliding_window_of_pointwise_net_equals_whole_image(dims, shape, patch):
    net = conv_net(dims, 1)
    image = torch.randn(2, *shape)
    whole = predict_logits(net, image)
    windows = predict_logits(net, image, multiple=8, patch=patch, overlap=0.5, batch=3)
    assert windows.shape == (3, *shape) and windows.dtype == torch.float32
    torch.testing.assert_close(windows, whole, rtol=1e-5, atol=1e-5)


def test_sliding_window_image_smaller_than_patch():
    net = MultipleChecked(16)
    image = torch.randn(1, 10, 40)  # axis 0 shorter than the patch, axis 1 longer
    out = predict_logits(net, image, multiple=16, patch=(16, 16), overlap=0.5)
    assert out.shape == (1, 10, 40)
    torch.testing.assert_close(out, image)
    assert all(c[2:] == (16, 16) for c in net.calls)


def test_sliding_window_batches_windows():
    net = MultipleChecked(1)
    predict_logits(net, torch.randn(1, 48, 48), patch=(16, 16), overlap=0.5, batch=8)  # 5 x 5 windows
    assert [c[0] for c in net.calls] == [8, 8, 8, 1]


def test_sliding_window_of_a_3x3_net_differs_only_near_window_borders():
    """A 3x3 conv sees zero padding at window borders: the blend differs from the whole-image
    output, but little (the Gaussian down-weights borders)."""
    net = conv_net(2, 3)
    image = torch.randn(2, 48, 48)
    whole = predict_logits(net, image)
    windows = predict_logits(net, image, patch=(16, 16), overlap=0.5)
    assert (windows - whole).abs().max() > 1e-4
    torch.testing.assert_close(windows[:, 1:-1, 1:-1], whole[:, 1:-1, 1:-1], rtol=0, atol=0.05)


MONAI_CASES = [(2, (48, 40), (16, 16)), (3, (24, 16, 20), (8, 8, 8))]


@pytest.mark.parametrize("dims,shape,patch", MONAI_CASES)
def test_matches_monai_sliding_window_with_our_weights(dims, shape, patch):
    """Where nnU-Net's and MONAI's window offsets coincide (``size - patch`` a multiple of
    ``patch * (1 - overlap)``) and MONAI is given our Gaussian: equal to float32 rounding (1e-5)."""
    monai = pytest.importorskip("monai.inferers")
    net = conv_net(dims, 3)
    image = torch.randn(2, *shape)
    ours = predict_logits(net, image, patch=patch, overlap=0.5, batch=4)
    with torch.no_grad():
        theirs = monai.sliding_window_inference(image[None], patch, 4, net, overlap=0.5, mode="gaussian",
                                                roi_weight_map=gaussian_importance(patch))[0]
    torch.testing.assert_close(ours, torch.as_tensor(theirs), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dims,shape,patch", MONAI_CASES)
def test_against_monai_gaussian_mode(dims, shape, patch):
    """MONAI's own "gaussian" mode floors the weights at 1e-3; that is the only difference. The mean
    difference is below 0.02 (measured 0.001 in 2D, 0.009 in 3D, logits of size ~1); where all
    covering windows weigh ~1e-3 or less MONAI lets window borders count (up to ~0.3 off on this
    net), so ours is the closer of the two to the whole-image output (the border-free ideal)."""
    monai = pytest.importorskip("monai.inferers")
    net = conv_net(dims, 3)
    image = torch.randn(2, *shape)
    ours = predict_logits(net, image, patch=patch, overlap=0.5, batch=4)
    with torch.no_grad():
        theirs = torch.as_tensor(monai.sliding_window_inference(image[None], patch, 4, net, overlap=0.5,
                                                                mode="gaussian")[0])
    assert (ours - theirs).abs().mean() < 0.02
    whole = predict_logits(net, image)
    assert (ours - whole).abs().max() < 0.01 < (theirs - whole).abs().max()
    assert (ours - whole).abs().mean() < (theirs - whole).abs().mean()


def test_autocast_is_entered_around_each_forward():
    entered = []

    @contextmanager
    def fake_autocast():
        entered.append(1)
        yield

    net = MultipleChecked(1)
    predict_logits(net, torch.randn(1, 32, 16), patch=(16, 16), overlap=0.0, batch=1, autocast=fake_autocast)
    assert len(entered) == len(net.calls) == 2
    out = predict_logits(conv_net(2, 1), torch.randn(2, 8, 8), autocast=lambda: torch.autocast("cpu", torch.bfloat16))
    assert out.dtype == torch.float32


def test_predict_batch_chunks_and_crops():
    net = MultipleChecked(4)
    images = torch.randn(5, 2, 10, 7)
    out = predict_batch(net, images, multiple=4, batch=2)
    assert out.shape == (5, 1, 10, 7)
    torch.testing.assert_close(out, images[:, :1])
    assert [c[0] for c in net.calls] == [2, 2, 1] and all(c[2:] == (12, 8) for c in net.calls)
    conv = conv_net(2, 3)
    single = torch.stack([predict_logits(conv, im, multiple=4) for im in images])
    torch.testing.assert_close(predict_batch(conv, images, multiple=4, batch=3), single, rtol=1e-5, atol=1e-6)


def test_no_grad_and_bad_input():
    net = conv_net(2, 1)
    image = torch.randn(2, 8, 8, requires_grad=True)
    assert not predict_logits(net, image).requires_grad
    with pytest.raises(ValueError, match="divisible"):
        predict_logits(net, torch.randn(2, 32, 32), multiple=16, patch=(24, 24))
    with pytest.raises(ValueError, match="one positive size per spatial axis"):
        predict_logits(net, torch.randn(2, 32, 32), patch=(16,))
    with pytest.raises(ValueError, match="overlap"):
        predict_logits(net, torch.randn(2, 32, 32), patch=(16, 16), overlap=1.0)
    with pytest.raises(ValueError, match="float tensor"):
        predict_logits(net, torch.zeros(2, 8, 8, dtype=torch.long))
    with pytest.raises(ValueError, match="float tensor"):
        predict_batch(net, torch.randn(0, 2, 8, 8))  # no images
    with pytest.raises(ValueError, match="same spatial size"):
        predict_logits(nn.Conv2d(2, 1, 3), torch.randn(2, 8, 8))
