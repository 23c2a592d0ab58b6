"""The mean teacher: an exponential moving average (EMA) of the student network.

``θ̃ ← γ θ̃ + (1 − γ) θ`` with ``γ(step) = min(1 − 1/(step + 1), ema_decay)`` (METHODS.md §5; UA-MT's
``update_ema_variables``, github yulequan/UA-MT): γ = 0 after step 0, so the teacher starts as a copy
of the trained student and is the true average of the students until 1/(step+1) < 1 − ema_decay.

BatchNorm buffers: the teacher runs with BatchNorm in eval mode (see ``passes.py``), so it uses its
running statistics. They follow the student's by the same EMA as the weights (``running_mean`` and
``running_var`` are averaged with γ, integer buffers such as ``num_batches_tracked`` are copied), so
that the statistics and the weights of the teacher average over the same window of steps (timm's
``ModelEmaV2`` does the same). UA-MT's code instead keeps its teacher in train mode: BatchNorm then
normalises each teacher pass by that pass's own batch statistics and never uses the running ones;
we do not, because it makes a pass depend on the other images of its batch, so streamed (N images)
and batched (T·N images) passes would compute different functions.

The teacher is never touched by an optimiser: its parameters have ``requires_grad=False`` and it is
not part of the student's module tree.

Multi-process (DDP): students are identical on every rank after each step, so the EMA of the
parameters is too. The student's BatchNorm buffers are not (DDP broadcasts rank 0's at the start of
each forward, then each rank updates them with its own batch), so :meth:`EMATeacher.sync_buffers`
broadcasts the teacher's buffers from rank 0 after each update.
"""

from __future__ import annotations

import copy
from typing import Optional

import torch
from torch import nn


def ema_decay_at(step: int, ema_decay: float) -> float:
    """γ(step) = min(1 − 1/(step + 1), ema_decay); step counts from 0 (γ(0) = 0)."""
    if step < 0:
        raise ValueError(f"ema_decay_at: step must be >= 0; got {step}")
    return min(1.0 - 1.0 / (step + 1), float(ema_decay))


class EMATeacher(nn.Module):
    """A frozen copy of ``student`` updated as its EMA by :meth:`update`.

    Args:
        student: the network to follow (the bare module, not a DDP wrapper). Copied with
            ``copy.deepcopy``; the copy's parameters get ``requires_grad=False``.
        ema_decay: the largest decay γ (0.99).
        memory_format: ``torch.channels_last`` (2D) / ``torch.channels_last_3d`` (3D) to keep the copy
            in that layout (faster CPU convolutions), or None for the student's layout.

    Attributes:
        net: the teacher network (a submodule: saved, loaded and moved with the method).
    """

    def __init__(self, student: nn.Module, ema_decay: float = 0.99, *,
                 memory_format: Optional[torch.memory_format] = None):
        super().__init__()
        if not 0.0 <= ema_decay <= 1.0:
            raise ValueError(f"EMATeacher: ema_decay must lie in [0, 1]; got {ema_decay}")
        self.ema_decay = float(ema_decay)
        net = copy.deepcopy(student)
        if memory_format is not None:
            net = net.to(memory_format=memory_format)
        for p in net.parameters():
            p.requires_grad_(False)
            p.grad = None
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The teacher's logits (in whatever train / eval mode its modules are in)."""
        return self.net(x)

    @torch.no_grad()
    def update(self, student: nn.Module, step: int) -> float:
        """θ̃ ← γ θ̃ + (1 − γ) θ for every parameter and floating buffer, integer buffers copied;
        returns γ(step). ``student`` must have the teacher's parameters and buffers, in order."""
        gamma = ema_decay_at(step, self.ema_decay)
        t_params, s_params = list(self.net.parameters()), [p.detach() for p in student.parameters()]
        t_buffers, s_buffers = list(self.net.buffers()), list(student.buffers())
        if len(t_params) != len(s_params) or len(t_buffers) != len(s_buffers):
            raise ValueError(f"EMATeacher.update: the student has {len(s_params)} parameters and {len(s_buffers)} "
                             f"buffers, the teacher {len(t_params)} and {len(t_buffers)}")
        floats_t, floats_s = t_params, s_params
        for bt, bs in zip(t_buffers, s_buffers):
            if bt.is_floating_point():
                floats_t.append(bt)
                floats_s.append(bs.detach())
            else:
                bt.copy_(bs)
        # UA-MT's ema_param.mul_(alpha).add_(param, alpha=1 - alpha), for all tensors in two calls.
        torch._foreach_mul_(floats_t, gamma)
        torch._foreach_add_(floats_t, floats_s, alpha=1.0 - gamma)
        return gamma

    @torch.no_grad()
    def sync_buffers(self, src: int = 0) -> None:
        """Broadcasts the teacher's buffers from rank ``src`` (no-op without an initialised process
        group or with one process): one flat broadcast of the floating buffers, one of the others."""
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return
        buffers = list(self.net.buffers())
        for group in ([b for b in buffers if b.is_floating_point()], [b for b in buffers if not b.is_floating_point()]):
            if not group:
                continue
            flat = torch.cat([b.reshape(-1).to(group[0].dtype) for b in group])
            dist.broadcast(flat, src)
            offset = 0
            for b in group:
                b.copy_(flat[offset:offset + b.numel()].reshape(b.shape))
                offset += b.numel()
