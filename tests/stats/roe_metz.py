"""Roe & Metz (1997) simulation of multi-reader multi-case ROC studies, with known reader-averaged AUCs.

A reader's score of a case is a sum of independent normal effects: the modality's separation mu
(diseased cases only), reader and treatment x reader effects drawn separately for diseased and
non-diseased cases (so readers differ in accuracy), case, treatment x case, reader x case effects
and pure error. For a reader j the AUC on the population of cases is
Phi((mu + d_j) / sqrt(2 s)) with s = var(C) + var(TC) + var(RC) + var(E) and d_j ~ N(0, 2 var(R) + 2 var(TR)),
so the reader-averaged AUC, the quantity Obuchowski-Rockette estimates, is
Phi(mu / sqrt(2 s + 2 var(R) + 2 var(TR))).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import norm


@dataclass(frozen=True)
class RoeMetz:
    """Variance components of the Roe-Metz model (Roe & Metz 1997's low-reader-variability kind)."""

    reader: float = 0.011
    treatment_reader: float = 0.011
    case: float = 0.3
    treatment_case: float = 0.3
    reader_case: float = 0.2
    error: float = 0.2

    def true_auc(self, mu: float) -> float:
        case_level = self.case + self.treatment_case + self.reader_case + self.error
        return float(norm.cdf(mu / np.sqrt(2 * case_level + 2 * self.reader + 2 * self.treatment_reader)))


def simulate(rng: np.random.Generator, config: RoeMetz, mus, n_studies: int, n_readers: int, n_negative: int,
             n_positive: int) -> tuple[np.ndarray, np.ndarray]:
    """truth (cases,) and scores (studies, cases, readers, modalities) of ``n_studies`` independent studies."""
    mus = np.asarray(mus, dtype=float)
    n_modalities = mus.size
    truth = np.r_[np.zeros(n_negative, int), np.ones(n_positive, int)]
    n_cases = truth.size
    s, c, r, t = n_studies, n_cases, n_readers, n_modalities
    sd = {k: np.sqrt(v) for k, v in config.__dict__.items()}
    # Reader effects, separately for non-diseased (index 0) and diseased (index 1) cases.
    reader = rng.normal(0, sd["reader"], (s, 2, r))
    treatment_reader = rng.normal(0, sd["treatment_reader"], (s, 2, r, t))
    by_class = (reader[..., None] + treatment_reader)[:, truth]  # (s, c, r, t)
    scores = (
        mus[None, None, None, :] * truth[None, :, None, None]
        + by_class
        + rng.normal(0, sd["case"], (s, c, 1, 1))
        + rng.normal(0, sd["treatment_case"], (s, c, 1, t))
        + rng.normal(0, sd["reader_case"], (s, c, r, 1))
        + rng.normal(0, sd["error"], (s, c, r, t))
    )
    return truth, scores


def simulate_model_and_readers(rng: np.random.Generator, config: RoeMetz, reader_mu: float, model_mu: float,
                               model_noise: float, n_studies: int, n_readers: int, n_negative: int, n_positive: int):
    """A fixed model and a random panel of readers on the same cases.

    The model's score is ``model_mu * truth + C + M + e``: it shares the case effect C with the readers
    (so their errors correlate) and adds its own noise of variance ``model_noise`` (M + e together).
    Returns truth (cases,), reader scores (studies, cases, readers), model scores (studies, cases),
    the readers' mean AUC and the model's AUC on the population of cases.
    """
    truth = np.r_[np.zeros(n_negative, int), np.ones(n_positive, int)]
    s, c, r = n_studies, truth.size, n_readers
    sd = {k: np.sqrt(v) for k, v in config.__dict__.items()}
    case = rng.normal(0, sd["case"], (s, c))
    reader = rng.normal(0, sd["reader"], (s, 2, r)) + rng.normal(0, sd["treatment_reader"], (s, 2, r))
    readers = (reader_mu * truth[None, :, None] + reader[:, truth] + case[:, :, None]
               + rng.normal(0, sd["treatment_case"], (s, c, 1)) + rng.normal(0, sd["reader_case"], (s, c, r))
               + rng.normal(0, sd["error"], (s, c, r)))
    model = model_mu * truth[None, :] + case + rng.normal(0, np.sqrt(model_noise), (s, c))
    model_auc = float(norm.cdf(model_mu / np.sqrt(2 * (config.case + model_noise))))
    return truth, readers, model, config.true_auc(reader_mu), model_auc


def model_mu_for_auc(config: RoeMetz, auc: float, model_noise: float) -> float:
    """The model separation whose population AUC is ``auc``."""
    return float(norm.ppf(auc) * np.sqrt(2 * (config.case + model_noise)))
