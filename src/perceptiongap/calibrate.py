"""Dirichlet calibration of network outputs (METHOD §4), binary case.

For two classes Dirichlet calibration is a logistic regression on the features ``log p`` and
``log(1 - p)`` of the predicted malignancy probability ``p`` (Kull et al., NeurIPS 2019). The L2
strength is chosen by an internal stratified K-fold cross-validation that minimises the classwise
expected calibration error of the out-of-fold predictions. The penalty pulls the map towards the
identity (strong regularisation = leave the network's probabilities as they are; see
:class:`DirichletCalibrator` for why not towards zero). All (C, fold) regressions are solved at once
by Newton's method: with three parameters that is more than 10x faster than 170 separate
scikit-learn fits per network. :class:`DirichletCalibrator` follows the scikit-learn estimator
conventions (``fit``, ``predict_proba``, ``get_params``).

:func:`calibrate_observations` applies it to the study data model: one calibration map per
network (observer), fitted on validation Observations joined with their Cases labels
(``malignant`` = 1, ``benign`` and ``nonbiopsied`` = 0) and applied to test Observations.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import expit
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.model_selection import StratifiedKFold
from threadpoolctl import threadpool_limits

from perceptiongap.errors import InputError

__all__ = [
    "CALIBRATION_KEYS",
    "DEFAULT_CS",
    "SHRINK_TARGETS",
    "CalibrationRun",
    "DirichletCalibrator",
    "calibrate_observations",
    "classwise_ece",
    "fit_logistic_l2",
    "labels_for",
    "plot_reliability",
    "reliability_curve",
    "reliability_panels",
    "write_calibration",
]

#: Centres of the L2 penalty on (weight of log p, weight of log(1 - p), intercept).
SHRINK_TARGETS: dict[str, np.ndarray] = {"identity": np.array([1.0, -1.0, 0.0]), "zero": np.zeros(3)}

#: The L2 strengths tried by default (scikit-learn's ``C`` = 1 / strength), strongest first.
DEFAULT_CS: tuple[float, ...] = tuple(float(c) for c in np.logspace(-4, 4, 17))


def classwise_ece(y_true: np.ndarray, proba: np.ndarray, n_bins: int = 15) -> float:
    """Classwise expected calibration error (Kull et al. 2019) with equal-width bins.

    ``y_true``: shape (n,), class indices 0..k-1. ``proba``: shape (n, k) of class probabilities,
    or shape (n,) of the probability of class 1 in the binary case. For each class j the
    probabilities ``proba[:, j]`` are put in ``n_bins`` equal-width bins on [0, 1]; the class's
    error is ``sum_b |B_b| / n * |freq_b(y == j) - mean_b(proba[:, j])|``; the result is the mean
    over classes.
    """
    y_true = np.asarray(y_true)
    proba = np.asarray(proba, dtype=float)
    if proba.ndim == 1:
        proba = np.column_stack([1.0 - proba, proba])
    n, k = proba.shape
    if y_true.shape != (n,):
        raise ValueError(f"y_true has shape {y_true.shape}, expected ({n},)")
    # Bin index per (sample, class); a probability of exactly 1 belongs to the last bin.
    bins = np.minimum((proba * n_bins).astype(int), n_bins - 1)
    flat = bins + n_bins * np.arange(k)  # one block of bins per class
    hits = (y_true[:, None] == np.arange(k)).astype(float)
    hit_sum = np.bincount(flat.ravel(), weights=hits.ravel(), minlength=k * n_bins)
    proba_sum = np.bincount(flat.ravel(), weights=proba.ravel(), minlength=k * n_bins)
    # |sum(hits) - sum(proba)| / n is |B|/n * |freq - mean proba| without dividing by empty bins.
    return float(np.abs(hit_sum - proba_sum).sum() / (n * k))


def _log_features(p: np.ndarray, eps: float) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=float).ravel(), eps, 1.0 - eps)
    return np.column_stack([np.log(p), np.log1p(-p)])


def fit_logistic_l2(
    features: np.ndarray,
    y: np.ndarray,
    C: np.ndarray,
    weights: np.ndarray,
    *,
    center: np.ndarray | None = None,
    penalise_intercept: bool = False,
    tol: float = 1e-12,
) -> np.ndarray:
    """Many L2-penalised logistic regressions at once, by damped Newton steps.

    Fit m minimises ``C[m] * sum_i weights[m, i] * logloss_i + |beta - center|^2 / 2`` over
    ``beta`` = (the d weights, then the intercept). With ``center`` = 0 and the intercept not
    penalised this is scikit-learn's ``LogisticRegression(C=C[m])``. ``features``: (n, d); ``y``:
    (n,) in {0, 1}; ``C``: (m,); ``weights``: (m, n), e.g. 0/1 masks of cross-validation folds;
    ``center``: (d + 1,). Returns (m, d + 1). Vectorised over fits because the calibration's
    cross-validation needs ``len(Cs) * n_folds`` of them.
    """
    design = np.column_stack([features, np.ones(len(y))])  # (n, d + 1)
    m, d1 = len(C), design.shape[1]
    center = np.zeros(d1) if center is None else np.asarray(center, dtype=float)
    penalty = np.ones(d1)
    if not penalise_intercept:
        penalty[-1] = 0.0
    C = np.asarray(C, dtype=float)[:, None]
    sign = 2.0 * y - 1.0
    outer = (design[:, :, None] * design[:, None, :]).reshape(len(y), d1 * d1)  # (n, (d+1)^2)

    def objective(beta: np.ndarray) -> np.ndarray:
        margin = (beta @ design.T) * sign  # (m, n)
        # log sigmoid(margin), written out: scipy's log_expit is several times slower here.
        log_likelihood = np.minimum(margin, 0.0) - np.log1p(np.exp(-np.abs(margin)))
        return -C[:, 0] * (weights * log_likelihood).sum(axis=1) + 0.5 * (penalty * (beta - center) ** 2).sum(axis=1)

    beta = np.tile(center, (m, 1))
    value = objective(beta)
    for _ in range(100):
        prob = expit(beta @ design.T)  # (m, n)
        gradient = C * ((weights * (prob - y)) @ design) + penalty * (beta - center)
        curvature = C * weights * prob * (1.0 - prob)
        hessian = (curvature @ outer).reshape(m, d1, d1) + np.diag(penalty + 1e-12)
        step = np.linalg.solve(hessian, gradient[:, :, None])[:, :, 0]
        # Newton decrement: half of it estimates how far the objective is above its minimum.
        active = 0.5 * np.einsum("md,md->m", gradient, step) > tol * (1.0 + np.abs(value))
        if not active.any():
            break
        # Halve the step of every fit whose objective would rise (far from the optimum Newton can
        # overshoot); a fit that cannot improve stays where it is.
        scale = active.astype(float)
        for _ in range(40):
            new_value = objective(beta - scale[:, None] * step)
            worse = new_value > value
            if not worse.any():
                break
            scale = np.where(worse, scale / 2, scale)
        scale = np.where(worse, 0.0, scale)
        beta = beta - scale[:, None] * step
        value = np.where(worse, value, new_value)
    return beta


class DirichletCalibrator(ClassifierMixin, BaseEstimator):
    """Binary Dirichlet calibration: logistic regression on ``[log p, log(1 - p)]``.

    Parameters
    ----------
    Cs
        Inverse L2 strengths to choose from (as scikit-learn's ``C``: the penalty is
        ``|beta - center|^2 / 2`` against ``C`` times the summed log-loss).
    shrink_to
        What strong regularisation pulls the map towards. ``"identity"`` (the default): the map
        that leaves ``p`` unchanged (weights 1 and -1, intercept 0, all three penalised), so the
        strongest penalty means "trust the network as it is". ``"zero"``: scikit-learn's
        ``LogisticRegression`` (weights towards 0, intercept free), whose strongest penalty gives
        the constant base-rate predictor. That constant has a classwise ECE near 0, so on a small
        validation set the cross-validation can choose it and erase all discrimination; hence
        the default.
    n_folds
        Folds of the internal stratified cross-validation that picks ``C``.
    n_bins
        Equal-width bins of the classwise ECE minimised by the cross-validation.
    eps
        Probabilities are clipped to ``[eps, 1 - eps]`` before taking logs.
    seed
        Seed of the fold shuffle.

    Attributes after :meth:`fit`: ``C_`` (the chosen C), ``cv_ece_`` (out-of-fold classwise ECE per
    C, in the order of ``Cs``), ``coef_`` (shape (2,): weights of log p and log(1 - p)),
    ``intercept_`` (float), ``classes_`` (``[0, 1]``).
    """

    def __init__(
        self,
        Cs: Sequence[float] = DEFAULT_CS,
        shrink_to: str = "identity",
        n_folds: int = 10,
        n_bins: int = 15,
        eps: float = 1e-7,
        seed: int = 0,
    ):
        self.Cs = Cs
        self.shrink_to = shrink_to
        self.n_folds = n_folds
        self.n_bins = n_bins
        self.eps = eps
        self.seed = seed

    def fit(self, p: np.ndarray, y: np.ndarray) -> DirichletCalibrator:
        """Fit on predicted probabilities ``p`` (shape (n,)) and binary labels ``y`` (shape (n,))."""
        if self.shrink_to not in SHRINK_TARGETS:
            raise ValueError(f"shrink_to must be one of {', '.join(SHRINK_TARGETS)}, got {self.shrink_to!r}")
        identity = self.shrink_to == "identity"
        regression = dict(center=SHRINK_TARGETS[self.shrink_to], penalise_intercept=identity)
        features = _log_features(p, self.eps)
        y = np.asarray(y).ravel().astype(int)
        if features.shape[0] != y.shape[0]:
            raise ValueError(f"p has {features.shape[0]} values but y has {y.shape[0]}")
        if not np.isin(y, (0, 1)).all():
            raise ValueError("y must be 0 or 1")
        counts = np.bincount(y, minlength=2)
        if counts.min() < self.n_folds:
            raise ValueError(
                f"need at least {self.n_folds} examples of each class for {self.n_folds}-fold "
                f"cross-validation, got {counts[0]} negatives and {counts[1]} positives"
            )
        # The matrices are thin (n x 3): BLAS threads only add contention, badly so on a busy machine.
        with threadpool_limits(1, user_api="blas"):
            return self._fit(features, y, Cs=np.asarray(self.Cs, dtype=float), **regression)

    def _fit(self, features: np.ndarray, y: np.ndarray, *, Cs: np.ndarray, **regression) -> DirichletCalibrator:
        folds = StratifiedKFold(self.n_folds, shuffle=True, random_state=self.seed)
        fold_of = np.empty(y.shape[0], dtype=int)
        for fold, (_, held_out) in enumerate(folds.split(features, y)):
            fold_of[held_out] = fold
        # One fit per (C, fold), all at once: rows of `train` are the folds' training masks.
        train = (fold_of[None, :] != np.arange(self.n_folds)[:, None]).astype(float)  # (folds, n)
        beta = fit_logistic_l2(features, y, np.repeat(Cs, self.n_folds), np.tile(train, (len(Cs), 1)), **regression)
        beta = beta.reshape(len(Cs), self.n_folds, -1)
        logits = np.einsum("cfd,nd->cfn", beta[..., :-1], features) + beta[..., -1:]
        # Each example's out-of-fold logit comes from the fit that did not see it.
        out_of_fold = expit(logits[:, fold_of, np.arange(y.shape[0])])  # (Cs, n)
        self.cv_ece_ = np.array([classwise_ece(y, p_c, self.n_bins) for p_c in out_of_fold])
        # np.argmin keeps the first minimum: the strongest regularisation among ties.
        self.C_ = float(Cs[int(np.argmin(self.cv_ece_))])
        beta = fit_logistic_l2(features, y, np.array([self.C_]), np.ones((1, y.shape[0])), **regression)[0]
        self.coef_ = beta[:-1].copy()
        self.intercept_ = float(beta[-1])
        self.classes_ = np.array([0, 1])
        return self

    def decision_function(self, p: np.ndarray) -> np.ndarray:
        """Calibrated logit, shape (n,)."""
        return _log_features(p, self.eps) @ self.coef_ + self.intercept_

    def predict_proba(self, p: np.ndarray) -> np.ndarray:
        """Calibrated class probabilities, shape (n, 2); column 1 is the malignancy probability."""
        positive = expit(self.decision_function(p))
        return np.column_stack([1.0 - positive, positive])

    def predict(self, p: np.ndarray) -> np.ndarray:
        """Calibrated class (0 or 1) by the 0.5 threshold, shape (n,)."""
        return (self.decision_function(p) > 0).astype(int)


# ---------------------------------------------------------------------------------------------
# Calibration of Observations tables


CALIBRATION_KEYS = ("observer", "observer_group")


def labels_for(observations: pd.DataFrame, cases: pd.DataFrame, source: str) -> np.ndarray:
    """Binary label (malignant = 1) of each observation's breast; InputError if a breast is unknown."""
    label = pd.Series(cases["label"].to_numpy(), index=pd.MultiIndex.from_frame(cases[["exam", "breast"]]))
    keys = pd.MultiIndex.from_frame(observations[["exam", "breast"]])
    found = keys.isin(label.index)
    if not found.all():
        row = int(np.flatnonzero(~found)[0])
        raise InputError(
            f"row {row + 1}: exam {observations['exam'].iloc[row]!r} breast "
            f"{observations['breast'].iloc[row]!r} has no label in the cases file",
            source=source,
        )
    return (label.reindex(keys).to_numpy() == "malignant").astype(int)


def calibrate_observations(
    validation: pd.DataFrame,
    validation_cases: pd.DataFrame,
    test: pd.DataFrame,
    *,
    by: str = "observer",
    unperturbed_only: bool = False,
    seed: int = 0,
    validation_source: str = "validation",
    test_source: str = "test",
    **calibrator_params,
) -> tuple[pd.DataFrame, dict[tuple[str, ...], DirichletCalibrator]]:
    """Fit one calibration map per ``by`` unit on ``validation`` and apply it to ``test``.

    ``by`` is ``"observer"`` (one map per trained network: the default, since each network is
    miscalibrated in its own way) or ``"observer_group"`` (one map shared by the group). A unit is
    identified together with its group, so two groups may reuse observer names. Only machine rows
    are calibrated; human rows of ``test`` pass through unchanged and those of ``validation`` are
    ignored. With ``unperturbed_only`` the maps are fitted on the severity-0, entire-image rows only.
    Returns the calibrated test Observations (same rows and order) and the fitted maps by unit.
    """
    if by not in CALIBRATION_KEYS:
        raise ValueError(f"by must be one of {CALIBRATION_KEYS}, got {by!r}")
    unit = ["observer_group", "observer"] if by == "observer" else ["observer_group"]
    fit_rows = validation[validation["observer_kind"] == "machine"]
    if unperturbed_only:
        fit_rows = fit_rows[(fit_rows["severity_mm"] == 0) & (fit_rows["scheme"] == "entire")]
    if fit_rows.empty:
        raise InputError("no machine observations to fit a calibration map on", source=validation_source)
    y = labels_for(fit_rows, validation_cases, validation_source)

    maps: dict[tuple[str, ...], DirichletCalibrator] = {}
    for key, index in fit_rows.groupby(unit, sort=True).indices.items():
        key = key if isinstance(key, tuple) else (key,)
        name = ", ".join(f"{column}={value!r}" for column, value in zip(unit, key))
        try:
            maps[key] = DirichletCalibrator(seed=seed, **calibrator_params).fit(
                fit_rows["prediction"].to_numpy()[index], y[index]
            )
        except ValueError as error:
            raise InputError(f"cannot calibrate {name}: {error}", source=validation_source) from error

    calibrated = test.copy()
    machine = (test["observer_kind"] == "machine").to_numpy()
    for key, index in test[machine].groupby(unit, sort=True).indices.items():
        key = key if isinstance(key, tuple) else (key,)
        if key not in maps:
            name = ", ".join(f"{column}={value!r}" for column, value in zip(unit, key))
            raise InputError(f"{name} has no validation observations to calibrate with", source=test_source)
        rows = np.flatnonzero(machine)[index]
        column = calibrated.columns.get_loc("prediction")
        calibrated.iloc[rows, column] = maps[key].predict_proba(test["prediction"].to_numpy()[rows])[:, 1]
    return calibrated, maps


@dataclass(frozen=True)
class CalibrationRun:
    """What :func:`write_calibration` wrote: the calibrated test Observations, the maps by unit, the figure files."""

    calibrated: pd.DataFrame
    maps: dict[tuple[str, ...], DirichletCalibrator]
    figures: list[Path] = field(default_factory=list)


def write_calibration(
    validation: str | Path,
    validation_cases: str | Path,
    test: str | Path,
    out: str | Path,
    *,
    cases: str | Path | None = None,
    figure: str | Path | None = None,
    by: str = "observer",
    unperturbed_only: bool = False,
    seed: int = 0,
    force: bool = False,
) -> CalibrationRun:
    """``perceptiongap calibrate`` as a function: calibrate the Observations file ``test`` with maps fitted on
    ``validation`` (labels from ``validation_cases``, see :func:`calibrate_observations`) and write them to
    ``out`` (``.parquet`` or ``.csv``); with ``figure`` (and the test labels ``cases``) also the reliability
    diagram as ``figure``'s ``.png`` and ``.svg``. One writer at a time holds ``out`` and the figure; an
    existing file is refused unless ``force``; everything is checked before anything is written.
    """
    from perceptiongap.files import check_writable
    from perceptiongap.locks import output_lock
    from perceptiongap.study import read_cases, read_observations, write_table

    if by not in CALIBRATION_KEYS:
        raise InputError(f"{by!r} is not 'observer' or 'observer_group'", source="by")
    if figure is not None and cases is None:
        raise InputError("a reliability diagram needs the test labels: pass `cases`", source="figure")
    out = Path(out)
    targets = [out] + ([Path(figure).with_suffix(".png"), Path(figure).with_suffix(".svg")] if figure else [])
    for target in targets:
        if target.is_dir():
            raise InputError("is a folder; give the file to write", source=target)
    with contextlib.ExitStack() as held:
        held.enter_context(output_lock(out, what="calibrated observations"))
        if figure is not None:
            held.enter_context(output_lock(targets[1], what="reliability diagram"))
        for target in targets:
            if target.exists() and not force:
                raise InputError("exists; pass `force` to overwrite it", source=target)
        for folder in dict.fromkeys(target.parent for target in targets):
            check_writable(folder)
        test_table = read_observations(test)
        test_labels = read_cases(cases) if cases is not None else None
        calibrated, maps = calibrate_observations(
            read_observations(validation), read_cases(validation_cases), test_table, by=by,
            unperturbed_only=unperturbed_only, seed=seed, validation_source=str(validation), test_source=str(test),
        )
        panels = None
        if figure is not None:  # checked before the table is written
            panels = reliability_panels(test_table, calibrated, test_labels, test_source=str(test),
                                        cases_source=str(cases))
        write_table(calibrated, out)
        written = plot_reliability(panels, figure) if panels is not None else []
    return CalibrationRun(calibrated, maps, written)


# ---------------------------------------------------------------------------------------------
# Reliability diagram


def reliability_curve(y_true: np.ndarray, p: np.ndarray, n_bins: int = 15) -> tuple[np.ndarray, ...]:
    """Per non-empty equal-width bin of ``p``: mean predicted probability, observed frequency of
    class 1 and number of predictions (three arrays of the same length)."""
    p = np.asarray(p, dtype=float)
    bins = np.minimum((p * n_bins).astype(int), n_bins - 1)
    count = np.bincount(bins, minlength=n_bins)
    used = count > 0
    mean_p = np.bincount(bins, weights=p, minlength=n_bins)[used] / count[used]
    frequency = np.bincount(bins, weights=np.asarray(y_true, dtype=float), minlength=n_bins)[used] / count[used]
    return mean_p, frequency, count[used]


def reliability_panels(
    test: pd.DataFrame,
    calibrated: pd.DataFrame,
    cases: pd.DataFrame,
    *,
    test_source: str = "test",
    cases_source: str = "cases",
) -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]:
    """The panels of :func:`plot_reliability` for a calibration of ``test`` into ``calibrated``:
    one per machine observer group, ``(title, y, p_before, p_after)``, on its unperturbed
    entire-image rows (all its rows when it has none). ``cases`` give the labels; a breast without
    one is an InputError naming ``cases_source``."""
    from perceptiongap.study import check_observations_have_cases

    check_observations_have_cases(test, cases, source=test_source)
    machine = (test["observer_kind"] == "machine").to_numpy()
    clean = machine & (test["severity_mm"] == 0).to_numpy() & (test["scheme"] == "entire").to_numpy()
    rows = clean if clean.any() else machine
    which = "unperturbed test images" if clean.any() else "all test predictions"
    panels = []
    for group in sorted(test.loc[rows, "observer_group"].unique()):
        index = np.flatnonzero(rows & (test["observer_group"] == group).to_numpy())
        y = labels_for(test.iloc[index], cases, cases_source)
        panels.append((f"{group} ({which})", y, test["prediction"].to_numpy()[index],
                       calibrated["prediction"].to_numpy()[index]))
    return panels


def plot_reliability(
    panels: Sequence[tuple[str, np.ndarray, np.ndarray, np.ndarray]], path: str | Path, n_bins: int = 15
) -> list[Path]:
    """Reliability diagram before and after calibration, one panel per ``(title, y, p_before,
    p_after)``, classwise ECE in the legends. Writes ``path`` as PNG and its ``.svg`` sibling
    (atomically); returns both paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from perceptiongap.files import atomic_path

    columns = min(len(panels), 3)
    rows = -(-len(panels) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 4.2 * rows), squeeze=False)
    for axis, (title, y, before, after) in zip(axes.ravel(), panels):
        axis.plot([0, 1], [0, 1], color="0.6", linestyle=":", linewidth=1, label="perfect calibration")
        curves = ((before, "before", dict(color="0.45", marker="s")), (after, "after", dict(color="C0", marker="o")))
        for p, name, style in curves:
            mean_p, frequency, _ = reliability_curve(y, p, n_bins)
            ece = classwise_ece(y, p, n_bins)
            axis.plot(mean_p, frequency, linewidth=1.5, markersize=4, label=f"{name} (classwise ECE {ece:.3f})",
                      **style)
        axis.set(xlim=(0, 1), ylim=(0, 1), aspect="equal", title=title,
                 xlabel="predicted probability of malignancy", ylabel="observed frequency of malignancy")
        axis.legend(loc="upper left", fontsize=8, frameon=False)
    for axis in axes.ravel()[len(panels):]:
        axis.set_visible(False)
    figure.tight_layout()
    path = Path(path)
    written = []
    for target in (path.with_suffix(".png"), path.with_suffix(".svg")):
        with atomic_path(target) as tmp:
            figure.savefig(tmp, format=target.suffix[1:], dpi=150)
        written.append(target)
    plt.close(figure)
    return written
