"""What MW-Net, L2RW and MCPM share: options, the step's pieces, diagnostics and the weight-map figure.

A step (METHODS.md section 3, the lead's order): the real forward of the noisy batch (the only
forward that updates BatchNorm's running statistics); its per-pixel CE map; weights from the
detached losses; the meta-gradient through a virtual SGD step (:mod:`.bilevel`); the weight net's
Adam step (its gradient averaged over processes under torchrun); the weights recomputed with the
updated net (no gradient); the step's loss ``sum_v c'_v l_v`` of the same loss map, whose backward
the trainer runs, so the segmentation network gets one real forward and one real backward.

Under torchrun (``ctx.world_size > 1``): the real step's gradient is averaged by the DDP wrapper
(``ctx.model``); the virtual step, ``u`` and the tangent use this process's noisy and meta batches
(``ctx.net``, not synchronised: each process's meta-gradient is exact for its own batches), and the
weight net's gradient is averaged over processes with ``all_reduce`` before its Adam step, so every
process keeps the same weight net (its parameters are broadcast from rank 0 at construction).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Optional, Sequence

import torch
from torch import Tensor

from noisyseg_ext.errors import ConfigError
from noisyseg_ext.methods.base import Method, TrainContext
from noisyseg_ext.methods.losses import soft_dice_loss
from noisyseg_ext.methods.meta.bilevel import MODES, MetaGradient, RealForward, meta_gradient, real_forward
from noisyseg_ext.methods.meta.params import select_meta_parameters
from noisyseg_ext.metrics.detection import auroc, masked_means
from noisyseg_ext.nets.batchnorm import batch_stats_only
from noisyseg_ext.ops import weighted_ce
from noisyseg_ext.training.options import Option, _non_negative_float, _positive_float, _positive_int, optional

#: Options of every meta-learning method.
META_OPTIONS: tuple[Option, ...] = (
    Option("meta_grad", "forward", "how the meta-gradient is computed: forward (one forward-mode pass, no "
           "second-order graph) or reverse (double backward, the textbook form); equal up to rounding",
           str, MODES, group="meta-learning"),
    Option("meta_params", "all", "parameters the virtual step moves: all, head (last decoder block and output "
           "conv, an approximation) or comma-separated parameter-name prefixes", str, group="meta-learning"),
    Option("meta_batch", None, "images per clean meta batch (default: --batch)", optional(_positive_int),
           group="meta-learning"),
)

#: Options of the methods that learn a weight network (MW-Net, MCPM).
WEIGHT_NET_OPTIONS: tuple[Option, ...] = (
    Option("meta_lr", 1e-3, "Adam learning rate of the weight network", _positive_float, group="meta-learning"),
    Option("meta_weight_decay", 1e-4, "Adam weight decay of the weight network", _non_negative_float,
           group="meta-learning"),
)

NORMALIZATIONS = ("mean", "sum")


def normalize_pixel_weights(weights: Tensor, how: str) -> Tensor:
    """Coefficients of the weighted loss (METHODS.md section 2): ``mean`` -> R / (N V) (the papers'),
    ``sum`` -> R / sum R. weights (N, *spatial) float; returns the same shape."""
    if how == "mean":
        return weights / weights.numel()
    if how == "sum":
        return weights / weights.sum().clamp_min(torch.finfo(weights.dtype).tiny)
    raise ConfigError(f"normalisation must be one of {', '.join(NORMALIZATIONS)}; got {how!r}")


class MetaReweighting(Method):
    """Base of the meta-learning methods; subclasses implement :meth:`training_step` with the helpers
    here and :meth:`weight_map` for the diagnostics."""

    needs_meta = True
    options = META_OPTIONS

    def __init__(self, ctx: TrainContext):
        super().__init__(ctx)
        if getattr(self.config, "loss", "ce") not in ("ce", "ce+dice"):
            raise ConfigError(f"method {self.name}: --loss must be ce or ce+dice; got {self.config.loss!r}")
        if self.config.meta_grad not in MODES:
            raise ConfigError(f"--meta-grad must be one of {', '.join(MODES)}; got {self.config.meta_grad!r}")
        self.meta_param_names = select_meta_parameters(ctx.net, self.config.meta_params)
        object.__setattr__(self, "_diag_cache", None)

    # -- pieces of a step -------------------------------------------------------------------------

    def meta_batch(self, step: int) -> dict[str, Tensor]:
        """The clean meta batch of ``step``; ConfigError when the run has no meta split."""
        batch = self.ctx.meta_batch(step)
        if batch is None:
            raise ConfigError(f"method {self.name} needs a clean meta split: set --meta-fraction > 0")
        return batch

    def loss_terms(self, logits: Tensor, target: Tensor) -> tuple[Tensor, Optional[Tensor]]:
        """(per-pixel CE map (N, *spatial) in logits' dtype, with its graph; the unweighted soft Dice of
        ``--loss ce+dice`` as a 0-dim float32, or None)."""
        loss_map = weighted_ce(logits, target, reduction="none")
        extra = soft_dice_loss(logits, target) if self.config.loss == "ce+dice" else None
        return loss_map, extra

    def bilevel(self, first: RealForward, target: Tensor, loss_map: Tensor, coefficients: Tensor,
                phi: Sequence[Tensor], meta: dict[str, Tensor], extra: Optional[Tensor], *,
                at_zero: bool = False) -> MetaGradient:
        """:func:`~noisyseg_ext.methods.meta.bilevel.meta_gradient` with this run's options and the
        network's current learning rate as the virtual step size."""
        return meta_gradient(self.ctx.net, first, target, loss_map, coefficients, phi, self.ctx.lr(),
                             meta["image"], meta["label"], mode=self.config.meta_grad,
                             param_names=self.meta_param_names, extra_loss=extra, at_zero=at_zero)

    @staticmethod
    def weighted_loss(coefficients: Tensor, loss_map: Tensor, extra: Optional[Tensor]) -> Tensor:
        """The real step's loss ``sum_v c_v l_v (+ extra)``, 0-dim float32, from the first forward's graph."""
        loss = (coefficients.detach().float() * loss_map.float()).sum()
        return loss + extra if extra is not None else loss

    def average_over_processes(self, grads: Sequence[Tensor]) -> None:
        """In place: the mean of ``grads`` over the torchrun processes (no-op in one process)."""
        if self.ctx.world_size > 1 and torch.distributed.is_available() and torch.distributed.is_initialized():
            for g in grads:
                torch.distributed.all_reduce(g)
                g.div_(self.ctx.world_size)

    def broadcast_from_rank0(self) -> None:
        """Makes this method's parameters those of rank 0 (no-op in one process)."""
        if self.ctx.world_size > 1 and torch.distributed.is_available() and torch.distributed.is_initialized():
            for p in self.parameters():
                torch.distributed.broadcast(p.data, 0)

    # -- diagnostics ------------------------------------------------------------------------------

    @contextmanager
    def side_effect_free(self, step: int) -> Iterator[None]:
        """For diagnostics: the network in train mode (batch statistics, as in training) without
        touching BatchNorm's running statistics, and random draws (dropout) from a generator seeded
        with ``step`` and restored afterwards, so evaluations neither change nor depend on training."""
        net = self.ctx.net
        was_training = net.training
        devices = [self.ctx.device] if torch.device(self.ctx.device).type == "cuda" else []
        with torch.random.fork_rng(devices=devices), batch_stats_only(net):
            torch.manual_seed(step)
            net.train()
            try:
                yield
            finally:
                net.train(was_training)

    def diagnostic_forward(self, image: Tensor, target: Tensor) -> tuple[RealForward, Tensor]:
        """Inside :meth:`side_effect_free`: the network's forward and CE map on a diagnostic batch."""
        first = real_forward(self.ctx.net, image)
        return first, weighted_ce(first.logits, target, reduction="none")

    def weight_map(self, batch: dict[str, Tensor], step: int) -> Tensor:
        """The weights the method gives ``batch`` at ``step`` (no state changes), per pixel
        (N, *spatial) float32: R for MCPM, the image weight at each pixel for MW-Net, for L2RW the
        normalised weight times the number of weights (1 = uniform)."""
        raise NotImplementedError

    def _cached_weight_map(self, batch: dict[str, Tensor], step: int) -> Tensor:
        key = (step, batch["image"].data_ptr(), tuple(batch["image"].shape))
        cache = self._diag_cache
        if cache is None or cache[0] != key:
            with torch.enable_grad():  # the trainer calls diagnostics under no_grad; L2RW needs a gradient
                weights = self.weight_map(batch, step).detach().float()
            cache = (key, weights)
            object.__setattr__(self, "_diag_cache", cache)
        return cache[1]

    def diagnostics(self, batch: dict[str, Tensor], step: int) -> dict[str, float]:
        """``weight_mean``; ``weight_corrupted`` / ``weight_clean``: the mean weight on pixels whose noisy
        label differs from the clean one / agrees with it; ``weight_auroc``: AUROC of (1 - weight) as
        a detector of corrupted pixels (0.5 = chance, 1 = every corrupted pixel weighted below every
        clean one)."""
        weights = self._cached_weight_map(batch, step)
        corrupted = batch["label"] != batch["clean"]
        on, off = masked_means(weights, corrupted)
        return {"weight_mean": float(weights.mean()), "weight_corrupted": on, "weight_clean": off,
                "weight_auroc": auroc(1.0 - weights, corrupted)}

    figure_kind = "map"  # plot_panels kind of the weight panel ([0, 1] colour bar)

    def save_figure(self, batch: dict[str, Tensor], step: int, path: str) -> bool:
        """MCPM's Fig. 3: per image (up to 4) the image, noisy label, clean label, corrupted pixels
        and the weight map."""
        from noisyseg_ext.figures.panels import plot_panels

        weights = self._cached_weight_map(batch, step)
        rows = []
        for i in range(min(4, weights.shape[0])):
            rows.append([("image", batch["image"][i], "image"), ("noisy label", batch["label"][i], "label"),
                         ("clean label", batch["clean"][i], "label"),
                         ("corrupted", (batch["label"][i] != batch["clean"][i]).float(), "gate"),
                         ("weight", weights[i], self.figure_kind)])
        plot_panels(rows, path, title=f"{self.name}: weights at step {step}")
        return True
