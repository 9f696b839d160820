"""A stacked mixture network (Larsson thesis §1.2.6, §1.2.9): greedy layer-wise fit, class models, SVM top.

The three models of §1.2.9 (docs: specs/mixture-models.md, "Models"; their sizes are options here):

- **Plain**: Edges -> Mixture(S = 6, M parts) -> one Mixture(M = 1) per class; ŷ = argmax_y log p(X | y) (1.9).
  With M = 1 a class model needs no EM: theta_y is the clipped class mean of the binary map.
- **Plain-SVM**: the same two layers with a multi-class linear SVM (scikit-learn's ``LinearSVC``) on the binary
  map instead of the class models: discriminative, but a new class means retraining it.
- **Oriented**: Edges -> RotMix(S = 6, M parts, R rotations) -> one RotMix(M = 1, R_c rotations) per class. A
  class model is fitted by Permutation EM on the complete samples of its images: each image rotated by
  360 w / R_c degrees and passed through the layers again (option (b) of §1.2.5). A test image is coded once and
  scored by the max over w (the coding approximation of A.4; ``--class-score logsumexp`` is the marginal).

Layer 2 sees every training image without its label; only the top needs labels. Class log-likelihoods can be
standardised with their training mean and s.d. (§1.2.7) when they come out unbalanced. The network is stored
through the checkpoint machinery (safetensors + JSON metadata, kind ``parts-net``); it is not a ``Task`` (EM has
no gradients and no place in the training loop).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from pixelwise.data.digits import rotate
from pixelwise.methods.mixtures.bernoulli_mm import PermutationMM, bernoulli_log_likelihood
from pixelwise.methods.mixtures.config import CLASS_SCORES, MODELS
from pixelwise.methods.mixtures.layers import Edges, Mixture, check_transformations
from pixelwise.models.stored import StoredConfig


@dataclass(frozen=True)
class PartsNetConfig(StoredConfig):
    """Everything that rebuilds a parts network; stored in its checkpoint (kind ``parts-net``)."""

    KIND: ClassVar[str] = "parts-net"

    model: str = "plain"
    image_size: tuple[int, int] = (28, 28)
    channels: int = 1
    edge_k: int = 6
    edge_radius: int = 1
    minimum_contrast: float = 0.0
    patch_size: int = 6
    parts: int = 256  # M of layer 2 (the thesis: 1,280 Plain; 40 x R = 32 Oriented)
    rotations: int = 1  # R of layer 2 (1: a plain Mixture)
    polarities: int = 1  # T of layer 2 (2: rotation x polarity, the Cayley table of (A.2))
    transform: str = "recompute"  # how layer 2 builds its complete samples (§1.2.5 option (b) or (a))
    pool: int = 4
    patches_per_image: int = 40
    min_edges: int = 10
    parts_eps: float = 0.005  # public code: 0.005 in the oriented parts layer
    class_components: int = 1  # M of the class models (the thesis: 1)
    class_rotations: int = 1  # R_c of the class models (Oriented: 16)
    class_eps: float = 0.05  # public code: PermutationMM's 0.05
    class_score: str = "max"
    standardize: bool = False
    iterations: int = 10
    svm_c: float | None = None  # None: 3-fold cross-validation over 1e-3 .. 1 on the labelled images
    seed: int = 0

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise ValueError(f"unknown parts model {self.model!r}; choose from {', '.join(MODELS)}")
        if self.class_score not in CLASS_SCORES:
            raise ValueError(
                f"unknown class score {self.class_score!r}; choose from {', '.join(CLASS_SCORES)}"
            )
        check_transformations(self.rotations, self.polarities, self.transform)
        if self.class_rotations < 1 or self.class_components < 1:
            raise ValueError("class models need class_components and class_rotations >= 1")
        if self.model == "plain-svm" and self.class_rotations > 1:
            raise ValueError(
                "plain-svm has no class models to rotate: use --class-rotations 1 or --model oriented"
            )
        if min(self.image_size) < self.patch_size:
            raise ValueError(
                f"images {self.image_size} are smaller than the {self.patch_size}x{self.patch_size} parts"
            )

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> PartsNetConfig:
        config = super().from_dict(values)
        return cls(**{**config.__dict__, "image_size": tuple(config.image_size)})

    @staticmethod
    def for_model(model: str, **overrides: Any) -> PartsNetConfig:
        """The defaults of one of the three models of §1.2.9 (CPU-sized), with ``overrides``."""
        defaults: dict[str, Any] = {"model": model}
        if model == "oriented":
            defaults.update(parts=16, rotations=16, class_rotations=16, patches_per_image=20)
        return PartsNetConfig(**{**defaults, **overrides})


class PartsNet:
    """Edges -> Mixture / RotMix -> class models or a linear SVM; see the module docstring."""

    def __init__(self, config: PartsNetConfig, classes: list[str] | None = None) -> None:
        self.config = config
        self.classes = list(classes) if classes is not None else [str(i) for i in range(10)]
        self.edges = Edges(config.edge_k, config.edge_radius, config.minimum_contrast)
        self.layer = Mixture(
            config.parts, config.patch_size, config.pool, config.rotations, config.polarities, config.transform,
            config.iterations, config.parts_eps, config.patches_per_image, config.min_edges, config.seed,
        )  # fmt: skip
        self.class_mu: torch.Tensor | None = None  # [C, M_c R_c, D]
        self.class_log_pi: torch.Tensor | None = None  # [C, M_c R_c]
        self.standard: torch.Tensor | None = None  # [2, C]: mean and s.d. of each class's log-likelihood
        self.svm: tuple[torch.Tensor, torch.Tensor] | None = None  # weight [C, D], bias [C]
        self.svm_c: float | None = None

    # ------------------------------------------------------------------ input checks
    def check_images(self, images: torch.Tensor) -> torch.Tensor:
        """``images`` if they are [N, C, H, W] floats of the size and depth the network was fitted on."""
        height, width = self.config.image_size
        if images.dim() != 4:
            raise ValueError(f"images must be a batch [N, C, H, W], got shape {list(images.shape)}")
        if images.shape[1] != self.config.channels:
            fix = (
                "convert them to grey"
                if self.config.channels == 1
                else f"give {self.config.channels} channels"
            )
            raise ValueError(
                f"images have {images.shape[1]} channel(s) but this network was fitted on {self.config.channels}-"
                f"channel images: {fix} (or refit on images like these)"
            )
        if tuple(images.shape[-2:]) != (height, width):
            raise ValueError(
                f"images are {images.shape[-2]}x{images.shape[-1]} but this network was fitted on "
                f"{height}x{width}: resize them to {height}x{width} (or refit on images of their size)"
            )
        if not images.is_floating_point():
            raise ValueError(f"images must be floats in [0, 1], got {images.dtype}; use images.float() / 255")
        return images

    # ------------------------------------------------------------------ layers 1-2 (no labels)
    def fit_parts(self, images: torch.Tensor) -> PartsNet:
        """Fit layer 2 on unlabelled ``images`` (greedy: the edges are fixed)."""
        self.layer.fit(self.check_images(images), self.edges)
        return self

    def feature_maps(self, images: torch.Tensor, chunk: int = 256) -> torch.Tensor:
        """The pooled one-hot codes [N, K, h, w] (uint8) of layer 2."""
        self.check_images(images)
        return torch.cat(
            [self.layer.code(self.edges(images[s : s + chunk])) for s in range(0, len(images), chunk)]
        )

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """The binary features [N, D] the top layer reads (the flattened pooled codes)."""
        return self.feature_maps(images).flatten(1)

    def complete_features(self, images: torch.Tensor) -> torch.Tensor:
        """Complete samples [N, R_c, D] of the top layer: each image rotated by 360 w / R_c and recoded (§1.2.5 (b))."""
        blocks = self.config.class_rotations
        angles = [2 * math.pi * w / blocks for w in range(blocks)]
        stacked = [self.features(images if w == 0 else rotate(images, torch.tensor(a)).clamp(0, 1))
                   for w, a in enumerate(angles)]  # fmt: skip
        return torch.stack(stacked, dim=1)

    # ------------------------------------------------------------------ layer 3 (labels)
    def fit_top(self, features: torch.Tensor, labels: torch.Tensor) -> PartsNet:
        """Fit the class models (1.9) or the SVM on labelled features: [N, D], or [N, R_c, D] complete samples
        for class models with R_c > 1."""
        labels = torch.as_tensor(labels).long()
        missing = sorted(set(range(len(self.classes))) - set(labels.tolist()))
        if missing:
            raise ValueError(
                f"no labelled image of class(es) {[self.classes[i] for i in missing]}; every class needs one"
            )
        if self.config.model == "plain-svm":
            self._fit_svm(features.flatten(1) if features.dim() == 2 else features[:, 0], labels)
            return self
        complete = features if features.dim() == 3 else features[:, None]
        if complete.shape[1] != self.config.class_rotations:
            raise ValueError(
                f"class models with {self.config.class_rotations} rotations need complete samples [N, "
                f"{self.config.class_rotations}, D] (PartsNet.complete_features), got {list(features.shape)}"
            )
        mus, log_pis = [], []
        for index in range(len(self.classes)):
            model = PermutationMM(
                self.config.class_components, self.config.class_rotations, iterations=self.config.iterations,
                eps=self.config.class_eps, seed=self.config.seed + index,
            ).fit(complete[labels == index])  # fmt: skip
            mus.append(model.parts())
            log_pis.append(model.log_pi.flatten())
        self.class_mu, self.class_log_pi = torch.stack(mus), torch.stack(log_pis)
        self.standard = None
        if self.config.standardize:  # §1.2.7: balance the classes' log-likelihoods on the training data
            scores = self._raw_scores(complete[:, 0])
            self.standard = torch.stack([scores.mean(dim=0), scores.std(dim=0).clamp(min=1e-6)])
        return self

    def _fit_svm(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        try:
            from sklearn.model_selection import GridSearchCV, StratifiedKFold
            from sklearn.svm import LinearSVC
        except ImportError as err:  # optional: only the SVM top layer needs it
            raise ImportError("--model plain-svm needs scikit-learn: pip install scikit-learn") from err

        x, y = features.float().numpy(), labels.numpy()
        c = self.config.svm_c
        if c is None:  # C by 3-fold CV on the labelled images only (nothing else is seen)
            folds = int(min(3, np.bincount(y).min()))
            if folds >= 2:
                search = GridSearchCV(
                    LinearSVC(dual="auto", max_iter=5000), {"C": [1e-3, 1e-2, 1e-1, 1.0]},
                    cv=StratifiedKFold(folds, shuffle=True, random_state=self.config.seed),
                )  # fmt: skip
                c = float(search.fit(x, y).best_params_["C"])
            else:
                c = 0.01
        svm = LinearSVC(C=c, dual="auto", max_iter=5000, random_state=self.config.seed).fit(x, y)
        weight = torch.from_numpy(svm.coef_.astype(np.float32))
        bias = torch.from_numpy(np.atleast_1d(svm.intercept_).astype(np.float32))
        if weight.shape[0] == 1:  # two classes: sklearn keeps one hyperplane
            weight, bias = torch.cat([-weight, weight]), torch.cat([-bias, bias])
        self.svm, self.svm_c = (weight, bias), c

    def _class_log_likelihoods(self, features: torch.Tensor) -> torch.Tensor:
        """log p(x | class y, part j) [N, C, M_c R_c] of untransformed samples (A.4)."""
        assert self.class_mu is not None, "fit_top first"
        classes, parts, dim = self.class_mu.shape
        flat = bernoulli_log_likelihood(features.float(), self.class_mu.reshape(classes * parts, dim))
        return flat.view(-1, classes, parts)

    def _raw_scores(self, features: torch.Tensor) -> torch.Tensor:
        per_part = self._class_log_likelihoods(features)
        if self.config.class_score == "logsumexp":
            return torch.logsumexp(per_part + self.class_log_pi, dim=-1)
        return per_part.amax(dim=-1)

    def scores(self, features: torch.Tensor) -> torch.Tensor:
        """Class scores [N, C] of features [N, D]: log-likelihoods (1.9), standardised if fitted so, or SVM margins."""
        if self.config.model == "plain-svm":
            assert self.svm is not None, "fit_top first"
            return features.float() @ self.svm[0].T + self.svm[1]
        scores = self._raw_scores(features)
        if self.standard is not None:
            scores = (scores - self.standard[0]) / self.standard[1]
        return scores

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        """Predicted class indices [N] of images [N, C, H, W]."""
        return self.scores(self.features(images)).argmax(dim=1)

    def poses(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The rotation index w in 0..R_c-1 of each image's best part of class ``labels`` (coding, A.4)."""
        per_part = self._class_log_likelihoods(features)
        best = per_part[torch.arange(len(labels)), torch.as_tensor(labels).long()].argmax(dim=-1)
        return best % self.config.class_rotations

    # ------------------------------------------------------------------ storage
    def state_dict(self) -> dict[str, torch.Tensor]:
        state = {f"layer.{k}": v for k, v in self.layer.state().items()}
        if self.class_mu is not None:
            state.update({"classes.mu": self.class_mu, "classes.log_pi": self.class_log_pi})
        if self.standard is not None:
            state["classes.standard"] = self.standard
        if self.svm is not None:
            state.update({"svm.weight": self.svm[0], "svm.bias": self.svm[1]})
        return state

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> PartsNet:
        self.layer.load({k[len("layer.") :]: v for k, v in state.items() if k.startswith("layer.")})
        self.class_mu, self.class_log_pi = state.get("classes.mu"), state.get("classes.log_pi")
        self.standard = state.get("classes.standard")
        if "svm.weight" in state:
            self.svm = (state["svm.weight"], state["svm.bias"])
        return self

    def save(self, path: str | Path, **meta: Any) -> Path:
        """Write the network as a checkpoint (safetensors + JSON metadata, kind ``parts-net``)."""
        from pixelwise.engine.checkpoint import save_checkpoint

        described = {"model": self.config.to_dict(), "classes": self.classes, "svm_c": self.svm_c,
                     "layer_log_likelihoods": self.layer.log_likelihoods, **meta}  # fmt: skip
        return save_checkpoint(path, self.state_dict(), described)

    @classmethod
    def load(cls, path: str | Path) -> tuple[PartsNet, dict[str, Any]]:
        """Rebuild a network written by :meth:`save`; a checkpoint of another kind is a one-line error."""
        from pixelwise.engine.checkpoint import load_checkpoint

        checkpoint = load_checkpoint(path)
        described = checkpoint.meta.get("model", {})
        if described.get("kind") != PartsNetConfig.KIND:
            raise ValueError(
                f"{path}: a {described.get('kind', 'segmentation')!r} checkpoint, not a parts network (fit one "
                "with `pixelwise parts fit`)"
            )
        net = cls(PartsNetConfig.from_dict(described), checkpoint.meta.get("classes"))
        net.svm_c = checkpoint.meta.get("svm_c")
        return net.load_state_dict(checkpoint.model_state), checkpoint.meta


def error_rate(predicted: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of wrong predictions."""
    return float((predicted != labels).float().mean())


def circular_correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    """The circular correlation coefficient of two angle samples (radians; Jammalamadaka & SenGupta 2001):
    sum sin(a - a_bar) sin(b - b_bar) / sqrt(sum sin^2(a - a_bar) sum sin^2(b - b_bar)), a_bar the circular mean.
    1 when b is a plus a constant (mod 2 pi); invariant to each sample's offset, so to the canonical rotation."""
    a, b = a.double(), b.double()
    da = torch.sin(a - torch.atan2(torch.sin(a).mean(), torch.cos(a).mean()))
    db = torch.sin(b - torch.atan2(torch.sin(b).mean(), torch.cos(b).mean()))
    denominator = torch.sqrt((da**2).sum() * (db**2).sum())
    return float((da * db).sum() / denominator) if denominator > 0 else 0.0


def parts_grid(mu: torch.Tensor, parts: int, transformations: int, scale: int = 6) -> np.ndarray:
    """An RGB picture [H, W, 3] uint8 of parts mu [M T, 8, S, S]: one row per part, one column per transformation.

    Each cell is a part's S x S patch, each pixel coloured by the orientation of its most probable edge (hue:
    45 j degrees for feature j) and as bright as that probability.
    """
    import matplotlib.colors as mcolors

    mu = mu.float().view(parts, transformations, mu.shape[1], mu.shape[2], mu.shape[3])
    strength, direction = mu.max(dim=2)  # [M, T, S, S]
    hue = direction.float() / mu.shape[2]
    hsv = torch.stack([hue, torch.full_like(hue, 0.8), strength / strength.max().clamp(min=1e-6)], dim=-1)
    rgb = torch.from_numpy(mcolors.hsv_to_rgb(hsv.numpy()))  # [M, T, S, S, 3]
    rgb = rgb.repeat_interleave(scale, dim=2).repeat_interleave(scale, dim=3)
    cell = rgb.shape[2]
    canvas = torch.ones(parts * (cell + 1) + 1, transformations * (cell + 1) + 1, 3) * 0.25  # grey grid lines
    for row in range(parts):
        for col in range(transformations):
            top, left = 1 + row * (cell + 1), 1 + col * (cell + 1)
            canvas[top : top + cell, left : left + cell] = rgb[row, col]
    return (canvas.clamp(0, 1).numpy() * 255).astype(np.uint8)


def save_parts_grid(net: PartsNet, path: str | Path) -> Path:
    """Write layer 2's parts as a PNG grid (rows: parts, columns: transformations)."""
    from pixelwise.report.images import save_png

    assert net.layer.mu is not None, "fit the parts first"
    grid = parts_grid(net.layer.mu, net.config.parts, net.layer.transformations)
    return save_png(grid, path)
