"""Zoom-out features (Mostajabi thesis Ch. 3): superpixels described at every zoom level, labelled by an MLP.

The end-to-end variant (§3.5) is a segmentation head, :class:`pixelwise.models.heads.ZoomOutHead`
(``pixelwise train --arch zoomout``); this package is the superpixel classifier of §3.3-3.4 (``pixelwise zoomout``).
"""

from pixelwise.methods.zoomout.model import SuperpixelZoomOut, SuperpixelZoomOutConfig
from pixelwise.methods.zoomout.task import ZoomOutTask

__all__ = ["SuperpixelZoomOut", "SuperpixelZoomOutConfig", "ZoomOutTask"]
