"""Report helpers: label colourisation, overlays, panels and confusion-matrix figures."""

from pixelwise.report.images import colorize_labels, overlay, save_confusion_png, save_panel, save_png

__all__ = ["colorize_labels", "overlay", "save_confusion_png", "save_panel", "save_png"]
