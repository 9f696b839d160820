"""Stacked Bernoulli mixture models of parts with latent transformations (Larsson thesis §1.2, Appendix A).

- :mod:`.edges`: binary oriented edges (Bernstein & Amit), k-of-6, spread by dilation;
- :mod:`.bernoulli_mm`: ``PermutationMM``, Permutation EM in torch (log domain, E step as a matmul), and the
  Cayley tables of products of cyclic groups (A.2);
- :mod:`.layers`: the Edges, Mixture and RotMix layers and OR-pooling;
- :mod:`.net`: the Plain / Plain-SVM / Oriented networks (greedy fit, class models, likelihood classification,
  linear SVM top), their checkpoints (kind ``parts-net``) and the parts PNG grid.

Not a training ``Task``: EM has no gradients. ``pixelwise parts fit|eval|show`` is its command.
"""

from pixelwise.methods.mixtures.bernoulli_mm import (
    PermutationMM,
    bernoulli_log_likelihood,
    check_permutation_table,
    cyclic_group_table,
)
from pixelwise.methods.mixtures.edges import edge_permutation, oriented_edges, polarity_permutation, spread
from pixelwise.methods.mixtures.layers import Edges, Mixture, RotMix, check_transformations, or_pool
from pixelwise.methods.mixtures.net import (
    MODELS,
    PartsNet,
    PartsNetConfig,
    circular_correlation,
    error_rate,
    parts_grid,
    save_parts_grid,
)

__all__ = [
    "MODELS",
    "Edges",
    "Mixture",
    "PartsNet",
    "PartsNetConfig",
    "PermutationMM",
    "RotMix",
    "bernoulli_log_likelihood",
    "check_permutation_table",
    "check_transformations",
    "circular_correlation",
    "cyclic_group_table",
    "edge_permutation",
    "error_rate",
    "oriented_edges",
    "or_pool",
    "parts_grid",
    "polarity_permutation",
    "save_parts_grid",
    "spread",
]
