"""Plan a reader study before running it: simulated power for readers x exams x design.

One module per concept: ``effects`` (a study's parameters, stated in a CSV or drawn from a fitted
posterior), ``levels`` (grid axes beyond readers x exams x design: severity sets and case
mixes), ``simulate`` (studies from the model, with the designs of ``study design``),
``laplace`` (many studies of one shape fitted at once), ``power`` (the criteria and power with
its Monte Carlo error), ``grid`` (the cells, run locally or on Dask, resumable through the stage),
``figures`` (power curves, the design comparison, the page). The stage is
:func:`perceptiongap.results.plan_stage.plan` (``perceptiongap plan``).
"""

from perceptiongap.plan.effects import ParameterSource, effects_from_csv, effects_from_posterior
from perceptiongap.plan.grid import Cell, GridSettings, grid_cells, run_cell, run_cells
from perceptiongap.plan.levels import with_case_mix, with_severities
from perceptiongap.plan.power import CRITERIA, power_table, rejections

__all__ = [
    "CRITERIA",
    "Cell",
    "GridSettings",
    "ParameterSource",
    "effects_from_csv",
    "effects_from_posterior",
    "grid_cells",
    "power_table",
    "rejections",
    "run_cell",
    "run_cells",
    "with_case_mix",
    "with_severities",
]
