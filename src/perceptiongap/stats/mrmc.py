"""Multi-reader multi-case ROC analysis: Obuchowski-Rockette with Hillis's degrees of freedom.

The figure of merit is each reader's empirical AUC (:mod:`perceptiongap.stats.roc`). The
Obuchowski-Rockette (OR) model treats readers and cases as random: reader AUCs vary around the
modality's mean AUC (reader variance), and share case-sampling errors whose covariances are
estimated by jackknifing cases (Obuchowski & Rockette 1995; Hillis, Obuchowski, Schartz & Berbaum
2005). Jackknife covariance of AUCs ``a`` and ``b``: ``(c - 1) / c * sum_k (a_(k) - a_(.)) (b_(k) - b_(.))``
over the c leave-one-case-out values. Averaged over the reader x modality AUCs they give ``Var``
(same AUC), ``Cov1`` (same reader, other modality), ``Cov2`` (other reader, same modality) and
``Cov3`` (other reader, other modality).

- Two modalities read by the same readers on the same cases (:func:`dual_modality_orh`): the
  difference of the modalities' mean AUCs, with ``MS(T*R)`` the treatment x reader mean square,
  standard error ``sqrt(2/r * (MS(T*R) + r max(Cov2 - Cov3, 0)))`` and Hillis's (2007) denominator
  degrees of freedom ``(MS(T*R) + r max(Cov2 - Cov3, 0))^2 / (MS(T*R)^2 / (r - 1))``.
- A model against a panel of readers on the same cases (:func:`model_vs_readers_orh`): the model
  is a fixed reader; each reader's difference ``AUC_model - AUC_reader`` is analysed as one
  modality (single-treatment OR, as RJafroc's "1T-RRRC" analysis of CAD against radiologists):
  standard error ``sqrt((MS(R) + r max(Cov2, 0)) / r)`` with ``MS(R)`` the reader mean square and
  ``Cov2`` the mean jackknife covariance of two readers' differences, df
  ``(MS(R) + r max(Cov2, 0))^2 / (MS(R)^2 / (r - 1))``.

Both give the effect, its confidence interval (t with Hillis's df), the t statistic (F = t^2 for
two modalities) and p: two-sided for "no difference", or with ``margin`` one-sided for
non-inferiority (H0: effect <= -margin).

These formulas need a fully crossed design: every reader reads every case in every modality. The
paper's reader study is not (each reader sees each exam at one severity); such data are refused
with the reason. U-statistics (Gallas 2006; FDA's iMRMC) handle arbitrary designs: write the data
with ``perceptiongap export imrmc``.

Tested against the published OR-DBM MRMC 2.51 analysis of the Van Dyke et al. (1993) data (when the
ratings are supplied) and against Roe-Metz simulations with known truth (coverage, type I error).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

from perceptiongap.errors import InputError
from perceptiongap.stats.roc import auc_jackknife

__all__ = [
    "NOT_CROSSED_HINT",
    "ORHResult",
    "crossed_scores",
    "describe_orh",
    "dual_modality_orh",
    "jackknife_covariance",
    "model_vs_readers_orh",
    "observers_named",
    "or_covariance_terms",
    "orh_from_observations",
    "orh_dual_from_components",
    "orh_single_from_components",
]

#: What to do with a design that OR-Hillis cannot analyse.
NOT_CROSSED_HINT = ("Obuchowski-Rockette needs every reader to read every case in every compared modality; "
                    "the paper's design (each reader sees each exam at one severity) is not crossed. "
                    "iMRMC's U-statistics handle such designs: write them with `perceptiongap export imrmc`")


@dataclass(frozen=True)
class ORHResult:
    """An Obuchowski-Rockette-Hillis comparison of AUCs.

    ``effect``: modality 2 minus modality 1 (dual), or model minus the readers' mean (model vs
    readers); ``ci_low``/``ci_high`` its ``confidence`` interval; ``statistic``: t (F = t^2 for two
    modalities, see :attr:`f_statistic`); ``df``: Hillis's denominator degrees of freedom;
    ``p_value``: two-sided for ``margin=None``, else one-sided for non-inferiority
    (H0: effect <= -margin). The OR terms are kept for reporting and sample-size planning.
    """

    effect: float
    ci_low: float
    ci_high: float
    df: float
    statistic: float
    p_value: float
    std_error: float
    confidence: float
    margin: float | None
    alternative: str  # "two-sided" or "non-inferiority"
    n_readers: int
    n_positive: int
    n_negative: int
    mean_aucs: tuple[float, ...]  # per modality (dual) or (readers' mean, model)
    reader_aucs: np.ndarray = field(repr=False)  # (readers, 2) dual; (readers,) model vs readers
    model_auc: float | None
    mean_square: float  # MS(T*R) (dual) or MS(R) of the differences (model vs readers)
    var_error: float
    cov1: float | None
    cov2: float
    cov3: float | None

    @property
    def f_statistic(self) -> float:
        """F = t^2 (one numerator degree of freedom)."""
        return float(self.statistic) ** 2


def _check_truth(truth) -> np.ndarray:
    truth = np.asarray(truth)
    if truth.ndim != 1:
        raise InputError(f"must have shape (cases,), got {truth.shape}", source="truth")
    if not np.isin(truth, (0, 1)).all():
        raise InputError("must hold 0 (non-diseased) or 1 (diseased) for every case", source="truth")
    n1 = int((truth == 1).sum())
    n0 = truth.size - n1
    if n1 < 2 or n0 < 2:
        raise InputError(f"needs at least 2 diseased and 2 non-diseased cases, got {n1} and {n0}", source="truth")
    return truth.astype(bool)


def _check_scores(scores, shape: tuple, name: str) -> np.ndarray:
    scores = np.asarray(scores, dtype=float)
    if scores.shape[: len(shape)] != shape[: len(shape)] or scores.ndim != len(shape):
        expected = "(" + ", ".join(str(s) if s is not None else "?" for s in shape) + ")"
        raise InputError(f"must have shape {expected}, got {scores.shape}", source=name)
    if np.isnan(scores).any():
        raise InputError(f"has missing readings (NaN). {NOT_CROSSED_HINT}", source=name)
    if not np.isfinite(scores).all():
        raise InputError("must be finite", source=name)
    return scores


def _check_shape(scores: np.ndarray, n_cases: int, name: str, ndim: int, last: int | None = None) -> None:
    if scores.ndim != ndim or scores.shape[0] != n_cases or (last is not None and scores.shape[-1] != last):
        wanted = {1: "(cases,)", 2: "(cases, readers)", 3: "(cases, readers, 2)"}[ndim]
        raise InputError(f"must have shape {wanted} with {n_cases} cases, got {scores.shape}", source=name)


def jackknife_covariance(loo: np.ndarray) -> np.ndarray:
    """Jackknife covariance matrix of figures of merit from their leave-one-case-out values.

    ``loo`` (..., cases, k) -> (..., k, k): ``(c - 1) / c * sum_k (x_(k) - x_(.)) (y_(k) - y_(.))``.
    """
    n_cases = loo.shape[-2]
    centred = loo - loo.mean(axis=-2, keepdims=True)
    return (n_cases - 1) / n_cases * np.einsum("...ka,...kb->...ab", centred, centred)


def or_covariance_terms(covariance: np.ndarray, n_readers: int, n_modalities: int) -> dict[str, np.ndarray]:
    """OR's Var, Cov1, Cov2, Cov3 from the covariance of AUCs ordered (modality, reader) -> index m*r + j.

    ``covariance`` (..., t*r, t*r). Cov1/Cov3 are NaN for one modality.
    """
    modality = np.repeat(np.arange(n_modalities), n_readers)
    reader = np.tile(np.arange(n_readers), n_modalities)
    same_m = modality[:, None] == modality[None, :]
    same_r = reader[:, None] == reader[None, :]

    def mean_over(mask):
        if not mask.any():
            return np.full(covariance.shape[:-2], np.nan)
        return covariance[..., mask].mean(axis=-1)

    return {
        "var": mean_over(same_m & same_r),
        "cov1": mean_over(~same_m & same_r),
        "cov2": mean_over(same_m & ~same_r),
        "cov3": mean_over(~same_m & ~same_r),
    }


def _t_results(effect, std_error, df, margin, confidence):
    """CI, t statistic and p-value (two-sided, or one-sided non-inferiority with ``margin``); arrays welcome."""
    quantile = scipy_stats.t.ppf(0.5 + confidence / 2.0, df)
    ci_low, ci_high = effect - quantile * std_error, effect + quantile * std_error
    if margin is None:
        statistic = effect / std_error
        p_value = 2.0 * scipy_stats.t.sf(np.abs(statistic), df)
    else:
        statistic = (effect + margin) / std_error
        p_value = scipy_stats.t.sf(statistic, df)
    return ci_low, ci_high, statistic, p_value


def _hillis(mean_square, extra, n_readers, scale):
    """Standard error sqrt(scale * (MS + extra)) and Hillis's df (MS + extra)^2 / (MS^2 / (r - 1)); NaN if undefined."""
    denominator = mean_square + extra
    defined = np.isfinite(denominator) & (denominator > 0) & (mean_square > 0)
    safe_denominator = np.where(defined, denominator, 1.0)
    safe_mean_square = np.where(defined, mean_square, 1.0)
    std_error = np.where(defined, np.sqrt(scale * safe_denominator), np.nan)
    df = np.where(defined, safe_denominator**2 / (safe_mean_square**2 / (n_readers - 1)), np.nan)
    return std_error, df


def orh_dual_from_components(reader_aucs, cov2, cov3, *, confidence: float = 0.95,
                             margin: float | None = None) -> dict[str, np.ndarray]:
    """The OR-Hillis test of two modalities from reader AUCs (..., readers, 2) and Cov2, Cov3 (...,).

    Vectorised over leading axes (e.g. simulated studies). Returns arrays: effect (modality 2 -
    modality 1), std_error, df, ci_low, ci_high, statistic (t), p_value, mean_square (MS(T*R));
    NaN where MS(T*R) is 0 (Hillis's df undefined).
    """
    aucs = np.asarray(reader_aucs, dtype=float)
    n_readers = aucs.shape[-2]
    # With two modalities MS(T*R) is half the variance of the readers' differences.
    differences = aucs[..., 1] - aucs[..., 0]
    ms_tr = np.var(differences, axis=-1, ddof=1) / 2.0
    extra = n_readers * np.maximum(np.asarray(cov2, dtype=float) - np.asarray(cov3, dtype=float), 0.0)
    std_error, df = _hillis(ms_tr, extra, n_readers, 2.0 / n_readers)
    effect = differences.mean(axis=-1)
    ci_low, ci_high, statistic, p_value = _t_results(effect, std_error, df, margin, confidence)
    return {"effect": effect, "std_error": std_error, "df": df, "ci_low": ci_low, "ci_high": ci_high,
            "statistic": statistic, "p_value": p_value, "mean_square": ms_tr}


def orh_single_from_components(values, cov2, *, null: float = 0.0, confidence: float = 0.95,
                               margin: float | None = None) -> dict[str, np.ndarray]:
    """Single-modality OR-Hillis inference on the mean of per-reader values (..., readers) with Cov2 (...,).

    The mean's standard error is ``sqrt((MS(R) + r max(Cov2, 0)) / r)`` and its df
    ``(MS(R) + r max(Cov2, 0))^2 / (MS(R)^2 / (r - 1))`` (Hillis 2007, "ddf_H_single"); the effect
    is the mean minus ``null``. Vectorised over leading axes; NaN where MS(R) is 0.
    """
    values = np.asarray(values, dtype=float)
    n_readers = values.shape[-1]
    ms_r = np.var(values, axis=-1, ddof=1)
    extra = n_readers * np.maximum(np.asarray(cov2, dtype=float), 0.0)
    std_error, df = _hillis(ms_r, extra, n_readers, 1.0 / n_readers)
    effect = values.mean(axis=-1) - null
    ci_low, ci_high, statistic, p_value = _t_results(effect, std_error, df, margin, confidence)
    return {"effect": effect, "std_error": std_error, "df": df, "ci_low": ci_low, "ci_high": ci_high,
            "statistic": statistic, "p_value": p_value, "mean_square": ms_r}


def _scalars(core: dict, source: str, what: str) -> dict[str, float]:
    if not np.isfinite(core["df"]):
        raise InputError(f"the readers' {what} do not vary between readers (mean square 0): Hillis's degrees of "
                         "freedom are undefined", source=source)
    return {key: float(value) for key, value in core.items()}


def _check_options(confidence: float, margin: float | None) -> None:
    if not 0.0 < confidence < 1.0:
        raise InputError(f"{confidence} is not a confidence level in (0, 1)", source="confidence")
    if margin is not None and not (np.isfinite(margin) and margin >= 0):
        raise InputError(f"{margin} is not a non-inferiority margin (an AUC difference >= 0)", source="margin")


def dual_modality_orh(truth, scores, *, confidence: float = 0.95, margin: float | None = None) -> ORHResult:
    """OR-Hillis comparison of two modalities read by the same readers on the same cases.

    ``truth`` (cases,) in {0, 1}; ``scores`` (cases, readers, 2), higher = more suspicious, every
    reader on every case in both modalities (NaN is refused). ``effect`` is the mean AUC of modality
    2 minus that of modality 1. With ``margin``, p tests non-inferiority of modality 2
    (H0: effect <= -margin), one-sided.
    """
    _check_options(confidence, margin)
    truth = _check_truth(truth)
    scores = np.asarray(scores, dtype=float)
    _check_shape(scores, truth.size, "scores", 3, last=2)
    scores = _check_scores(scores, scores.shape, "scores")
    n_readers = scores.shape[1]
    if n_readers < 2:
        raise InputError("needs at least 2 readers (random readers)", source="scores")
    # (modality, reader, case): AUC index m * r + j, as or_covariance_terms expects.
    aucs, loo = auc_jackknife(truth, np.transpose(scores, (2, 1, 0)))
    covariance = jackknife_covariance(loo.reshape(2 * n_readers, -1).T)
    terms = or_covariance_terms(covariance, n_readers, 2)
    reader_aucs = aucs.T  # (readers, 2)
    core = _scalars(orh_dual_from_components(reader_aucs, terms["cov2"], terms["cov3"], confidence=confidence,
                                             margin=margin), "scores", "AUC differences between modalities")
    return ORHResult(
        effect=core["effect"], ci_low=core["ci_low"], ci_high=core["ci_high"], df=core["df"],
        statistic=core["statistic"], p_value=core["p_value"], std_error=core["std_error"], confidence=confidence,
        margin=margin, alternative="two-sided" if margin is None else "non-inferiority", n_readers=n_readers,
        n_positive=int(truth.sum()), n_negative=int((~truth).sum()),
        mean_aucs=tuple(float(a) for a in reader_aucs.mean(axis=0)), reader_aucs=reader_aucs, model_auc=None,
        mean_square=core["mean_square"], var_error=float(terms["var"]), cov1=float(terms["cov1"]),
        cov2=float(terms["cov2"]), cov3=float(terms["cov3"]),
    )


def model_vs_readers_orh(truth, model_scores, reader_scores, *, confidence: float = 0.95,
                         margin: float | None = None) -> ORHResult:
    """OR-Hillis comparison of a model (a fixed reader) with a panel of random readers on the same cases.

    ``truth`` (cases,) in {0, 1}; ``model_scores`` (cases,); ``reader_scores`` (cases, readers).
    ``effect`` = model AUC minus the readers' mean AUC. With ``margin``, p tests non-inferiority of
    the model (H0: effect <= -margin), one-sided.
    """
    _check_options(confidence, margin)
    truth = _check_truth(truth)
    model_scores = np.asarray(model_scores, dtype=float)
    reader_scores = np.asarray(reader_scores, dtype=float)
    _check_shape(model_scores, truth.size, "model_scores", 1)
    _check_shape(reader_scores, truth.size, "reader_scores", 2)
    model_scores = _check_scores(model_scores, model_scores.shape, "model_scores")
    reader_scores = _check_scores(reader_scores, reader_scores.shape, "reader_scores")
    n_readers = reader_scores.shape[1]
    if n_readers < 2:
        raise InputError("needs at least 2 readers (random readers)", source="reader_scores")
    model_auc, model_loo = auc_jackknife(truth, model_scores)
    reader_aucs, reader_loo = auc_jackknife(truth, reader_scores.T)  # (readers,), (readers, cases)
    differences = model_auc - reader_aucs
    difference_loo = model_loo[None, :] - reader_loo  # (readers, cases)
    covariance = jackknife_covariance(difference_loo.T)
    terms = or_covariance_terms(covariance, n_readers, 1)
    core = _scalars(orh_single_from_components(differences, terms["cov2"], confidence=confidence, margin=margin),
                    "reader_scores", "AUCs")
    return ORHResult(
        effect=core["effect"], ci_low=core["ci_low"], ci_high=core["ci_high"], df=core["df"],
        statistic=core["statistic"], p_value=core["p_value"], std_error=core["std_error"], confidence=confidence,
        margin=margin, alternative="two-sided" if margin is None else "non-inferiority", n_readers=n_readers,
        n_positive=int(truth.sum()), n_negative=int((~truth).sum()),
        mean_aucs=(float(reader_aucs.mean()), float(model_auc)), reader_aucs=reader_aucs, model_auc=float(model_auc),
        mean_square=core["mean_square"], var_error=float(terms["var"]), cov1=None, cov2=float(terms["cov2"]),
        cov3=None,
    )


def crossed_scores(
    observations: pd.DataFrame,
    cases: pd.DataFrame,
    *,
    observers: list[str],
    severities: list[float],
    scheme: str = "entire",
    score: str = "auto",
    subgroup: str = "all",
    source: str = "observations",
) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """(truth (cases,), scores (cases, observers, severities), breasts) of a fully crossed selection.

    Every named observer must have read every breast that any of them read, at every one of
    ``severities``, in ``scheme``; otherwise :class:`InputError` names a missing reading and says
    why (see :data:`NOT_CROSSED_HINT`). Truth: 1 for a malignant breast of ``subgroup`` (``all``,
    ``merged`` or a subgroup name), 0 for a non-malignant one; other malignant breasts are left out.
    """
    from perceptiongap.stats.breasts import analysed_subgroups, attach_cases, positive_mask, positive_sets
    from perceptiongap.stats.scores import score_source, score_values

    sets = positive_sets(analysed_subgroups(cases))
    if subgroup not in sets:
        sets = positive_sets(analysed_subgroups(cases, [subgroup]))
    rows = observations[(observations["scheme"] == scheme) & observations["observer"].isin(observers)
                        & observations["severity_mm"].isin(severities)]
    missing_observers = [o for o in observers if o not in set(rows["observer"])]
    if missing_observers:
        raise InputError(f"observer {missing_observers[0]!r} has no {scheme!r} readings at severities "
                         f"{', '.join(f'{s:g}' for s in severities)} mm", source=source)
    rows = attach_cases(rows, cases, source=source)
    keep = ~rows["malignant"].to_numpy() | positive_mask(rows["malignant"], rows["subgroup"], sets[subgroup])
    rows = rows[keep].reset_index(drop=True)
    values = np.full(len(rows), np.nan)
    for observer, positions in rows.groupby("observer", observed=True).indices.items():
        chosen = score_source(rows.iloc[positions], score)
        if chosen is None:
            raise InputError(f"observer {observer!r} has no score to rank breasts by (binary answers only; "
                             "an ROC analysis needs a probability, POM or BI-RADS)", source=source)
        values[positions] = score_values(rows.iloc[positions], chosen)
    case_codes, case_index = pd.factorize(rows["case"], sort=True)
    observer_index = {name: k for k, name in enumerate(observers)}
    severity_index = {float(s): k for k, s in enumerate(severities)}
    grid = np.full((len(case_index), len(observers), len(severities)), np.nan)
    grid[case_codes, rows["observer"].map(observer_index).to_numpy(),
         rows["severity_mm"].astype(float).map(severity_index).to_numpy()] = values
    holes = np.argwhere(np.isnan(grid))
    if holes.size:
        case, observer, severity = holes[0]
        breast = cases.iloc[int(case_index[case])]
        raise InputError(
            f"observer {observers[observer]!r} has no reading of exam {breast['exam']!r} breast "
            f"{breast['breast']!r} at severity {severities[severity]:g} mm ({int(len(holes))} such gaps). "
            + NOT_CROSSED_HINT, source=source)
    breasts = cases.iloc[np.asarray(case_index, dtype=int)].reset_index(drop=True)
    truth = (breasts["label"].astype(str) == "malignant").to_numpy().astype(int)
    return truth, grid, breasts


def observers_named(observations: pd.DataFrame, names: list[str], source: str = "--readers") -> list[str]:
    """Observer groups expanded to their observers, observers kept; unknown names are refused."""
    groups = set(observations["observer_group"].astype(str))
    known = set(observations["observer"].astype(str))
    chosen: list[str] = []
    for name in names:
        if name in groups:
            chosen += list(observations.loc[observations["observer_group"] == name, "observer"].astype(str))
        elif name in known:
            chosen.append(name)
        else:
            raise InputError(f"{name!r} is neither an observer group nor an observer", source=source)
    return list(dict.fromkeys(chosen))


def orh_from_observations(
    observations: pd.DataFrame,
    cases: pd.DataFrame,
    *,
    readers: list[str],
    severities: list[float],
    model: str | None = None,
    scheme: str = "entire",
    subgroup: str = "all",
    score: str = "auto",
    margin: float | None = None,
    source: str = "observations",
) -> ORHResult:
    """OR-Hillis on Observations: ``readers`` (groups or observers) at two ``severities`` (effect: second
    minus first), or, with ``model``, the model against the readers at one severity."""
    wanted = 1 if model else 2
    if len(severities) != wanted:
        raise InputError("give one severity with a model" if model else "give two severities to compare",
                         source="--severities")
    chosen = [r for r in observers_named(observations, readers) if r != model]
    if model is not None:
        observers_named(observations, [model], source="--model")
    everyone = chosen + ([model] if model else [])
    truth, scores, _ = crossed_scores(observations, cases, observers=everyone, severities=list(severities),
                                      scheme=scheme, score=score, subgroup=subgroup, source=source)
    if model:
        return model_vs_readers_orh(truth, scores[:, -1, 0], scores[:, :-1, 0], margin=margin)
    return dual_modality_orh(truth, scores, margin=margin)


def describe_orh(result: ORHResult) -> str:
    """A few lines for a terminal: AUCs, effect, CI, t/F, df, p."""
    if result.model_auc is not None:
        aucs = (f"model AUC {result.model_auc:.4f}, readers' mean AUC {result.mean_aucs[0]:.4f} "
                f"({result.n_readers} readers)")
        effect = "model - readers"
    else:
        aucs = (f"mean AUC {result.mean_aucs[0]:.4f} -> {result.mean_aucs[1]:.4f} ({result.n_readers} readers)")
        effect = "second - first"
    test = ("H0: no difference, two-sided" if result.margin is None
            else f"H0: difference <= -{result.margin:g} (non-inferiority), one-sided")
    return "\n".join([
        f"{aucs}; {result.n_positive} diseased and {result.n_negative} non-diseased cases",
        f"AUC difference ({effect}): {result.effect:+.4f}, {result.confidence:.0%} CI "
        f"[{result.ci_low:+.4f}, {result.ci_high:+.4f}], standard error {result.std_error:.4f}",
        f"t = {result.statistic:.3f} (F = {result.f_statistic:.3f}), Hillis df = {result.df:.2f}, "
        f"p = {result.p_value:.4g} ({test})",
        f"OR terms: Var {result.var_error:.3g}, Cov1 {result.cov1 if result.cov1 is not None else float('nan'):.3g}, "
        f"Cov2 {result.cov2:.3g}, Cov3 {result.cov3 if result.cov3 is not None else float('nan'):.3g}, "
        f"mean square {result.mean_square:.3g}",
    ])
