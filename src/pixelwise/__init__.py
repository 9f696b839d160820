"""pixelwise: representation learning for pixel-wise prediction when labels are scarce.

Layers, imports running downward only (docs/architecture.md; tests/test_layering.py keeps it true):

    cli -> pipeline, evaluation -> methods (one package per paper method; kinds.py) -> engine (the one loop)
        -> models (backbones, taps, heads, geometry), data, metrics (pure), report

The engine knows no method (its hook is ``engine.task.Task``), models never import the engine, metrics import
only torch and numpy. Importing the package stays light: submodules are imported where they are used.
"""

__version__ = "0.1.0"
