"""Heads turn a dict of tapped features into a dict of outputs (``{"seg": logits}``, ...)."""

from pixelwise.models.heads.fcn import FCNHead, bilinear_kernel
from pixelwise.models.heads.zoomout import ZoomOutHead

__all__ = ["FCNHead", "ZoomOutHead", "bilinear_kernel"]
