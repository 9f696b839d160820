"""Task-agnostic distillation (Larsson thesis Ch. 4 §4.3): frozen teacher runs -> one student backbone.

- :mod:`.divergence`: Eq. 4.1 (classic KL), Eq. 4.2-4.4 (the new loss, generalised KL) and the AB divergence of
  Eq. 4.5-4.7, continuous through all its special cases;
- :mod:`.teachers`: frozen teachers from any run with a backbone, and the pre-ReLU top layer they are read at;
- :mod:`.statistics`: the teacher statistics s of Eq. 4.4 and the feature subset of §4.3.4;
- :mod:`.student`: the student (``taps.backbone.*``, kind 'distill-student') and the auxiliary-layer adapter;
- :mod:`.config` and :mod:`.task`: ``pixelwise distill``'s options and its training task.
"""

from pixelwise.lazy import lazy_exports

# Imported on first use: `pixelwise CMD --help` reads the options module alone (no torch).
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "DistillConfig": "config",
        "ab_divergence": "divergence",
        "ab_divergence_terms": "divergence",
        "ab_loss": "divergence",
        "classic_distillation_loss": "divergence",
        "ensemble_mean": "divergence",
        "generalized_kl_loss": "divergence",
        "generalized_kl_terms": "divergence",
        "l2_loss": "divergence",
        "TeacherScale": "statistics",
        "feature_subset": "statistics",
        "teacher_scale": "statistics",
        "AuxiliaryStudent": "student",
        "StudentConfig": "student",
        "StudentModel": "student",
        "DistillationTask": "task",
        "stored_distillation": "task",
        "FrozenTeacher": "teachers",
        "TeacherEnsemble": "teachers",
        "TeacherSpec": "teachers",
        "load_teacher": "teachers",
        "pre_relu_block": "teachers",
        "top_features": "teachers",
        "top_layer": "teachers",
    },
)

__all__ = [
    "AuxiliaryStudent",
    "DistillConfig",
    "DistillationTask",
    "FrozenTeacher",
    "StudentConfig",
    "StudentModel",
    "TeacherEnsemble",
    "TeacherScale",
    "TeacherSpec",
    "ab_divergence",
    "ab_divergence_terms",
    "ab_loss",
    "classic_distillation_loss",
    "ensemble_mean",
    "feature_subset",
    "generalized_kl_loss",
    "generalized_kl_terms",
    "l2_loss",
    "load_teacher",
    "pre_relu_block",
    "stored_distillation",
    "teacher_scale",
    "top_features",
    "top_layer",
]
