"""Meta-learning methods (MW-Net, L2RW, MCPM) and their bilevel step.

The bilevel step alone: :func:`real_forward` then :func:`meta_gradient`.
"""

from noisyseg_ext.methods.meta.bilevel import MetaGradient, RealForward, ce_tangent, meta_gradient, real_forward
from noisyseg_ext.methods.meta.meta_nets import MetaMaskNet, MetaWeightNet
from noisyseg_ext.methods.meta.params import head_prefixes, select_meta_parameters

__all__ = ["MetaGradient", "MetaMaskNet", "MetaWeightNet", "RealForward", "ce_tangent", "head_prefixes",
           "meta_gradient", "real_forward", "select_meta_parameters"]
