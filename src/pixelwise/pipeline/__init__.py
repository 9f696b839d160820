"""The pipeline the five documents describe together, as one resumable command (``pixelwise pipeline``).

1. colorization pretraining on the images, labels unused (Larsson Ch. 3), or several proxies on one backbone
   (``--pretrain-tasks colorization jigsaw motion``, Larsson Ch. 4, NormSGD);
2. Mix-and-Match tuning on the labelled images (Zhan et al.), optional (``--mixmatch-epochs``);
3. a label autoencoder for the label-structure regulariser (Mostajabi et al.), optional;
4. segmentation training from the pretrained backbone on grey input, on a fraction of the labels (Long);
5. evaluation and one self-contained HTML report: metrics, per-class IoU, confusion matrix, training curves,
   example predictions and colorizations.

Every stage is a run folder under OUTPUT. A stage whose ``metrics.json`` exists and whose stored options equal the
requested ones is finished and skipped; one with a ``last.safetensors`` only is resumed. So an interrupted pipeline
continues with the same command; a changed one is refused, or with ``--rerun-changed`` reruns from the first changed
stage on (old folders are moved aside, never deleted).
"""

from pixelwise.pipeline.config import PipelineConfig

__all__ = ["PipelineConfig"]  # run_pipeline: pixelwise.pipeline.run (imports torch; the options do not)
