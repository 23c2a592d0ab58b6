"""Meta-learning methods (MW-Net, L2RW, MCPM) and their bilevel step.

Use without the CLI (any ``nn.Module``; see :func:`build_method`)::

    from noisyseg_ext.methods.meta import build_method
    method = build_method("mcpm", net, optimizer, meta_batches)      # meta_batches: fn(step) or a list
    for step, batch in enumerate(batches):
        out = method.training_step(batch, step)
        optimizer.zero_grad(); out["loss"].backward(); optimizer.step()

The bilevel step alone: :func:`real_forward` then :func:`meta_gradient`.
"""

from noisyseg_ext.methods.meta.api import build_method
from noisyseg_ext.methods.meta.bilevel import MetaGradient, RealForward, ce_tangent, meta_gradient, real_forward
from noisyseg_ext.methods.meta.l2rw import L2RW
from noisyseg_ext.methods.meta.meta_nets import MetaMaskNet, MetaWeightNet
from noisyseg_ext.methods.meta.mcpm import MCPM
from noisyseg_ext.methods.meta.mwnet import MWNet
from noisyseg_ext.methods.meta.params import head_prefixes, select_meta_parameters

__all__ = ["L2RW", "MCPM", "MWNet", "MetaGradient", "MetaMaskNet", "MetaWeightNet", "RealForward", "build_method", "ce_tangent",
           "head_prefixes", "meta_gradient", "real_forward", "select_meta_parameters"]
