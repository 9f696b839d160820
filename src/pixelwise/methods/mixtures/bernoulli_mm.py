"""Bernoulli mixtures with a latent permutation: Permutation EM (Larsson thesis §1.2.3-1.2.4, Appendix A).

A *complete sample* x = [g_0(x), ..., g_{P-1}(x)] [P, D] holds every transformation of one binary sample (1.4,
A.1). The model (1.5-1.6, A.2): (Z, W) ~ Cat(pi), pi in [0, 1]^{F x P}; mu in [0, 1]^{F x P x D}. A P x P
permutation matrix A (each row a permutation) says which data block goes with which parameter block under the
latent permutation W; for products of cyclic groups it is the Cayley table of :func:`cyclic_group_table` (A.2).

**Convention** (docs: specs/mixture-models.md, errata): the E and M steps (1.7-1.8) pair data block A(w, w') with
parameter block w', the inverse of the generative statement (1.6); for a cyclic group this only relabels W -> -W.
This module uses the E-step's pairing in both steps:

- E step (1.7): log gamma~_{n,z,w} = log pi_{z,w} + sum_{w',d} [x_{A(w,w'),d} log mu_{z,w',d}
  + (1 - x) log(1 - mu)], normalised with log-sum-exp. As matmuls: G[n, u, z, w'] = x_u . logit(mu_{z,w'}) for
  every data block u and parameter block w' (one [N P, D] x [D, F P] product), then
  log p(x | z, w) = sum_{w'} G[n, A(w, w'), z, w'] + sum_{w',d} log(1 - mu_{z,w',d}).
- M step: pi_{z,w} = mean_n gamma_{n,z,w} and mu_{z,v,d} = sum_{n,w} gamma_{n,z,w} x_{A(w,v),d} /
  sum_{n,w} gamma_{n,z,w}, the maximiser of the expected complete log-likelihood for this pairing (A.3). It is
  (1.8) with A's indices swapped, identical for the symmetric tables of abelian groups (every group used here).

mu is clipped to [eps, 1 - eps] after each M step (public code, gustavla/parts-net: 0.05 in ``PermutationMM``);
the clipped value is the box-constrained maximiser of each coordinate's concave objective, so the log-likelihood
still never decreases. pi starts uniform and mu from F random complete samples (shrunk halfway to 1/2), drawn
with a ``torch.Generator`` seeded by ``seed``: fits are deterministic.

**Coding** (end of §1.2.4, A.4): the model is then read as F P separate parts mu.reshape(F P, D) and only the
untransformed sample is matched (:meth:`PermutationMM.parts`), not the complete sample.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch


def cyclic_group_table(sizes: Sequence[int]) -> torch.Tensor:
    """The Cayley table A [P, P] of the direct product of cyclic groups of the given sizes (A.1.2, A.2).

    The flattened index of (r_0, r_1, ...) is r_0 + s_0 (r_1 + s_1 (...)): for sizes (R, T) that is i = R t + r,
    so that indices 0..R-1 are the rotations of one polarity. A(i, j) is the index of the composition i + j.
    """
    sizes = tuple(int(s) for s in sizes)
    if not sizes or any(s < 1 for s in sizes):
        raise ValueError(f"cyclic group sizes must be >= 1, got {sizes}")
    count = math.prod(sizes)
    digits = []  # digits[k][i]: the k-th group's element of flattened index i
    scale = 1
    for size in sizes:
        digits.append((torch.arange(count) // scale) % size)
        scale *= size
    table = torch.zeros(count, count, dtype=torch.long)
    scale = 1
    for size, digit in zip(sizes, digits):
        table += scale * ((digit.view(-1, 1) + digit.view(1, -1)) % size)
        scale *= size
    return table


def check_permutation_table(table: torch.Tensor) -> torch.Tensor:
    """``table`` as a long [P, P] tensor whose every row is a permutation of 0..P-1, else a ValueError."""
    table = torch.as_tensor(table, dtype=torch.long)
    if table.dim() != 2 or table.shape[0] != table.shape[1]:
        raise ValueError(f"a permutation table must be P x P, got shape {list(table.shape)}")
    size = table.shape[0]
    expected = torch.arange(size)
    if not all(torch.equal(row.sort().values, expected) for row in table):
        raise ValueError("every row of a permutation table must be a permutation of 0..P-1")
    return table


def _pairing(table: torch.Tensor) -> torch.Tensor:
    """B [P, P, P] with B[w, v, u] = 1 when latent w pairs parameter block v with data block u = A(w, v)."""
    size = table.shape[0]
    pairing = torch.zeros(size, size, size)
    pairing.scatter_(2, table.unsqueeze(-1), 1.0)
    return pairing


class PermutationMM:
    """Bernoulli mixture of F components with a latent permutation among P (Permutation EM, App. A).

    ``fit(X)`` takes complete samples X [N, P, D] of 0/1 values; ``table`` is the P x P matrix A (default: the
    cyclic group of order P). After fitting: ``mu`` [F, P, D], ``log_pi`` [F, P] and ``log_likelihoods`` (one per
    iteration, of the parameters that iteration started from, so a monotone list is what EM promises).
    """

    def __init__(
        self,
        components: int,
        transformations: int = 1,
        table: torch.Tensor | None = None,
        iterations: int = 10,
        eps: float = 0.05,
        seed: int = 0,
        chunk: int = 2048,
    ) -> None:
        if components < 1 or transformations < 1 or iterations < 1:
            raise ValueError("PermutationMM needs components, transformations and iterations >= 1")
        if not 0 < eps < 0.5:
            raise ValueError(f"eps must be in (0, 0.5), got {eps}")
        self.components, self.transformations = components, transformations
        default = cyclic_group_table([transformations])
        self.table = check_permutation_table(default if table is None else table)
        if self.table.shape[0] != transformations:
            raise ValueError(
                f"table is {self.table.shape[0]} x {self.table.shape[0]}, not P = {transformations}"
            )
        self.iterations, self.eps, self.seed, self.chunk = iterations, eps, seed, chunk
        self.mu: torch.Tensor | None = None
        self.log_pi: torch.Tensor | None = None
        self.log_likelihoods: list[float] = []

    # ------------------------------------------------------------------ E step
    def _check(self, samples: torch.Tensor) -> torch.Tensor:
        if samples.dim() != 3 or samples.shape[1] != self.transformations:
            raise ValueError(
                f"complete samples must be [N, P={self.transformations}, D], got shape {list(samples.shape)}"
            )
        return samples

    def component_log_likelihood(self, samples: torch.Tensor) -> torch.Tensor:
        """log p(x | z, w) [N, F, P] of complete samples (the data-dependent part of (1.7)), by matmuls."""
        assert self.mu is not None, "fit first"
        return self._log_likelihood(self._check(samples).float(), self.mu)

    def _log_likelihood(self, samples: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
        count, blocks, dim = samples.shape
        components = mu.shape[0]
        logit = (torch.log(mu) - torch.log1p(-mu)).reshape(components * blocks, dim)  # [(z, w'), D]
        gram = (samples.reshape(count * blocks, dim) @ logit.T).view(count, blocks, components, blocks)
        pairing = _pairing(self.table).to(samples)
        paired = torch.einsum("nuzv,wvu->nzw", gram, pairing)  # sum_{w'} G[n, A(w, w'), z, w']
        return paired + torch.log1p(-mu).sum(dim=(1, 2)).view(1, components, 1)

    def joint_log_likelihood(self, samples: torch.Tensor) -> torch.Tensor:
        """log pi_{z,w} + log p(x | z, w): the unnormalised log responsibilities [N, F, P] of (1.7)."""
        assert self.log_pi is not None, "fit first"
        return self.component_log_likelihood(samples) + self.log_pi

    def responsibilities(self, samples: torch.Tensor) -> torch.Tensor:
        """gamma [N, F, P] of (1.7): each sample's posterior over (component, permutation), summing to 1."""
        joint = self.joint_log_likelihood(samples)
        return torch.softmax(joint.flatten(1), dim=1).view_as(joint)

    def score(self, samples: torch.Tensor) -> float:
        """Total log-likelihood sum_n log sum_{z,w} pi_{z,w} p(x_n | z, w) of complete samples."""
        return float(torch.logsumexp(self.joint_log_likelihood(samples).flatten(1), dim=1).sum())

    # ------------------------------------------------------------------ fitting
    def _initial_mu(self, samples: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        picks = torch.randperm(samples.shape[0], generator=generator)[: self.components]
        if picks.numel() < self.components:  # fewer samples than components: repeat some
            extra = torch.randint(
                0, samples.shape[0], (self.components - picks.numel(),), generator=generator
            )
            picks = torch.cat([picks, extra])
        return (0.5 * samples[picks].float() + 0.25).clamp(self.eps, 1 - self.eps)

    def fit(self, samples: torch.Tensor) -> PermutationMM:
        """Permutation EM on complete samples [N, P, D]; deterministic by ``seed``."""
        samples = self._check(samples)
        if samples.shape[0] < 1:
            raise ValueError("PermutationMM.fit needs at least one sample")
        generator = torch.Generator().manual_seed(self.seed)
        mu = self._initial_mu(samples, generator)
        log_pi = torch.full(
            (self.components, self.transformations), -math.log(self.components * self.transformations)
        )
        pairing = _pairing(self.table)
        self.log_likelihoods = []
        for _ in range(self.iterations):
            mu, log_pi, total = self._em_step(samples, mu, log_pi, pairing)
            self.log_likelihoods.append(total)
        self.mu, self.log_pi = mu, log_pi
        return self

    def _em_step(
        self, samples: torch.Tensor, mu: torch.Tensor, log_pi: torch.Tensor, pairing: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, float]:
        """One E + M step over chunks of samples (gamma is never held for all N at once)."""
        count, blocks, dim = samples.shape
        numerator = torch.zeros(self.components, blocks, dim, dtype=torch.float64)
        mass = torch.zeros(self.components, blocks, dtype=torch.float64)
        total = 0.0
        for start in range(0, count, self.chunk):
            chunk = samples[start : start + self.chunk].float()
            joint = self._log_likelihood(chunk, mu) + log_pi
            norm = torch.logsumexp(joint.flatten(1), dim=1)
            total += float(norm.double().sum())
            gamma = torch.exp(joint - norm.view(-1, 1, 1))  # [n, z, w]
            mass += gamma.sum(dim=0).double()
            # H[n, z, v, u] = sum_w gamma[n, z, w] [A(w, v) = u]: then numerator[z, v] = sum_{n,u} H x_u.
            spread = torch.einsum("nzw,wvu->nzvu", gamma, pairing)
            numerator += torch.einsum("nzvu,nud->zvd", spread, chunk).double()
        weight = mass.sum(dim=1).clamp(min=1e-12).view(-1, 1, 1)  # sum_{n,w} gamma_{n,z,w}
        new_mu = (numerator / weight).float().clamp(self.eps, 1 - self.eps)
        new_log_pi = torch.log((mass / count).clamp(min=1e-300)).float()
        return new_mu, new_log_pi, total

    # ------------------------------------------------------------------ coding (A.4)
    def parts(self) -> torch.Tensor:
        """mu as F P separate parts [F P, D], index f P + w: what coding compares the untransformed patch to."""
        assert self.mu is not None, "fit first"
        return self.mu.reshape(self.components * self.transformations, -1)


def bernoulli_log_likelihood(x: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
    """log p(x | part) [N, K] of binary samples x [N, D] under K Bernoulli parts mu [K, D] (1.1), one matmul."""
    logit = torch.log(mu) - torch.log1p(-mu)
    return x.float() @ logit.T + torch.log1p(-mu).sum(dim=1)
