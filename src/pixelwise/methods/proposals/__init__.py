"""Object segment proposals from pairwise networks (Long thesis Ch. 4; spec region-proposals.md).

- :mod:`.pairwise`: the four-index region map p(x, Delta), its transpose and the pairwise product (§4.3.1-4.3.2).
- :mod:`.model`: ``RegionNet``, one pathway per backbone tap: k x k conv, transpose, shared matrix, scoring
  (§4.3.3-4.3.4).
- :mod:`.regions`: window geometry and the bilinear upsampling of region masks.
- :mod:`.loss`: the region loss that counts a window only when its object fits it (§4.3.6).
- :mod:`.nms`: linear-time NMS on the region grids (§4.3.5).
- :mod:`.predict`: from a forward pass to ranked window masks; :mod:`.task`: the training task.
Metrics (recall, ABO, AR, AR@k) live in :mod:`pixelwise.metrics.proposals`.
"""
