"""Which parameters of the segmentation network the virtual step moves (``--meta-params``).

``all``: every trainable parameter (the exact MW-Net / MCPM step). ``head``: the last decoder block
and the output convolution, a known approximation (the meta-gradient then sees only how the loss map
reweighting moves the last layers). Otherwise a comma list of parameter-name prefixes, e.g.
``dec.2,head``.
"""

from __future__ import annotations

from typing import Sequence, Union

from torch import nn

from noisyseg_ext.errors import ConfigError


def unwrap(net: nn.Module) -> nn.Module:
    """The bare module under DistributedDataParallel (``.module``) or ``torch.compile``
    (``._orig_mod``) wrappers; parameter names are those of the bare module."""
    while True:
        inner = getattr(net, "module", None) if isinstance(net, nn.parallel.DistributedDataParallel) else None
        inner = inner if inner is not None else getattr(net, "_orig_mod", None)
        if inner is None:
            return net
        net = inner


def head_prefixes(net: nn.Module) -> tuple[str, ...]:
    """The parameter-name prefixes of ``--meta-params head``.

    A network may say it itself with a ``meta_head_prefixes()`` method. Otherwise the layout of
    UNet and VNet is recognised: a ``dec`` ModuleList applied in order (its last block sees full
    resolution) followed by a ``head`` convolution gives ``("dec.<last>", "head")``; a network with a
    ``head`` submodule alone gives ``("head",)``. Raises ConfigError for anything else.
    """
    net = unwrap(net)
    own = getattr(net, "meta_head_prefixes", None)
    if callable(own):
        return tuple(own())
    head = getattr(net, "head", None)
    if not isinstance(head, nn.Module):
        raise ConfigError(f"--meta-params head: {type(net).__name__} has no 'head' submodule and no "
                          "meta_head_prefixes() method; give parameter-name prefixes instead (e.g. --meta-params "
                          f"{','.join(n for n, _ in list(net.named_children())[-2:]) or 'NAME'})")
    dec = getattr(net, "dec", None)
    if isinstance(dec, nn.ModuleList) and len(dec) > 0:
        return (f"dec.{len(dec) - 1}", "head")
    return ("head",)


def _matches(name: str, prefix: str) -> bool:
    prefix = prefix.rstrip(".")
    return name == prefix or name.startswith(prefix + ".")


def select_meta_parameters(net: nn.Module, spec: Union[str, Sequence[str]] = "all") -> tuple[str, ...]:
    """Names (as in ``net.named_parameters()`` of the bare module) of the trainable parameters the
    virtual step updates, in the network's parameter order.

    spec: ``"all"``, ``"head"`` (see :func:`head_prefixes`), or prefixes as a comma-separated string or
    a sequence (a prefix matches a name equal to it or followed by a dot: ``dec.2`` matches
    ``dec.2.0.weight``, not ``dec.20.weight``). Raises ConfigError when a prefix matches no trainable
    parameter or nothing is selected.
    """
    net = unwrap(net)
    trainable = [n for n, p in net.named_parameters() if p.requires_grad]
    if not trainable:
        raise ConfigError(f"--meta-params: {type(net).__name__} has no trainable parameters")
    if isinstance(spec, str):
        s = spec.strip()
        if s == "all":
            return tuple(trainable)
        prefixes = head_prefixes(net) if s == "head" else tuple(p.strip() for p in s.split(",") if p.strip())
    else:
        prefixes = tuple(spec)
    if not prefixes:
        raise ConfigError("--meta-params: expected 'all', 'head' or parameter-name prefixes; got nothing")
    for prefix in prefixes:
        if not any(_matches(n, prefix) for n in trainable):
            top = sorted({n.split(".")[0] for n in trainable})
            raise ConfigError(f"--meta-params: prefix {prefix!r} matches no trainable parameter of "
                              f"{type(net).__name__} (top-level names: {', '.join(top)})")
    return tuple(n for n in trainable if any(_matches(n, p) for p in prefixes))
