"""The step of the methods whose weights come from a learned weight network (MW-Net, MCPM)."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.profiler import record_function

from noisyseg_ext.methods.base import TrainContext
from noisyseg_ext.methods.meta.bilevel import real_forward
from noisyseg_ext.methods.meta.reweighting import WEIGHT_NET_OPTIONS, MetaReweighting


class LearnedWeights(MetaReweighting):
    """MW-Net's algorithm (METHODS.md section 3) around a weight network ``self.weight_net``.

    Subclasses build the weight net (:meth:`build_weight_net`) and say how it maps a detached loss map
    to weights (:meth:`weights`) and how weights become the coefficients of the weighted loss
    (:meth:`coefficients`). The weight net's Adam (``--meta-lr``, ``--meta-weight-decay``) is
    registered as ``"meta"``, so checkpoints hold it.
    """

    options = MetaReweighting.options + WEIGHT_NET_OPTIONS

    def __init__(self, ctx: TrainContext):
        super().__init__(ctx)
        self.weight_net = self.build_weight_net().to(ctx.device)
        self.broadcast_from_rank0()
        self.meta_optimizer = self.register_optimizer("meta", torch.optim.Adam(
            self.weight_net.parameters(), lr=self.config.meta_lr, weight_decay=self.config.meta_weight_decay))

    def build_weight_net(self) -> nn.Module:
        raise NotImplementedError

    def weights(self, losses: Tensor) -> Tensor:
        """Weights in (0, 1) from the detached loss map (N, *spatial): (N, *spatial) or (N,), float32."""
        raise NotImplementedError

    def coefficients(self, weights: Tensor, losses: Tensor) -> Tensor:
        """The coefficients c (N, *spatial) of the weighted loss sum_v c_v l_v."""
        raise NotImplementedError

    def training_step(self, batch: dict[str, Tensor], step: int) -> dict[str, Tensor]:
        """Loss of one step (see the module docstring of :mod:`.reweighting`); logs ``meta_loss`` (the
        clean meta batch's CE after the virtual step), ``weight_mean``, ``weight_min``, ``weight_max``
        of the recomputed weights. Steps the weight net's optimiser, never the network's."""
        image, target = batch["image"], batch["label"]
        meta = self.meta_batch(step)
        first = real_forward(self.ctx.model, image)
        loss_map, extra = self.loss_terms(first.logits, target)
        losses = loss_map.detach()
        params = list(self.weight_net.parameters())
        with record_function("meta:weights"):
            coefficients = self.coefficients(self.weights(losses), losses)
        result = self.bilevel(first, target, loss_map, coefficients, params, meta, extra)
        del coefficients
        with record_function("meta:weight_net_step"):
            grads = [g.detach().clone() for g in result.grads]
            self.average_over_processes(grads)
            for p, g in zip(params, grads):
                p.grad = g
            self.meta_optimizer.step()
            self.meta_optimizer.zero_grad(set_to_none=True)
        with torch.no_grad(), record_function("meta:recompute_weights"):
            weights = self.weights(losses)
            coefficients = self.coefficients(weights, losses)
        return {"loss": self.weighted_loss(coefficients, loss_map, extra), "meta_loss": result.meta_loss.float(),
                "weight_mean": weights.mean(), "weight_min": weights.min(), "weight_max": weights.max()}

    def weight_map(self, batch: dict[str, Tensor], step: int) -> Tensor:
        with self.side_effect_free(step), torch.no_grad():
            _, loss_map = self.diagnostic_forward(batch["image"], batch["label"])
            weights = self.weights(loss_map)
        return weights.view(weights.shape + (1,) * (loss_map.dim() - weights.dim())).expand_as(loss_map)
