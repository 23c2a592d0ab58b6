"""Layer factories the networks share: convolutions, normalisation and activation by name and number
of spatial dimensions."""

from __future__ import annotations

import math

from torch import nn

NORMS = ("batch", "group", "instance", "none")
ACTIVATIONS = ("prelu", "relu")


def check_dims(dims: int, owner: str) -> None:
    """Raises ValueError unless ``dims`` is 2 or 3."""
    if dims not in (2, 3):
        raise ValueError(f"{owner}: dims must be 2 or 3; got {dims!r}")


def conv_cls(dims: int) -> type[nn.Module]:
    """``nn.Conv2d`` or ``nn.Conv3d``."""
    return nn.Conv2d if dims == 2 else nn.Conv3d


def conv_transpose_cls(dims: int) -> type[nn.Module]:
    """``nn.ConvTranspose2d`` or ``nn.ConvTranspose3d``."""
    return nn.ConvTranspose2d if dims == 2 else nn.ConvTranspose3d


def channel_dropout(dims: int, p: float) -> nn.Module:
    """Dropout of whole channels (``nn.Dropout2d`` / ``nn.Dropout3d``), or identity when ``p`` is 0.

    Channel dropout, as UA-MT's ``nn.Dropout3d``: the mean-teacher methods use it to perturb the
    teacher's T passes (METHODS.md section 5)."""
    if not 0.0 <= p < 1.0:
        raise ValueError(f"dropout must be a probability in [0, 1); got {p!r}")
    if p == 0:
        return nn.Identity()
    return (nn.Dropout2d if dims == 2 else nn.Dropout3d)(p)


def check_norm(kind: str, owner: str) -> None:
    """Raises ValueError unless ``kind`` is one of :data:`NORMS`."""
    if kind not in NORMS:
        raise ValueError(f"{owner}: norm must be one of {', '.join(NORMS)}; got {kind!r}")


def norm_layer(kind: str, dims: int, channels: int) -> nn.Module:
    """A normalisation layer over ``channels`` channels: ``batch`` (BatchNorm, running statistics as
    buffers), ``instance`` (InstanceNorm with affine parameters, no running statistics), ``group``
    (GroupNorm with gcd(8, channels) groups, so any channel count works) or ``none`` (identity)."""
    check_norm(kind, "norm_layer")
    if kind == "batch":
        return (nn.BatchNorm2d if dims == 2 else nn.BatchNorm3d)(channels)
    if kind == "instance":
        return (nn.InstanceNorm2d if dims == 2 else nn.InstanceNorm3d)(channels, affine=True)
    if kind == "group":
        return nn.GroupNorm(math.gcd(8, channels), channels)
    return nn.Identity()


def activation_layer(kind: str, channels: int) -> nn.Module:
    """``prelu`` (one learned slope per channel, as V-Net's Caffe model) or ``relu``."""
    if kind == "prelu":
        return nn.PReLU(channels)
    if kind == "relu":
        return nn.ReLU(inplace=True)
    raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}; got {kind!r}")


def check_input(x_shape, dims: int, multiple: int, owner: str) -> None:
    """Raises ValueError unless ``x_shape`` is (N, C, *spatial) with ``dims`` spatial sizes that all
    divide by ``multiple``."""
    if len(x_shape) != dims + 2:
        raise ValueError(f"{owner}: expected a (N, C, *spatial) input with {dims} spatial dims; "
                         f"got shape {tuple(x_shape)}")
    spatial = tuple(x_shape[2:])
    if any(s % multiple for s in spatial):
        raise ValueError(f"{owner}: spatial sizes {spatial} must be divisible by {multiple} "
                         f"(pad the input, e.g. noisyseg_ext.training.inference.predict_logits(multiple={multiple}))")
