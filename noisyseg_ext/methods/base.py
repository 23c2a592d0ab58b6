"""The method interface: what a noise-robust training method adds to the trainer.

A method is one class (a subclass of :class:`Method`) and one registry entry
(``@register_method`` in ``noisyseg_ext.methods.registry``). The :class:`~noisyseg_ext.training.Trainer`
owns the loop, the segmentation network's optimiser and LR schedule, AMP, gradient clipping,
evaluation, checkpoints and logs; the method owns what it adds to the network (a meta net and its
optimiser, an EMA teacher) and computes the loss of one step.

One step, as the trainer runs it::

    with ctx.autocast():
        out = method.training_step(batch, step)      # {"loss": tensor, **logs}
    backward(out["loss"])  (through the GradScaler with fp16), clip, optimizer.step(), scheduler.step()
    method.after_step(step)                           # e.g. the EMA update of a teacher

Batches are dicts of tensors on the training device:

* ``image``: (B, C_in, *spatial) float32, normalised;
* ``label``: (B, *spatial) int64, the training labels (noisy);
* ``clean``: (B, *spatial) int64, the clean labels of the same pixels. Only the ``clean`` method
  and diagnostics may read it: a noise-robust method must not;
* ``index``: (B,) int64, the samples' indices in the train split (rows of the noise records).

Meta batches (``ctx.meta_batch(step)``, methods with ``needs_meta = True``) hold ``image`` and
``label`` (clean) from the meta split.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Optional

import torch
from torch import Tensor, nn

from noisyseg_ext.training.options import Option


@dataclass
class TrainContext:
    """What the trainer hands a method.

    Attributes:
        net: the segmentation network (the bare module: use it with ``torch.func.functional_call``).
        model: what to call for the real forward: ``net`` itself, or its DistributedDataParallel wrapper
            (gradients are averaged over processes only through this one).
        optimizer: the network's optimiser (the trainer steps it).
        config: the run's :class:`~noisyseg_ext.training.config.Config`.
        device: the training device.
        num_classes: C, classes including background.
        dims: 2 or 3 spatial dimensions.
        max_steps: the run's total number of steps (for ramps).
        loss_fn: the supervised loss of ``--loss``: ``loss_fn(logits, target, weight=None)`` -> 0-dim
            tensor (``weighted_ce`` mean, plus soft Dice for ``ce+dice``).
        autocast: ``autocast()`` -> the context of ``--amp`` (a no-op context when off).
        meta_batch: ``meta_batch(step)`` -> a clean meta batch (deterministic in the step), or None when
            the run has no meta split.
        rank, world_size: this process and the number of processes (1 without torchrun).
    """

    net: nn.Module
    model: nn.Module
    optimizer: torch.optim.Optimizer
    config: Any
    device: torch.device
    num_classes: int
    dims: int
    max_steps: int
    loss_fn: Callable[..., Tensor]
    autocast: Callable[[], AbstractContextManager]
    meta_batch: Callable[[int], Optional[dict[str, Tensor]]]
    rank: int = 0
    world_size: int = 1
    extras: dict[str, Any] = field(default_factory=dict)

    def lr(self) -> float:
        """The network's current learning rate (first parameter group)."""
        return float(self.optimizer.param_groups[0]["lr"])


class Method(nn.Module):
    """Base class of training methods.

    Subclasses set ``name`` (the ``--method`` value), may set ``options`` (their own CLI / config
    options, read from ``self.config``), ``needs_meta`` (the trainer then builds the meta split's
    batches), ``default_eval_model`` (``"student"`` or ``"teacher"``), and override
    :meth:`training_step`; the other hooks are optional.

    A method is an ``nn.Module`` so that the networks it adds (meta net, teacher) are submodules: they
    move to the device with it and their parameters and buffers are saved with
    :meth:`method_state`. The segmentation network is NOT a submodule (it is ``self.ctx.net``).
    Optimisers a method owns are registered with :meth:`register_optimizer` so checkpoints hold them.
    """

    name: ClassVar[str] = ""
    options: ClassVar[tuple[Option, ...]] = ()
    needs_meta: ClassVar[bool] = False
    default_eval_model: ClassVar[str] = "student"
    help: ClassVar[str] = ""

    def __init__(self, ctx: TrainContext):
        super().__init__()
        object.__setattr__(self, "ctx", ctx)  # not a submodule: the trainer saves the network itself
        object.__setattr__(self, "_optimizers", {})

    @property
    def config(self):
        return self.ctx.config

    # -- the step ---------------------------------------------------------------------------------

    def training_step(self, batch: dict[str, Tensor], step: int) -> dict[str, Tensor]:
        """One step's loss: returns ``{"loss": 0-dim tensor, **logs}``.

        ``loss`` is differentiated by the trainer with respect to the network's parameters; the logs
        are 0-dim tensors (detached; read back only at logging steps, so nothing here should call
        ``.item()``). ``step`` counts from 0.
        """
        raise NotImplementedError

    def after_step(self, step: int) -> None:
        """Called after the network's optimiser step of ``step`` (e.g. to update an EMA teacher)."""

    # -- evaluation -------------------------------------------------------------------------------

    def eval_models(self) -> dict[str, nn.Module]:
        """The networks that can be evaluated, by name (``student`` always; ``teacher`` where the
        method has one)."""
        return {"student": self.ctx.net}

    @torch.no_grad()
    def diagnostics(self, batch: dict[str, Tensor], step: int) -> dict[str, float]:
        """Scalars for ``metrics.csv`` at an evaluation, from a fixed batch of the train split
        (with ``label`` noisy and ``clean``): e.g. the mean weight on corrupted vs clean pixels.
        Default: none."""
        return {}

    def save_figure(self, batch: dict[str, Tensor], step: int, path: str) -> bool:
        """Writes a method-specific figure (e.g. weight maps) of ``batch`` to ``path`` (PNG); returns
        whether it wrote one. Default: none."""
        return False

    # -- state ------------------------------------------------------------------------------------

    def register_optimizer(self, name: str, optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
        """Registers an optimiser the method owns (saved in checkpoints, restored on resume)."""
        self._optimizers[name] = optimizer
        return optimizer

    def extra_state(self) -> dict[str, Any]:
        """Method state that is neither a module's state nor an optimiser's (plain Python / tensors)."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Restores :meth:`extra_state`."""

    def method_state(self) -> dict[str, Any]:
        """Everything needed to resume exactly: submodules, registered optimisers, extra state."""
        return {"modules": self.state_dict(),
                "optimizers": {k: o.state_dict() for k, o in self._optimizers.items()},
                "extra": self.extra_state()}

    def load_method_state(self, state: dict[str, Any]) -> None:
        """Restores :meth:`method_state`."""
        self.load_state_dict(state["modules"])
        missing = set(self._optimizers) ^ set(state["optimizers"])
        if missing:
            raise KeyError(f"method {self.name}: checkpoint optimisers {sorted(state['optimizers'])} do not match "
                           f"{sorted(self._optimizers)}")
        for k, o in self._optimizers.items():
            o.load_state_dict(state["optimizers"][k])
        self.load_extra_state(state["extra"])
