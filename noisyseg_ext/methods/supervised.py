"""The two reference points of every table: ``baseline`` (the network trained on the noisy labels
as given) and ``clean`` (the same on the clean labels: the upper bound no noise-robust method
should beat)."""

from __future__ import annotations

from torch import Tensor

from noisyseg_ext.methods.base import Method
from noisyseg_ext.methods.registry import register_method


@register_method
class Baseline(Method):
    """Supervised loss (``--loss``) on the training labels (noisy)."""

    name = "baseline"
    help = "the network trained on the noisy labels (--loss ce or ce+dice)"
    target_key = "label"

    def training_step(self, batch: dict[str, Tensor], step: int) -> dict[str, Tensor]:
        logits = self.ctx.model(batch["image"])
        loss = self.ctx.loss_fn(logits, batch[self.target_key])
        return {"loss": loss}


@register_method
class Clean(Baseline):
    """The same loss on the clean labels of the training images: the upper bound."""

    name = "clean"
    help = "the network trained on the clean labels (upper bound)"
    target_key = "clean"
