"""V-Net (Milletari et al. 2016, "V-Net: Fully Convolutional Neural Networks for Volumetric Medical
Image Segmentation"), in the layout of UA-MT's ``code/networks/vnet.py`` (github yulequan/UA-MT), the
backbone PINT's lineage trains with 16 base filters.

Layout (``depth`` = 5 levels, as UA-MT): encoder stages of 1, 2, 3, 3, 3 convolutions (3x3(x3),
UA-MT's size; Milletari used 5x5x5), each level doubling the channels; down-sampling by a stride-2
convolution of kernel 2, up-sampling by a stride-2 transposed convolution of kernel 2; skips *added*
to the up-sampled features (UA-MT; Milletari concatenated); decoder stages of 3, 3, 2, 1 convolutions;
channel dropout on the bottom features and before the 1x1 head (UA-MT's two ``Dropout3d`` sites).

Differences from UA-MT's file, by default, and why:

* residual stages (Milletari: each stage learns a residual, the stage input is added to the output
  of its last convolution before the last activation). UA-MT defines ``ResidualConvBlock`` but its
  ``VNet`` uses the plain ``ConvBlock``; ``residual=False`` gives UA-MT's plain stages.
* PReLU (Milletari's activation, one learned slope per channel) instead of UA-MT's ReLU; chosen
  because the issue names Milletari's network; ``activation="relu"`` gives UA-MT's. PReLU cannot
  run in place, so it keeps one more activation tensor per layer (more memory in 3D).
* no convolution bias before a normalisation layer (the normalisation cancels it); with
  ``norm="none"`` convolutions have biases.
* GroupNorm with gcd(8, channels) groups (UA-MT: 16 groups, which fails for fewer than 16
  channels).
"""

from __future__ import annotations

import torch
from torch import nn

from noisyseg_ext.nets.layers import (ACTIVATIONS, activation_layer, channel_dropout, check_dims, check_input,
                                      check_norm, conv_cls, conv_transpose_cls, norm_layer)


class _Stage(nn.Module):
    """``n_convs`` x (conv 3 -> norm -> act); with ``residual`` the stage input (projected by a 1x1
    convolution when the channel count changes) is added before the last activation."""

    def __init__(self, n_convs: int, cin: int, cout: int, dims: int, norm: str, act: str, residual: bool):
        super().__init__()
        conv, bias = conv_cls(dims), norm == "none"
        layers: list[nn.Module] = []
        for i in range(n_convs):
            layers += [conv(cin if i == 0 else cout, cout, 3, padding=1, bias=bias), norm_layer(norm, dims, cout)]
            if i < n_convs - 1:
                layers.append(activation_layer(act, cout))
        self.convs = nn.Sequential(*layers)
        self.residual = residual
        self.shortcut = (nn.Identity() if cin == cout else conv(cin, cout, 1, bias=False)) if residual else None
        self.act = activation_layer(act, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.convs(x)
        if self.shortcut is not None:
            y = y + self.shortcut(x)
        return self.act(y)


def _resample(up: bool, cin: int, cout: int, dims: int, norm: str, act: str) -> nn.Sequential:
    """Stride-2 (transposed) convolution of kernel 2 -> norm -> act: UA-MT's Downsampling /
    UpsamplingDeconvBlock."""
    conv = conv_transpose_cls(dims) if up else conv_cls(dims)
    return nn.Sequential(conv(cin, cout, 2, stride=2, bias=norm == "none"), norm_layer(norm, dims, cout),
                         activation_layer(act, cout))


def _n_convs(level: int) -> int:
    """Convolutions of a stage at resolution level ``level`` (0 = full resolution): 1, 2, 3, 3, ..."""
    return min(level + 1, 3)


class VNet(nn.Module):
    """V-Net: ``depth`` resolution levels, ``base`` channels at the top, doubling per level.

    Input (N, in_channels, *spatial) float, every spatial size divisible by :attr:`size_multiple`
    = 2**(depth-1) (else ValueError); output logits (N, num_classes, *spatial) in the input's dtype.

    Args:
        in_channels, num_classes: input channels and output classes (background included).
        base: channels of the first level (16 as PINT / UA-MT).
        depth: resolution levels (default 5: four down-samplings, as UA-MT).
        dims: 2 or 3 spatial dimensions.
        norm: "batch" (UA-MT's choice for LA, and PINT's), "group", "instance" or "none".
        dropout: channel-dropout probability at the bottom and before the head (UA-MT uses 0.5 for
            the teacher's perturbed passes); 0 = off.
        activation: "prelu" (Milletari, default) or "relu" (UA-MT).
        residual: residual stages (Milletari, default) or plain ones (UA-MT's ``VNet``).

    The module holds no state outside its parameters and registered buffers, so
    ``torch.func.functional_call`` and ``torch.func.jvp`` apply.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 2, *, base: int = 16, depth: int = 5,
                 dims: int = 3, norm: str = "batch", dropout: float = 0.0, activation: str = "prelu",
                 residual: bool = True):
        super().__init__()
        check_dims(dims, "VNet")
        check_norm(norm, "VNet")
        if depth < 1:
            raise ValueError(f"VNet: depth must be >= 1; got {depth}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"VNet: activation must be one of {', '.join(ACTIVATIONS)}; got {activation!r}")
        self.dims, self.depth = dims, depth
        self.size_multiple = 2 ** (depth - 1)
        chans = [base * 2**i for i in range(depth)]
        act = activation
        self.enc = nn.ModuleList()
        self.down = nn.ModuleList()
        for level, c in enumerate(chans):
            # the down-sampling convolution doubles the channels, so stages below the top keep theirs
            cin = in_channels if level == 0 else c
            self.enc.append(_Stage(_n_convs(level), cin, c, dims, norm, act, residual))
            if level < depth - 1:
                self.down.append(_resample(False, c, chans[level + 1], dims, norm, act))
        # Decoder, from the level above the bottom up to full resolution.
        self.up = nn.ModuleList(_resample(True, chans[lv + 1], chans[lv], dims, norm, act)
                                for lv in reversed(range(depth - 1)))
        self.dec = nn.ModuleList(_Stage(_n_convs(lv), chans[lv], chans[lv], dims, norm, act, residual)
                                 for lv in reversed(range(depth - 1)))
        self.bottom_dropout = channel_dropout(dims, dropout)
        self.head_dropout = channel_dropout(dims, dropout)
        self.head = conv_cls(dims)(chans[0], num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x.shape, self.dims, self.size_multiple, "VNet")
        skips = []
        for level, stage in enumerate(self.enc):
            x = stage(x)
            if level < self.depth - 1:
                skips.append(x)
                x = self.down[level](x)
        x = self.bottom_dropout(x)
        for up, stage in zip(self.up, self.dec):
            x = stage(up(x) + skips.pop())
        return self.head(self.head_dropout(x))
