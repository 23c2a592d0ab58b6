"""L2RW, Learning to Reweight (Ren et al., ICML 2018), per pixel or per image: no weight network.

The weights are the negative meta-gradient with respect to per-pixel (or per-image) perturbations
eps = 0 of the loss, clipped at 0 and normalised to sum 1 (METHODS.md section 3): a pixel whose
gradient agrees with the clean meta batch's gets weight, one that disagrees gets none.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from noisyseg_ext.methods.meta.bilevel import RealForward, real_forward
from noisyseg_ext.methods.meta.reweighting import MetaReweighting
from noisyseg_ext.methods.registry import register_method
from noisyseg_ext.training.options import Option

LEVELS = ("pixel", "image")


def normalize_to_sum_one(weights: Tensor) -> Tensor:
    """``weights / weights.sum()``; all zeros stay zeros (L2RW's rule when no sample helps)."""
    total = weights.sum()
    return weights / torch.where(total > 0, total, torch.ones_like(total))


@register_method
class L2RW(MetaReweighting):
    """``--method l2rw``: weights ``max(-dL_meta/deps, 0)`` normalised to sum 1 over the batch; loss
    ``sum_v w_v l_v`` (pixel level) or ``sum_i w_i mean_v l_iv`` (``--l2rw-level image``)."""

    name = "l2rw"
    help = "Learning to Reweight: weights from the meta-gradient of per-pixel (or per-image) loss perturbations"
    options = MetaReweighting.options + (
        Option("l2rw_level", "pixel", "L2RW weights each pixel or each image", str, LEVELS, group="meta-learning"),
    )

    figure_kind = "uncertainty"  # relative weights (1 = uniform): their own colour range

    def _coefficients(self, eps: Tensor, loss_map: Tensor) -> Tensor:
        if self.config.l2rw_level == "pixel":
            return eps
        per_pixel = eps.view(eps.shape + (1,) * (loss_map.dim() - 1)).expand(loss_map.shape)
        return per_pixel / loss_map[0].numel()  # sum_v eps_i l_iv / V = eps_i * (image i's mean loss)

    def compute_weights(self, first: RealForward, target: Tensor, loss_map: Tensor, extra: Optional[Tensor],
                        meta: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        """(weights (N, *spatial) or (N,) float32, >= 0, summing to 1 (or all 0); the meta loss at w)."""
        shape = loss_map.shape if self.config.l2rw_level == "pixel" else loss_map.shape[:1]
        eps = torch.zeros(shape, dtype=torch.float32, device=loss_map.device, requires_grad=True)
        result = self.bilevel(first, target, loss_map, self._coefficients(eps, loss_map), (eps,), meta, extra,
                              at_zero=True)
        return normalize_to_sum_one((-result.grads[0]).clamp_min(0)), result.meta_loss

    def training_step(self, batch: dict[str, Tensor], step: int) -> dict[str, Tensor]:
        """Loss of one step; logs ``meta_loss`` (the meta batch's CE at w) and ``weight_zero``, the
        fraction of weights clipped to 0."""
        image, target = batch["image"], batch["label"]
        meta = self.meta_batch(step)
        first = real_forward(self.ctx.model, image)
        loss_map, extra = self.loss_terms(first.logits, target)
        weights, meta_loss = self.compute_weights(first, target, loss_map, extra, meta)
        loss = self.weighted_loss(self._coefficients(weights, loss_map), loss_map, extra)
        return {"loss": loss, "meta_loss": meta_loss.float(), "weight_zero": (weights == 0).float().mean()}

    def weight_map(self, batch: dict[str, Tensor], step: int) -> Tensor:
        with self.side_effect_free(step):
            first, loss_map = self.diagnostic_forward(batch["image"], batch["label"])
            extra = self.loss_terms(first.logits, batch["label"])[1]
            weights, _ = self.compute_weights(first, batch["label"], loss_map, extra, self.meta_batch(step))
        relative = weights * weights.numel()
        return relative.view(relative.shape + (1,) * (loss_map.dim() - relative.dim())).expand(loss_map.shape)
