"""U-Net for 2D or 3D segmentation (Ronneberger et al. 2015), kept small and configurable."""

from __future__ import annotations

import torch
from torch import nn


def _conv(dims: int):
    return nn.Conv2d if dims == 2 else nn.Conv3d


def _norm(kind: str, dims: int, channels: int) -> nn.Module:
    if kind == "batch":
        return (nn.BatchNorm2d if dims == 2 else nn.BatchNorm3d)(channels)
    if kind == "instance":
        return (nn.InstanceNorm2d if dims == 2 else nn.InstanceNorm3d)(channels, affine=True)
    if kind == "group":
        return nn.GroupNorm(min(8, channels), channels)
    raise ValueError(f"UNet: norm must be 'batch', 'instance' or 'group'; got {kind!r}")


class _Block(nn.Sequential):
    def __init__(self, cin: int, cout: int, dims: int, norm: str, dropout: float):
        conv = _conv(dims)
        layers = [conv(cin, cout, 3, padding=1, bias=False), _norm(norm, dims, cout), nn.ReLU(inplace=True),
                  conv(cout, cout, 3, padding=1, bias=False), _norm(norm, dims, cout), nn.ReLU(inplace=True)]
        if dropout:
            layers.append((nn.Dropout2d if dims == 2 else nn.Dropout3d)(dropout))
        super().__init__(*layers)


class UNet(nn.Module):
    """U-Net: ``depth`` resolution levels, ``base`` channels at the top, doubling per level.

    Input (N, in_channels, *spatial) with every spatial size divisible by 2**(depth-1);
    output logits (N, num_classes, *spatial). ``dims`` 2 or 3; ``norm`` "batch" / "instance" /
    "group"; ``dropout`` after each decoder block (used by mean-teacher perturbations).
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 2, *, base: int = 16, depth: int = 4,
                 dims: int = 2, norm: str = "batch", dropout: float = 0.0):
        super().__init__()
        if dims not in (2, 3):
            raise ValueError(f"UNet: dims must be 2 or 3; got {dims}")
        if depth < 1:
            raise ValueError(f"UNet: depth must be >= 1; got {depth}")
        self.dims, self.depth = dims, depth
        chans = [base * 2**i for i in range(depth)]
        self.down = nn.ModuleList()
        cin = in_channels
        for c in chans:
            self.down.append(_Block(cin, c, dims, norm, 0.0))
            cin = c
        up_conv = nn.ConvTranspose2d if dims == 2 else nn.ConvTranspose3d
        self.up = nn.ModuleList(up_conv(chans[i + 1], chans[i], 2, stride=2) for i in reversed(range(depth - 1)))
        self.dec = nn.ModuleList(_Block(2 * chans[i], chans[i], dims, norm, dropout) for i in reversed(range(depth - 1)))
        self.head = _conv(dims)(chans[0], num_classes, 1)
        self.pool = nn.MaxPool2d(2) if dims == 2 else nn.MaxPool3d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        factor = 2 ** (self.depth - 1)
        if any(s % factor for s in x.shape[2:]):
            raise ValueError(f"UNet: spatial sizes {tuple(x.shape[2:])} must be divisible by {factor}")
        skips = []
        for i, block in enumerate(self.down):
            x = block(x)
            if i < self.depth - 1:
                skips.append(x)
                x = self.pool(x)
        for up, dec in zip(self.up, self.dec):
            x = dec(torch.cat([up(x), skips.pop()], dim=1))
        return self.head(x)
