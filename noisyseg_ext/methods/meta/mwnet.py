"""MW-Net, Meta-Weight-Net (Shu et al., NeurIPS 2019), for segmentation: one weight per image.

An MLP maps each image's mean (detached) loss to a weight in (0, 1); it is learned on a clean meta
set through a virtual SGD step (METHODS.md section 3). MCPM's baseline.
"""

from __future__ import annotations

from torch import Tensor, nn

from noisyseg_ext.methods.meta.learned_weights import LearnedWeights
from noisyseg_ext.methods.meta.meta_nets import MetaWeightNet
from noisyseg_ext.methods.meta.reweighting import NORMALIZATIONS, normalize_pixel_weights
from noisyseg_ext.methods.registry import register_method
from noisyseg_ext.training.options import Option, _positive_int


@register_method
class MWNet(LearnedWeights):
    """``--method mwnet``: w_i = MLP(mean_v l_iv); loss ``sum_i w_i sum_v l_iv / (N V)``
    (``--mwnet-normalize sum``: ``/ (V sum_i w_i)``)."""

    name = "mwnet"
    help = "Meta-Weight-Net: an MLP (1-100-1) weights each image by its mean loss"
    options = LearnedWeights.options + (
        Option("mwnet_hidden", 100, "hidden units of MW-Net's weight MLP", _positive_int, group="meta-learning"),
        Option("mwnet_normalize", "mean", "MW-Net's loss normalisation: mean = sum_i w_i L_i / N, sum = "
               "sum_i w_i L_i / sum_i w_i (L_i: image i's mean loss)", str, NORMALIZATIONS, group="meta-learning"),
    )

    def build_weight_net(self) -> nn.Module:
        return MetaWeightNet(self.config.mwnet_hidden)

    def weights(self, losses: Tensor) -> Tensor:
        return self.weight_net(losses.flatten(1).float().mean(1))

    def coefficients(self, weights: Tensor, losses: Tensor) -> Tensor:
        per_pixel = weights.view(weights.shape + (1,) * (losses.dim() - 1)).expand(losses.shape)
        # normalize_pixel_weights on the broadcast map: mean -> w_i / (N V); sum -> w_i / (V sum_i w_i).
        return normalize_pixel_weights(per_pixel, self.config.mwnet_normalize)
