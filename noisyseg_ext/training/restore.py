"""Rebuilding a trained network from a checkpoint (``noisyseg eval`` / ``predict``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

from noisyseg_ext.errors import CheckpointError, ConfigError
from noisyseg_ext.training.checkpoint import load_checkpoint
from noisyseg_ext.training.config import Config


@dataclass
class TrainedNet:
    """net: the network in eval mode on ``device``; config: the run's Config; info: the checkpoint's
    data_info (num_classes, in_channels, dims, size_multiple); model: which network (student / teacher);
    step: steps trained."""

    net: nn.Module
    config: Config
    info: dict
    model: str
    step: int


def load_trained_net(path: str, *, model: Optional[str] = None, device: torch.device) -> TrainedNet:
    """The network ``model`` (default: the one the run evaluated) of the checkpoint at ``path``.
    Networks given to the Trainer as Python modules cannot be rebuilt from a checkpoint (their class is
    not recorded): CheckpointError then."""
    from noisyseg_ext.nets import NETS, build_net

    blob = load_checkpoint(path, map_location="cpu")
    try:
        saved = dict(blob["config"])
        config = Config(saved)
        info, nets = blob["data_info"], blob["eval_nets"]
    except KeyError as exc:
        raise CheckpointError(f"checkpoint {path} lacks {exc}") from None
    except ConfigError as exc:
        raise CheckpointError(f"checkpoint {path}: its configuration is not valid here ({exc})") from None
    model = model or blob.get("eval_model", "student")
    if model not in nets:
        raise ConfigError(f"--model {model}: checkpoint {path} holds {', '.join(sorted(nets))}")
    if config.net not in NETS:
        raise CheckpointError(f"checkpoint {path}: unknown network {config.net!r}")
    net = build_net(config.net, in_channels=info["in_channels"], num_classes=info["num_classes"], dims=info["dims"],
                    base=config.base, depth=config.depth, norm=config.norm, dropout=config.dropout)
    try:
        net.load_state_dict(nets[model])
    except RuntimeError as exc:
        raise CheckpointError(f"checkpoint {path}: its {model} weights do not fit a {config.net} built from its "
                              f"config (trained with a custom network?): {str(exc).splitlines()[0]}") from None
    return TrainedNet(net.to(device).eval(), config, info, model, int(blob.get("step", 0)))
