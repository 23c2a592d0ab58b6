"""The weight networks: MW-Net's MLP on image losses and MCPM's fully convolutional meta mask network.

Both take detached losses and return weights in (0, 1) (a sigmoid). They run in their parameters'
dtype (float32 unless converted) whatever autocast is active: they are small, and their output
scales every pixel's gradient.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint


def _own_precision(module: nn.Module, x: Tensor):
    """An autocast-free context for ``x``'s device, and ``x`` in ``module``'s parameter dtype."""
    return torch.autocast(x.device.type, enabled=False), x.to(next(module.parameters()).dtype)


class MetaWeightNet(nn.Module):
    """MW-Net's weight net (Shu et al. 2019): Linear(1 -> hidden) -> ReLU -> Linear(hidden -> 1) ->
    sigmoid, applied to each image's mean loss.

    forward(losses (N,) float) -> weights (N,) in (0, 1), float32 (the parameters' dtype).
    """

    def __init__(self, hidden: int = 100):
        super().__init__()
        if hidden < 1:
            raise ValueError(f"MetaWeightNet: hidden must be >= 1; got {hidden}")
        self.net = nn.Sequential(nn.Linear(1, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, 1))

    def forward(self, losses: Tensor) -> Tensor:
        if losses.dim() != 1:
            raise ValueError(f"MetaWeightNet: expected per-image losses (N,); got shape {tuple(losses.shape)}")
        ctx, x = _own_precision(self, losses)
        with ctx:
            return torch.sigmoid(self.net(x.unsqueeze(1))).squeeze(1)


class MetaMaskNet(nn.Module):
    """MCPM's meta mask network (Wang et al. 2020): Conv3x3(1 -> hidden) -> ReLU -> Conv3x3(hidden -> 1)
    -> sigmoid, zero padding (3x3x3 for volumes), on the per-pixel loss map.

    forward(loss_map (N, *spatial) float) -> R (N, *spatial) in (0, 1), float32 (the parameters' dtype).
    ``dims`` 2 or 3. The parameters are those two convolutions (``net.0``, ``net.2``).

    Computed as matrix products rather than convolutions: with one input and one output channel,
    conv1 is ``cols @ W1^T`` over each pixel's 3x3 neighbourhood ``cols`` (im2col, 9 values a pixel)
    and conv2 is ``relu(...) @ W2`` (9 taps a pixel) followed by a fixed one-hot 3x3 convolution that
    sums the taps from the neighbours. Everything between im2col and that last sum is per pixel, so
    on the CPU it runs in chunks of :attr:`chunk_pixels` pixels whose 100-channel hidden map stays in
    cache and, when a gradient is needed, is recomputed in the backward (checkpointing) instead of
    being stored. Measured at 8 x 112 x 160, one thread: forward + backward + forward without
    gradient 0.20 s against 0.62-0.65 s for the two oneDNN convolutions (channels-last or not), and no
    hidden map (57 MB there) in memory.
    On other devices the whole batch is one chunk (no checkpoint).
    """

    chunk_pixels_cpu = 4096

    def __init__(self, dims: int = 2, hidden: int = 100):
        super().__init__()
        if dims not in (2, 3):
            raise ValueError(f"MetaMaskNet: dims must be 2 or 3; got {dims}")
        if hidden < 1:
            raise ValueError(f"MetaMaskNet: hidden must be >= 1; got {hidden}")
        conv = nn.Conv2d if dims == 2 else nn.Conv3d
        self.dims, self.hidden = dims, hidden
        self.net = nn.Sequential(conv(1, hidden, 3, padding=1), nn.ReLU(inplace=True), conv(hidden, 1, 3, padding=1))
        taps = 3 ** dims
        # sum_k z_k(p + offset_k): channel k of this kernel is 1 at offset k, in the weights' order
        self.register_buffer("tap_sum", torch.eye(taps).view(1, taps, *(3,) * dims), persistent=False)

    def forward(self, loss_map: Tensor) -> Tensor:
        if loss_map.dim() != self.dims + 1:
            raise ValueError(f"MetaMaskNet({self.dims}D): expected a loss map (N, *spatial) with {self.dims} spatial "
                             f"dims; got shape {tuple(loss_map.shape)}")
        ctx, x = _own_precision(self, loss_map)
        conv1, conv2 = self.net[0], self.net[2]
        taps = 3 ** self.dims
        w1t, w2 = conv1.weight.view(self.hidden, taps).t(), conv2.weight.view(self.hidden, taps)
        with ctx:
            cols = neighbourhoods(x)
            chunk = self.chunk_pixels_cpu if x.device.type == "cpu" else cols.shape[0]
            if cols.shape[0] <= chunk:
                z = _taps(cols, w1t, conv1.bias, w2)
            elif torch.is_grad_enabled():
                z = torch.cat([checkpoint(_taps, c, w1t, conv1.bias, w2, use_reentrant=False, preserve_rng_state=False)
                               for c in cols.split(chunk)])
            else:
                z = torch.cat([_taps(c, w1t, conv1.bias, w2) for c in cols.split(chunk)])
            z = z.view(*x.shape, taps).movedim(-1, 1)
            conv = F.conv2d if self.dims == 2 else F.conv3d
            out = conv(z, self.tap_sum, padding=1).squeeze(1) + conv2.bias
            return torch.sigmoid(out)


def neighbourhoods(x: Tensor) -> Tensor:
    """im2col: (N, *spatial) -> (N * V, 3**dims), each pixel's zero-padded 3x3 (3x3x3) neighbourhood in
    the order of a convolution kernel's weights (row-major offsets), so ``cols @ W.view(C, -1).T`` is
    the convolution with ``W`` (cross-correlation, padding 1)."""
    dims = x.dim() - 1
    padded = F.pad(x, (1, 1) * dims)
    size = x.shape[1:]
    views = [padded[(slice(None),) + tuple(slice(o, o + n) for o, n in zip(offset, size))]
             for offset in itertools.product(range(3), repeat=dims)]
    return torch.stack(views, dim=-1).reshape(-1, 3 ** dims)


def _taps(cols: Tensor, w1t: Tensor, b1: Tensor, w2: Tensor) -> Tensor:
    """Per pixel: z_k = sum_c W2[c, k] relu(W1 cols + b1)_c, (P, K) -> (P, K)."""
    return torch.relu_(torch.addmm(b1, cols, w1t)) @ w2
