"""MCPM, Meta Corrupted Pixels Mining (Wang et al., MICCAI 2020): MW-Net at the pixel level.

A fully convolutional meta mask network maps the detached per-pixel loss map to pixel weights R; it
is learned on a small clean meta set through a virtual SGD step of the segmentation network, so
pixels whose labels are corrupted get low weights (METHODS.md section 4; the paper's eq. 3-9).
"""

from __future__ import annotations

from torch import Tensor, nn

from noisyseg_ext.methods.meta.learned_weights import LearnedWeights
from noisyseg_ext.methods.meta.meta_nets import MetaMaskNet
from noisyseg_ext.methods.meta.reweighting import NORMALIZATIONS, normalize_pixel_weights
from noisyseg_ext.methods.registry import register_method
from noisyseg_ext.training.options import Option, _positive_int


@register_method
class MCPM(LearnedWeights):
    """``--method mcpm``: R = MetaMaskNet(loss map); loss ``sum_v R_v l_v / (N V)`` (``--mcpm-normalize
    sum``: ``/ sum_v R_v``). The papers train the network with SGD 0.01, momentum 0.9
    (``--optimizer sgd --lr 0.01``); the virtual step is plain SGD at the current learning rate."""

    name = "mcpm"
    help = "Meta Corrupted Pixels Mining: a meta mask net (conv 3x3, 100 channels) weights every pixel's loss"
    options = LearnedWeights.options + (
        Option("mcpm_hidden", 100, "hidden channels of MCPM's meta mask network", _positive_int, group="meta-learning"),
        Option("mcpm_normalize", "mean", "MCPM's loss normalisation: mean = sum R l / (N V) (the paper), sum = "
               "sum R l / sum R (if R collapses towards 0)", str, NORMALIZATIONS, group="meta-learning"),
    )

    def build_weight_net(self) -> nn.Module:
        return MetaMaskNet(self.ctx.dims, self.config.mcpm_hidden)

    def weights(self, losses: Tensor) -> Tensor:
        return self.weight_net(losses)

    def coefficients(self, weights: Tensor, losses: Tensor) -> Tensor:
        return normalize_pixel_weights(weights, self.config.mcpm_normalize)
