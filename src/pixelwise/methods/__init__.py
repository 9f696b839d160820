"""One module per paper method: its loss, its sampler, its model wrapper, and the task the one training loop runs.

- ``segmentation``: supervised FCN training (Long Ch. 3), the base task the others extend.
- ``colorization``: hypercolumn colorization and colorization pretraining (Larsson Ch. 2-3).
- ``mixmatch``: Mix-and-Match tuning, patch graph + triplet loss (Zhan et al. 2018).
- ``label_ae``: the label autoencoder and its regulariser branch (Mostajabi et al. 2018).
- ``zoomout``: superpixel zoom-out (Mostajabi thesis Ch. 3; the end-to-end head is ``models.heads.ZoomOutHead``).
- ``weak``: segmentation from image-level tags (thesis Ch. 4).
- ``depth``: monocular depth (thesis §5.5).
"""
