"""Heads turn a dict of tapped features into a dict of outputs (``{"seg": logits}``, ...)."""

from pixelwise.models.heads.fcn import FCNHead, bilinear_kernel

__all__ = ["FCNHead", "bilinear_kernel"]
