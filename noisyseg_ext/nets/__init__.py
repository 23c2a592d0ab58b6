"""Segmentation networks."""

from noisyseg_ext.nets.unet import UNet

__all__ = ["UNet"]
