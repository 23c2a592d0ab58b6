"""Networks by name (the ``--net`` option): :data:`NETS`, :func:`build_net`, and :func:`size_multiple`
for any ``nn.Module``."""

from __future__ import annotations

from typing import Callable, Optional

from torch import nn

from noisyseg_ext.errors import ConfigError
from noisyseg_ext.nets.unet import UNet
from noisyseg_ext.nets.vnet import VNet

#: name -> (constructor, default depth). A constructor takes ``(in_channels, num_classes, *, base,
#: depth, dims, norm, dropout)`` and returns an ``nn.Module`` mapping (N, in_channels, *spatial) to
#: logits (N, num_classes, *spatial). Add an entry to make a network available by name.
NETS: dict[str, tuple[Callable[..., nn.Module], int]] = {
    "unet": (UNet, 4),
    "vnet": (VNet, 5),  # UA-MT's V-Net: four down-samplings
}


def build_net(name: str, *, in_channels: int, num_classes: int, dims: int, base: int = 16,
              depth: Optional[int] = None, norm: str = "batch", dropout: float = 0.0) -> nn.Module:
    """The network ``name`` (a key of :data:`NETS`), freshly initialised (seed torch first).

    ``depth`` None means the network's default (unet 4, vnet 5). Raises ConfigError for an unknown
    name (listing the choices) or options the network rejects (bad dims, norm, depth, dropout).
    """
    if name not in NETS:
        raise ConfigError(f"unknown network {name!r}; choose one of: {', '.join(sorted(NETS))}")
    cls, default_depth = NETS[name]
    try:
        return cls(in_channels, num_classes, base=base, depth=default_depth if depth is None else depth,
                   dims=dims, norm=norm, dropout=dropout)
    except ValueError as e:
        raise ConfigError(f"--net {name}: {e}") from e


def size_multiple(net: nn.Module) -> int:
    """What every spatial input size of ``net`` must divide by: its ``size_multiple`` attribute
    (UNet / VNet: 2**(depth-1)), else 1 (any other module; unwraps DDP / compiled modules)."""
    for candidate in (net, getattr(net, "module", None), getattr(net, "_orig_mod", None)):
        value = getattr(candidate, "size_multiple", None) if candidate is not None else None
        if value is not None:
            return int(value)
    return 1
