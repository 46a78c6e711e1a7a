"""The log marginal likelihood (evidence) of a model by bridge sampling on its posterior draws.

The paper chose its parameterisation by marginal likelihood. Bridge sampling (Meng & Wong 1996;
the iterative scheme as in Gronau et al. 2017, "A tutorial on bridge sampling") estimates
Z = integral of p(D, theta) d theta from draws of the posterior and of a proposal g:

1. the first half of each chain fits g; the second half (N1 draws) enters the estimate;
2. N2 = N1 draws from g;
3. with l = log p(D, theta) - log g(theta) at both sets of draws, iterate
   r <- mean_g[e^l / (s1 e^l + s2 r)] / mean_post[1 / (s1 e^l + s2 r)],  s_i = N_i / (N1 + N2),
   until log r changes by less than ``tolerance``; log Z = log r.

The proposal is a Gaussian with the draws' mean and a covariance of factor-analysis form (a few
factors plus a diagonal; scikit-learn's ``FactorAnalysis``), which exists even when there are more
parameters than draws (the release's model has ~1,500); with fewer parameters than a quarter of
the draws it is the draws' full covariance. The error is the approximate relative mean-squared
error of Z (Fruehwirth-Schnatter 2004), the posterior term with the effective sample size of its
draws (ArviZ), which for small values is the standard error of log Z.

Everything is NumPy/SciPy/scikit-learn; the log density is any function of a batch of
unconstrained parameter vectors (with the log-Jacobian of any constraint included).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.special import logsumexp

__all__ = ["Evidence", "GaussianProposal", "bridge_sampling", "fit_proposal"]

#: Factors of the proposal's covariance when there are too many parameters for a full covariance.
DEFAULT_FACTORS = 20


@dataclass(frozen=True)
class Evidence:
    """A bridge-sampling estimate: log Z, its approximate standard error, and the iterations it took."""

    log_marginal_likelihood: float
    error: float
    iterations: int


@dataclass(frozen=True)
class GaussianProposal:
    """N(mean, factors' factors + diag(noise)), or N(mean, covariance) when ``covariance`` is given."""

    mean: np.ndarray  # (dim,)
    factors: np.ndarray | None = None  # (k, dim)
    noise: np.ndarray | None = None  # (dim,)
    covariance: np.ndarray | None = None  # (dim, dim)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        dim = self.mean.shape[0]
        if self.covariance is not None:
            return rng.multivariate_normal(self.mean, self.covariance, size=n, method="cholesky")
        z = rng.standard_normal((n, self.factors.shape[0]))
        return self.mean + z @ self.factors + np.sqrt(self.noise) * rng.standard_normal((n, dim))

    def log_density(self, x: np.ndarray) -> np.ndarray:
        """log g(x) for x (n, dim)."""
        from scipy import stats

        if self.covariance is not None:
            return stats.multivariate_normal(self.mean, self.covariance).logpdf(x)
        # Woodbury: (D + F'F)^-1 = D^-1 - D^-1 F' (I + F D^-1 F')^-1 F D^-1, with D diagonal.
        centred = x - self.mean
        scaled = centred / self.noise  # D^-1 (x - m)
        inner = np.eye(self.factors.shape[0]) + (self.factors / self.noise) @ self.factors.T
        chol = np.linalg.cholesky(inner)
        projected = np.linalg.solve(chol, self.factors @ scaled.T)  # (k, n)
        quadratic = np.sum(centred * scaled, axis=1) - np.sum(projected**2, axis=0)
        log_det = np.sum(np.log(self.noise)) + 2.0 * np.sum(np.log(np.diag(chol)))
        return -0.5 * (quadratic + log_det + x.shape[1] * math.log(2.0 * math.pi))


def fit_proposal(draws: np.ndarray, *, factors: int = DEFAULT_FACTORS, seed: int = 0) -> GaussianProposal:
    """The Gaussian proposal of ``draws`` (n, dim): full covariance if dim <= n / 4, else factor analysis."""
    n, dim = draws.shape
    mean = draws.mean(axis=0)
    if dim <= n // 4:
        return GaussianProposal(mean=mean, covariance=np.cov(draws, rowvar=False))
    from sklearn.decomposition import FactorAnalysis

    analysis = FactorAnalysis(n_components=min(factors, n - 1), random_state=seed).fit(draws)
    return GaussianProposal(mean=mean, factors=analysis.components_, noise=analysis.noise_variance_)


def _log_mean_exp(values: np.ndarray) -> float:
    return float(logsumexp(values) - math.log(values.size))


def bridge_sampling(
    log_density: Callable[[np.ndarray], np.ndarray],
    draws: np.ndarray,
    *,
    rng: np.random.Generator,
    factors: int = DEFAULT_FACTORS,
    tolerance: float = 1e-10,
    max_iterations: int = 1_000,
) -> Evidence:
    """Bridge-sampling estimate of log Z from posterior ``draws`` (chain, draw, dim).

    ``log_density(thetas)`` maps unconstrained parameter vectors (n, dim) to the unnormalised
    log posterior (n,), log p(D, theta) including any log-Jacobian. ``rng`` draws the proposal.
    """
    import arviz as az

    draws = np.asarray(draws, dtype=np.float64)
    if draws.ndim != 3:
        raise ValueError(f"draws must have shape (chain, draw, dim), got {draws.shape}")
    n_chains, n_draws, dim = draws.shape
    half = n_draws // 2
    if half < 2:
        raise ValueError("bridge sampling needs at least 4 draws per chain")
    proposal = fit_proposal(draws[:, :half].reshape(-1, dim), factors=factors, seed=int(rng.integers(2**31)))
    posterior = draws[:, half:].reshape(-1, dim)
    n1 = posterior.shape[0]
    n2 = n1
    proposed = proposal.sample(rng, n2)
    l1 = np.asarray(log_density(posterior), dtype=np.float64) - proposal.log_density(posterior)
    l2 = np.asarray(log_density(proposed), dtype=np.float64) - proposal.log_density(proposed)
    if not np.all(np.isfinite(l1)):
        raise ValueError("the log density is not finite at every posterior draw")
    l2 = np.where(np.isfinite(l2), l2, -np.inf)  # a proposal draw outside the support has weight 0
    shift = float(np.median(l1))
    l1, l2 = l1 - shift, l2 - shift
    log_s1, log_s2 = math.log(n1 / (n1 + n2)), math.log(n2 / (n1 + n2))

    log_r, iterations = 0.0, 0
    for iterations in range(1, max_iterations + 1):
        numerator = l2 - np.logaddexp(log_s1 + l2, log_s2 + log_r)
        denominator = -np.logaddexp(log_s1 + l1, log_s2 + log_r)
        updated = _log_mean_exp(numerator) - _log_mean_exp(denominator)
        converged = abs(updated - log_r) < tolerance
        log_r = updated
        if converged:
            break

    # Relative mean-squared error of Z (Fruehwirth-Schnatter 2004), posterior term by its ESS.
    f1 = np.exp(-np.logaddexp(log_s1 + l1 - log_r, log_s2))  # at the posterior draws
    f2 = np.exp(l2 - log_r - np.logaddexp(log_s1 + l2 - log_r, log_s2))  # at the proposal draws
    ess = float(az.ess(f1.reshape(n_chains, -1)))
    relative_mse = f2.var() / (n2 * f2.mean() ** 2) + f1.var() / (max(ess, 1.0) * f1.mean() ** 2)
    return Evidence(log_marginal_likelihood=log_r + shift, error=float(math.sqrt(relative_mse)),
                    iterations=iterations)
