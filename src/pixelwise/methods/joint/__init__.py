"""The two-part joint depth + segmentation model (Mostajabi thesis §5.5.2, Table 5.6).

Part 1 reads RGB and predicts depth and segmentation; part 2 reads [RGB, part 1's depth, part 1's class
probabilities] and predicts both again (model.py). Four losses (L1 depth, cross-entropy seg, at both parts) are
balanced to contribute equally (loss.py); images with depth but no labels train everything except the seg
heads (the masked seg loss, heads run on detached weights); every batch holds a fully labelled image
(sampler.py); the ablations of Table 5.6 are arms of one config (config.py); task.py is the Task and the
two-phase schedule.
"""

from pixelwise.lazy import lazy_exports

# Imported on first use: `pixelwise CMD --help` reads the options module alone (no torch).
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "ARMS": "config",
        "JointConfig": "config",
        "TERMS": "loss",
        "BalancedTerms": "loss",
        "JointModel": "model",
        "JointModelConfig": "model",
        "LabelledBatchSampler": "sampler",
        "JointTask": "task",
        "run_joint": "task",
    },
)

__all__ = [
    "ARMS",
    "TERMS",
    "BalancedTerms",
    "JointConfig",
    "JointModel",
    "JointModelConfig",
    "JointTask",
    "LabelledBatchSampler",
    "run_joint",
]
