"""U-Net for 2D or 3D segmentation (Ronneberger et al. 2015), kept small and configurable."""

from __future__ import annotations

import torch
from torch import nn

from noisyseg_ext.nets.layers import (channel_dropout, check_dims, check_input, check_norm, conv_cls,
                                      conv_transpose_cls, norm_layer)


class _Block(nn.Sequential):
    """Two (conv 3 -> norm -> ReLU), then channel dropout when ``dropout`` > 0."""

    def __init__(self, cin: int, cout: int, dims: int, norm: str, dropout: float):
        conv = conv_cls(dims)
        bias = norm == "none"  # a bias before a normalisation layer is cancelled by it
        layers = [conv(cin, cout, 3, padding=1, bias=bias), norm_layer(norm, dims, cout), nn.ReLU(inplace=True),
                  conv(cout, cout, 3, padding=1, bias=bias), norm_layer(norm, dims, cout), nn.ReLU(inplace=True)]
        if dropout:
            layers.append(channel_dropout(dims, dropout))
        super().__init__(*layers)


class UNet(nn.Module):
    """U-Net: ``depth`` resolution levels, ``base`` channels at the top, doubling per level; max-pool
    down, transposed conv up, skips concatenated.

    Input (N, in_channels, *spatial) float, every spatial size divisible by :attr:`size_multiple`
    = 2**(depth-1) (else ValueError); output logits (N, num_classes, *spatial) in the input's dtype.
    ``dims`` 2 or 3; ``norm`` "batch" / "instance" / "group" / "none"; ``dropout`` (a probability,
    0 = off) after each decoder block (used by mean-teacher perturbations). The module holds no
    state outside its parameters and registered buffers, so ``torch.func.functional_call`` and
    ``torch.func.jvp`` apply.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 2, *, base: int = 16, depth: int = 4,
                 dims: int = 2, norm: str = "batch", dropout: float = 0.0):
        super().__init__()
        check_dims(dims, "UNet")
        check_norm(norm, "UNet")
        if depth < 1:
            raise ValueError(f"UNet: depth must be >= 1; got {depth}")
        channel_dropout(dims, dropout)  # validates the probability
        self.dims, self.depth = dims, depth
        self.size_multiple = 2 ** (depth - 1)
        chans = [base * 2**i for i in range(depth)]
        self.down = nn.ModuleList()
        cin = in_channels
        for c in chans:
            self.down.append(_Block(cin, c, dims, norm, 0.0))
            cin = c
        up_conv = conv_transpose_cls(dims)
        self.up = nn.ModuleList(up_conv(chans[i + 1], chans[i], 2, stride=2) for i in reversed(range(depth - 1)))
        self.dec = nn.ModuleList(_Block(2 * chans[i], chans[i], dims, norm, dropout)
                                 for i in reversed(range(depth - 1)))
        self.head = conv_cls(dims)(chans[0], num_classes, 1)
        self.pool = nn.MaxPool2d(2) if dims == 2 else nn.MaxPool3d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x.shape, self.dims, self.size_multiple, "UNet")
        skips = []
        for i, block in enumerate(self.down):
            x = block(x)
            if i < self.depth - 1:
                skips.append(x)
                x = self.pool(x)
        for up, dec in zip(self.up, self.dec):
            x = dec(torch.cat([up(x), skips.pop()], dim=1))
        return self.head(x)
