"""Multi-process training under ``torchrun`` (DistributedDataParallel).

``torchrun --nproc_per_node K noisyseg train ...`` sets RANK / WORLD_SIZE / LOCAL_RANK; the trainer
then joins a process group (NCCL on GPUs, gloo on the CPU), wraps the network in DDP, gives each
process its contiguous share of every global batch (``BatchOrder`` shards deterministically), and
lets rank 0 alone evaluate and write the run folder. Each rank's loss is the mean over its share, and
DDP averages the gradients, so with equal shares a step equals one process's step on the whole batch
(up to float summation order) for networks without batch statistics; BatchNorm normalises each
share by its own statistics (use ``--norm group`` or ``instance`` where that matters).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from noisyseg_ext.errors import ConfigError


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def from_environment() -> DistInfo:
    """The process's place in a torchrun job (rank 0 of 1 without one)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return DistInfo(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))


def resolve_device(name: str, info: DistInfo) -> torch.device:
    """``--device``: ``auto`` -> CUDA (this process's local GPU under torchrun) when available, else CPU;
    ``cuda`` under torchrun -> ``cuda:LOCAL_RANK``."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"--device {name!r} is not a device (cpu, cuda, cuda:K or auto)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"--device {name}: no CUDA device is available")
        if device.index is None:
            device = torch.device("cuda", info.local_rank if info.enabled else torch.cuda.current_device())
        torch.cuda.set_device(device)
    return device


def init_process_group(info: DistInfo, device: torch.device) -> None:
    """Joins the torchrun job's process group (once)."""
    if info.enabled and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")


def wrap(net: nn.Module, info: DistInfo, device: torch.device) -> nn.Module:
    """``net`` itself in one process, its DDP wrapper under torchrun."""
    if not info.enabled:
        return net
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(net, device_ids=ids)


def barrier(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.barrier()


def broadcast_object(value, info: DistInfo):
    """``value`` of rank 0 on every rank."""
    if not info.enabled:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def shutdown(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
