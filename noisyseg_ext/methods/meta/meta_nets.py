"""The weight networks: MW-Net's MLP on image losses and MCPM's fully convolutional meta mask network.

Both take detached losses and return weights in (0, 1) (a sigmoid). They run in their parameters'
dtype (float32 unless converted) whatever autocast is active: they are small, and their output
scales every pixel's gradient.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


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
    ``dims`` 2 or 3.
    The input goes in channels-last layout: the hidden map has ``hidden`` channels at full
    resolution, and oneDNN's channels-last convolutions took half the time (forward + backward, CPU)
    of the contiguous ones on the benchmark's shape.
    """

    def __init__(self, dims: int = 2, hidden: int = 100):
        super().__init__()
        if dims not in (2, 3):
            raise ValueError(f"MetaMaskNet: dims must be 2 or 3; got {dims}")
        if hidden < 1:
            raise ValueError(f"MetaMaskNet: hidden must be >= 1; got {hidden}")
        conv = nn.Conv2d if dims == 2 else nn.Conv3d
        self.dims = dims
        self.net = nn.Sequential(conv(1, hidden, 3, padding=1), nn.ReLU(inplace=True), conv(hidden, 1, 3, padding=1))

    def forward(self, loss_map: Tensor) -> Tensor:
        if loss_map.dim() != self.dims + 1:
            raise ValueError(f"MetaMaskNet({self.dims}D): expected a loss map (N, *spatial) with {self.dims} spatial "
                             f"dims; got shape {tuple(loss_map.shape)}")
        ctx, x = _own_precision(self, loss_map)
        layout = torch.channels_last if self.dims == 2 else torch.channels_last_3d
        with ctx:
            out = self.net(x.unsqueeze(1).contiguous(memory_format=layout))
            return torch.sigmoid(out).squeeze(1).contiguous()
