"""Known answers for the whole chain (simulate, fit, judge): the nominal level under zero effects,
power that rises with readers and exams, one table per seed, the same table on a Dask cluster."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from perceptiongap.plan.effects import effects_from_csv
from perceptiongap.plan.grid import Cell, GridSettings, grid_cells, run_cell, run_cells
from perceptiongap.plan.power import ALPHA, power_table
from tests.plan.helpers import ANALYSED, write_effects

pytestmark = pytest.mark.slow


def _settings(reps, seed=0, model="release", batch_size=50):
    return GridSettings(model=model, analysed=ANALYSED, reps=reps, seed=seed, batch_size=batch_size)


def _rate(rows, criterion):
    chosen = rows[rows.criterion == criterion]
    return chosen["reject"].mean(), math.sqrt(ALPHA * (1 - ALPHA) / len(chosen))


def test_zero_effects_reject_at_the_nominal_rate(tmp_path):
    """200 studies x 2 subgroups x 2 severities under gamma = 0. P(gamma > 0) < 0.05 is a Bayesian
    one-sided criterion: near 5 % when the data outweigh the N(0, 1) prior (as here). The KS drop test
    compares the same readers' statistics at two severities as if they were independent samples: they
    are strongly positively correlated, so it is conservative by construction (well below 5 %)."""
    source = effects_from_csv(write_effects(tmp_path / "zero.csv"))
    result = run_cell(Cell(6, 120, "balanced"), source, _settings(200, seed=1))
    assert result.gamma_sd["converged"].all()
    rate, se = _rate(result.rejections, "confidence_drop")
    assert abs(rate - ALPHA) < 3 * se, rate
    rate, se = _rate(result.rejections, "separability_drop")
    assert rate < ALPHA - 2 * se, rate


def test_label_specific_delta_criterion_does_not_exceed_its_level_under_zero_effects(tmp_path):
    """P(delta < 0) > 0.95 with few malignant breasts per subgroup: the prior shrinks delta to 0,
    so the criterion is conservative; it must not exceed 5 %."""
    source = effects_from_csv(write_effects(tmp_path / "zero.csv", delta=(0.0, 0.0, 0.0)), model="label_specific")
    result = run_cell(Cell(6, 120, "balanced"), source, _settings(100, seed=2, model="label_specific"))
    rate, se = _rate(result.rejections, "separability_effect")
    assert rate < ALPHA + 2 * se, rate


def test_power_rises_with_readers_and_exams(tmp_path):
    source = effects_from_csv(write_effects(tmp_path / "e.csv", gamma=(0.0, -0.8, -1.6)))
    cells = [Cell(3, 60, "release"), Cell(12, 60, "release"), Cell(3, 240, "release")]
    rows = pd.concat([run_cell(cell, source, _settings(40, seed=3, batch_size=40)).rejections
                      .assign(readers=cell.readers, exams=cell.exams) for cell in cells])
    power = power_table(rows[rows.criterion == "confidence_drop"], ["readers", "exams"])
    power = power.groupby(["readers", "exams"])["power"].mean()  # over both subgroups and severities
    assert power[(12, 60)] > power[(3, 60)] + 0.15
    assert power[(3, 240)] > power[(3, 60)] + 0.15


def test_same_seed_same_table_other_seed_other_table(tmp_path):
    source = effects_from_csv(write_effects(tmp_path / "e.csv", gamma=(0.0, -0.5, -1.0)))
    cell = Cell(4, 40, "balanced")
    first, second = (run_cell(cell, source, _settings(6, seed=7, batch_size=4)) for _ in range(2))
    pd.testing.assert_frame_equal(first.rejections, second.rejections)
    pd.testing.assert_frame_equal(first.gamma_sd, second.gamma_sd)
    other = run_cell(cell, source, _settings(6, seed=8, batch_size=4))
    assert not np.allclose(other.rejections["statistic"], first.rejections["statistic"], equal_nan=True)


def test_a_grid_on_a_two_worker_local_cluster_equals_the_local_run(tmp_path):
    source = effects_from_csv(write_effects(tmp_path / "e.csv", gamma=(0.0, -0.5, -1.0)))
    cells = grid_cells([3, 4], [30], ["release"])
    settings = _settings(4, seed=9, batch_size=4)
    local = {result.cell: result for result in run_cells(cells, source, settings)}
    remote = {result.cell: result for result in run_cells(cells, source, settings, cluster="local:2")}
    assert set(remote) == set(cells) == set(local)
    for cell in cells:
        pd.testing.assert_frame_equal(remote[cell].rejections, local[cell].rejections)
        pd.testing.assert_frame_equal(remote[cell].gamma_sd, local[cell].gamma_sd)


def test_power_rises_with_the_prevalence_of_the_tested_subgroup(tmp_path):
    """The same effect in both subgroups; microcalcifications make up 5 % or 40 % of the breasts.
    More of its breasts, more information about its gamma: its power rises; soft tissue's share
    shrinks a little (the rest is scaled down), and its power must not rise with it."""
    source = effects_from_csv(write_effects(tmp_path / "e.csv", gamma=(0.0, -0.8, -1.6)))
    mixes = [(("microcalcifications", 0.05, None),), (("microcalcifications", 0.4, None),)]
    cells = grid_cells([3], [60], ["release"], case_mixes=mixes)
    assert [cell.name for cell in cells] == ["readers3_exams60_release_prevalence0",
                                             "readers3_exams60_release_prevalence1"]
    rows = pd.concat([run_cell(cell, source, _settings(40, seed=5, batch_size=40)).rejections
                      .assign(share=cell.case_mix[0][1]) for cell in cells])
    power = rows[rows.criterion == "confidence_drop"].groupby(["subgroup", "share"])["reject"].mean()
    assert power[("microcalcifications", 0.4)] > power[("microcalcifications", 0.05)] + 0.2, power
    assert power[("soft_tissue_lesions", 0.4)] <= power[("soft_tissue_lesions", 0.05)] + 0.1, power


def test_a_severity_set_level_is_simulated_and_judged_at_its_own_severities(tmp_path):
    source = effects_from_csv(write_effects(tmp_path / "e.csv", gamma=(0.0, -0.8, -1.6)))
    (cell,) = grid_cells([3], [30], ["balanced"], severity_sets=[(0.0, 0.5, 2.0)])
    result = run_cell(cell, source, _settings(2, seed=6, batch_size=2))
    assert cell.name == "readers3_exams30_balanced_severities0"
    assert set(result.rejections["severity_mm"]) == {0.5, 2.0}
    assert set(result.gamma_sd["severity_mm"]) == {0.5, 2.0}
