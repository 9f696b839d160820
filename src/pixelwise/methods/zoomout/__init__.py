"""Zoom-out features (Mostajabi thesis Ch. 3): superpixels described at every zoom level, labelled by an MLP.

The end-to-end variant (§3.5) is a segmentation head, :class:`pixelwise.models.heads.ZoomOutHead`
(``pixelwise train --arch zoomout``); this package is the superpixel classifier of §3.3-3.4 (``pixelwise zoomout``).
"""

from pixelwise.lazy import lazy_exports

# Imported on first use: `pixelwise CMD --help` reads the options module alone (no torch).
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "SuperpixelZoomOut": "model",
        "SuperpixelZoomOutConfig": "model",
        "ZoomOutTask": "task",
    },
)

__all__ = ["SuperpixelZoomOut", "SuperpixelZoomOutConfig", "ZoomOutTask"]
