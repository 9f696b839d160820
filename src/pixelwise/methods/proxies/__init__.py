"""Self-supervised proxy tasks beside colorization (Larsson Ch. 4, §4.7.1): jigsaw and relative motion.

Each proxy is a head plus a loss on the features of one shared backbone (:class:`~pixelwise.models.taps.
FeatureTaps`), so several can train the same weights (:mod:`pixelwise.methods.multiproxy`).
"""
