"""pixelwise: representation learning for pixel-wise prediction when labels are scarce.

The package is organised by role (see README): ``data`` (datasets, transforms, synthetic world),
``models`` (backbones, feature taps, heads), ``methods`` (one module per paper method), ``metrics``,
``engine`` (train/eval loops, checkpoints) and ``cli``. Importing the package stays light: submodules
are imported where they are used.
"""

__version__ = "0.1.0"
