"""The statistics' figures draw the numbers of their tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from perceptiongap.stats.figures import accuracy_figure, error_consistency_figure


def _series(figure):
    """label -> list of (x, y) of every errorbar series, from the figure's artists."""
    found = {}
    column_titles = {}  # a panel column is titled in its top row
    for axis in figure.axes:
        if axis.get_title():
            column_titles[axis.get_subplotspec().colspan.start] = axis.get_title()
    for axis in figure.axes:
        title = column_titles[axis.get_subplotspec().colspan.start]
        for container in axis.containers:
            line = container.lines[0]
            found.setdefault((title, axis.get_ylabel(), container.get_label()), []).append(
                (line.get_xdata(), line.get_ydata()))
    return found


@pytest.mark.slow  # the report's figure style comes with the report package, which imports JAX
def test_accuracy_figure_draws_group_means_per_subgroup_and_statistic():
    rows = []
    for group, kind, point in (("radiologists", "human", "reader_decision"), ("cnn", "machine", "threshold_0.5"),
                               ("cnn", "machine", "readers_mean_specificity")):
        for k, severity in enumerate((0.0, 1.0, 4.0)):
            for subgroup in ("microcalcifications", "all"):
                rows.append({"observer_group": group, "observer_kind": kind, "scheme": "entire", "annotator": "",
                             "severity_mm": severity, "subgroup": subgroup, "operating_point": point,
                             "n_observers": 3, "sensitivity_mean": 0.9 - 0.2 * k - (point == "threshold_0.5") * 0.5,
                             "sensitivity_sd": 0.05, "specificity_mean": 0.8, "specificity_sd": 0.02,
                             "auc_mean": np.nan if kind == "human" else 0.85 - 0.1 * k, "auc_sd": 0.01})
    figure = accuracy_figure(pd.DataFrame(rows))
    series = _series(figure)
    (x, y), = series[("microcalcifications", "sensitivity", "cnn")]
    np.testing.assert_allclose(y, [0.9, 0.7, 0.5])  # the readers' operating point, not 0.5
    assert ("all", "AUC (empirical)", "cnn") in series
    assert ("all", "AUC (empirical)", "radiologists") not in series  # no score, no AUC
    assert [a.get_title() for a in figure.axes[:2]] == ["microcalcifications", "all"]


def test_error_consistency_figure_draws_kappa_with_its_interval(tmp_path):
    summary = pd.DataFrame({
        "scheme": "entire", "severity_mm": [0.0, 0.0, 4.0, 4.0], "subgroup": "all",
        "pair_kind": ["human-human", "human-network", "human-human", "human-network"], "n_pairs": 3,
        "n_trials_mean": 10.0, "c_obs_mean": 0.8, "c_exp_mean": 0.7, "kappa_mean": [0.3, 0.2, 0.1, 0.15],
        "kappa_sd": 0.1, "kappa_low": [0.1, 0.1, -0.1, 0.05], "kappa_high": [0.5, 0.3, 0.3, 0.25]})
    figure = error_consistency_figure(summary)
    (x, y), = _series(figure)[("all", "error consistency (Cohen's kappa)", "human-human")]
    np.testing.assert_allclose(y, [0.3, 0.1])
    from perceptiongap.report.figures import save_figure  # the one helper that writes every figure

    paths = save_figure(figure, tmp_path / "figures", "error_consistency")
    assert [p.name for p in paths] == ["error_consistency.png", "error_consistency.svg"]
    assert all(p.stat().st_size > 1000 for p in paths)
