"""Segmentation networks: :class:`UNet`, :class:`VNet`, and :func:`build_net` by name (``--net``)."""

from noisyseg_ext.nets.batchnorm import batch_stats_only
from noisyseg_ext.nets.registry import NETS, build_net, size_multiple
from noisyseg_ext.nets.unet import UNet
from noisyseg_ext.nets.vnet import VNet

__all__ = ["UNet", "VNet", "NETS", "build_net", "size_multiple", "batch_stats_only"]
