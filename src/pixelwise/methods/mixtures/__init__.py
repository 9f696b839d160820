"""Stacked Bernoulli mixture models of parts with latent transformations (Larsson thesis §1.2, Appendix A).

- :mod:`.edges`: binary oriented edges (Bernstein & Amit), k-of-6, spread by dilation;
- :mod:`.bernoulli_mm`: ``PermutationMM``, Permutation EM in torch (log domain, E step as a matmul), and the
  Cayley tables of products of cyclic groups (A.2);
- :mod:`.layers`: the Edges, Mixture and RotMix layers and OR-pooling;
- :mod:`.net`: the Plain / Plain-SVM / Oriented networks (greedy fit, class models, likelihood classification,
  linear SVM top), their checkpoints (kind ``parts-net``) and the parts PNG grid.

Not a training ``Task``: EM has no gradients. ``pixelwise parts fit|eval|show`` is its command.
"""

from pixelwise.lazy import lazy_exports

# Imported on first use: `pixelwise CMD --help` reads the options module alone (no torch).
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "PermutationMM": "bernoulli_mm",
        "bernoulli_log_likelihood": "bernoulli_mm",
        "check_permutation_table": "bernoulli_mm",
        "cyclic_group_table": "bernoulli_mm",
        "edge_permutation": "edges",
        "oriented_edges": "edges",
        "polarity_permutation": "edges",
        "spread": "edges",
        "Edges": "layers",
        "Mixture": "layers",
        "RotMix": "layers",
        "check_transformations": "layers",
        "or_pool": "layers",
        "MODELS": "config",
        "PartsNet": "net",
        "PartsNetConfig": "net",
        "circular_correlation": "net",
        "error_rate": "net",
        "parts_grid": "net",
        "save_parts_grid": "net",
    },
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
