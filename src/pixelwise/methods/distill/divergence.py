"""Distillation losses of Larsson thesis §4.3: classic KL (Eq. 4.1), the new loss (Eq. 4.2-4.4) and the AB
divergence (Eq. 4.5-4.7) on pre-normalised features.

Conventions: the teacher comes first, as in D(p || q) with p = exp(ŷ) (teacher) and q = exp(ẑ) (student);
features are on ``dim`` (channels, C of them) and every other position is a sample. Losses are *means*: over the
C features (the 1/C of Eq. 4.2 and 4.7) and over samples / positions.

The AB divergence is computed in the log domain (p^α q^β = exp(αŷ + βẑ)) by one formula that is exact and
smooth through all five cases of Eq. 4.6. With s = α + β, and (w, δ, c) = (ŷ, ẑ - ŷ, β) when |α| >= |β|, else
(ẑ, ŷ - ẑ, α) (the duality d^{(α,β)}(p, q) = d^{(β,α)}(q, p)),

    d_AB^{(α,β)}(e^ŷ, e^ẑ) = e^{s w} δ² Φ(cδ, sδ),   φ(x) = (e^x - 1)/x,   Φ(x, y) = (φ(x) - φ(y))/(x - y),

Φ being the divided difference of φ (Φ(0, 0) = 1/2). Derivation, for |α| >= |β|: with δ = ẑ - ŷ,
p^α q^β - (α/s) p^s - (β/s) q^s = e^{sŷ} [(e^{βδ} - 1) - (β/s)(e^{sδ} - 1)] = e^{sŷ} βδ [φ(βδ) - φ(sδ)], and
βδ - sδ = -αδ, so Eq. 4.6's general case -(1/(αβ)) (...) is e^{sŷ} δ² Φ(βδ, sδ). At β = 0, α = -β and
α = β = 0 the same expression is Eq. 4.6's other cases (φ(0) = 1), e.g. ½(ŷ - ẑ)² at (0, 0).

φ is increasing, so Φ > 0: the divergence is >= 0 and 0 exactly where ŷ = ẑ. Choosing the larger of |α|, |β|
as the one outside Φ keeps |x - y| >= max(|x|, |y|) / 2, so φ(x) - φ(y) only cancels when both are tiny, where
Φ's Taylor series takes over: no 0/0 and no catastrophic cancellation near the special cases.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

__all__ = [
    "ab_divergence",
    "ab_divergence_terms",
    "ab_loss",
    "classic_distillation_loss",
    "ensemble_mean",
    "generalized_kl_loss",
    "generalized_kl_terms",
    "l2_loss",
]


def ensemble_mean(features: Sequence[torch.Tensor]) -> torch.Tensor:
    """f_teacher(x) = (1/M) Σ_m f_m(x), the ensemble teacher of §4.3 (its first equation)."""
    if not features:
        raise ValueError("an ensemble needs at least one member")
    return torch.stack(list(features)).mean(dim=0)


def classic_distillation_loss(
    y: torch.Tensor, z: torch.Tensor, temperature: float, dim: int = 1
) -> torch.Tensor:
    """Eq. 4.1: T² KL(softmax(y/T) || softmax(z/T)) over ``dim``, averaged over the other positions.

    ``y`` are the teacher's scores (an ensemble's: :func:`ensemble_mean`), ``z`` the student's, both raw (Eq. 4.1
    has no pre-normalisation). Its gradient wrt z_i is T (softmax(z/T)_i - softmax(y/T)_i) per sample.
    """
    if temperature <= 0:
        raise ValueError(f"the temperature must be > 0, got {temperature}")
    teacher = F.log_softmax(y / temperature, dim=dim)
    student = F.log_softmax(z / temperature, dim=dim)
    kl = (teacher.exp() * (teacher - student)).sum(dim=dim)
    return temperature**2 * kl.mean()


def generalized_kl_terms(y_hat: torch.Tensor, z_hat: torch.Tensor, temperature: float) -> torch.Tensor:
    """Per feature, Eq. 4.3's summand at p = e^{ŷ/T}, q = e^{ẑ/T}: e^{ŷ/T}(ŷ - ẑ)/T - e^{ŷ/T} + e^{ẑ/T}."""
    p = torch.exp(y_hat / temperature)
    return p * (y_hat - z_hat) / temperature - p + torch.exp(z_hat / temperature)


def generalized_kl_loss(y_hat: torch.Tensor, z_hat: torch.Tensor, temperature: float) -> torch.Tensor:
    """L_new of Eq. 4.2: (T²/C) D_KL^gen(exp(ŷ/T) || exp(ẑ/T)), averaged over samples / positions.

    Equals :func:`ab_loss` at (α, β) = (1/T, 0) (Eq. 4.7). ∂L_new/∂ẑ_i = (T/C)(e^{ẑ_i/T} - e^{ŷ_i/T}) for one
    sample: the thesis writes ∂/∂z_i, but the derivative wrt z_i = s_i ẑ_i carries a further 1/s_i (erratum).
    """
    return temperature**2 * generalized_kl_terms(y_hat, z_hat, temperature).mean()


def _phi(x: torch.Tensor) -> torch.Tensor:
    """φ(x) = (e^x - 1)/x with φ(0) = 1, exact and differentiable at 0."""
    small = x.abs() < 1e-3
    safe = torch.where(small, torch.ones_like(x), x)  # no 0/0 in the branch where() discards (NaN gradients)
    series = 1 + x / 2 * (1 + x / 3 * (1 + x / 4))  # next term x^4/120 < 1e-14
    return torch.where(small, series, torch.expm1(safe) / safe)


def _phi_divided_difference(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Φ(x, y) = (φ(x) - φ(y)) / (x - y), φ'(x) at x = y: the Taylor series Σ_k h_k(x, y)/(k+2)! near 0.

    h_k is the complete homogeneous polynomial of degree k (h_1 = x + y, h_2 = x² + xy + y², ...). Its cut-off
    is where the series' truncation error and the direct formula's cancellation error are both far below the
    dtype's resolution (float64: 1e-13; float32: 1e-6).
    """
    cutoff = 1e-2 if x.dtype == torch.float64 else 1e-1
    small = torch.maximum(x.abs(), y.abs()) < cutoff
    xs, ys = torch.where(small, x, 0), torch.where(small, y, 0)  # the series on small inputs only
    h2 = xs * xs + xs * ys + ys * ys
    h3 = (xs + ys) * (xs * xs + ys * ys)
    h4 = xs**4 + xs**3 * ys + xs * xs * ys * ys + xs * ys**3 + ys**4
    series = 1 / 2 + (xs + ys) / 6 + h2 / 24 + h3 / 120 + h4 / 720
    diff = x - y
    safe = torch.where(small | (diff == 0), torch.ones_like(diff), diff)
    direct = (_phi(x) - _phi(y)) / safe
    return torch.where(small, series, direct)


def ab_divergence_terms(
    y_hat: torch.Tensor, z_hat: torch.Tensor, alpha: float = 0.25, beta: float = 0.0
) -> torch.Tensor:
    """Elementwise d_AB^{(α,β)}(e^ŷ, e^ẑ) of Eq. 4.6 (Cichocki's alpha-beta divergence), for any real (α, β).

    Computed in at least float32 (bfloat16 features are upcast) by the single formula of the module docstring,
    which is continuous in (α, β) across the cases α = 0, β = 0, α = -β and α = β = 0.
    """
    alpha, beta = float(alpha), float(beta)
    dtype = torch.promote_types(torch.promote_types(y_hat.dtype, z_hat.dtype), torch.float32)
    y_hat, z_hat = y_hat.to(dtype), z_hat.to(dtype)
    total = alpha + beta  # the inverse temperature (§4.3.3)
    if abs(alpha) >= abs(beta):
        anchor, delta, inner = y_hat, z_hat - y_hat, beta
    else:  # duality: d^{(α,β)}(p, q) = d^{(β,α)}(q, p)
        anchor, delta, inner = z_hat, y_hat - z_hat, alpha
    scale = torch.exp(total * anchor) if total != 0 else torch.ones_like(anchor)
    return scale * delta * delta * _phi_divided_difference(inner * delta, total * delta)


def ab_divergence(
    y_hat: torch.Tensor, z_hat: torch.Tensor, alpha: float = 0.25, beta: float = 0.0, dim: int = 1
) -> torch.Tensor:
    """D_AB^{(α,β)}(exp(ŷ) || exp(ẑ)) of Eq. 4.5: the sum over the features on ``dim`` (no cross terms)."""
    return ab_divergence_terms(y_hat, z_hat, alpha, beta).sum(dim=dim)


def ab_loss(y_hat: torch.Tensor, z_hat: torch.Tensor, alpha: float = 0.25, beta: float = 0.0) -> torch.Tensor:
    """(1/C) D_AB^{(α,β)}(exp(ŷ) || exp(ẑ)), averaged over samples / positions: the mean of the elementwise terms.

    The default (α, β) = (1/4, 0) is the thesis's choice for all five problems of Table 4.3. At (1/T, 0) this is
    L_new (Eq. 4.7) with no extra constant: D_AB^{(1/T,0)} = T² D_KL^gen(e^{ŷ/T} || e^{ẑ/T}) term by term, since
    Eq. 4.6's β = 0 case is (1/α²)(p^α log(p^α/q^α) - p^α + q^α).
    """
    return ab_divergence_terms(y_hat, z_hat, alpha, beta).mean()


def l2_loss(y_hat: torch.Tensor, z_hat: torch.Tensor) -> torch.Tensor:
    """½(ŷ - ẑ)² averaged over features and positions: D_AB at (0, 0), the thesis's squared-L2 baseline."""
    diff = z_hat.float() - y_hat.float()
    return 0.5 * (diff * diff).mean()
