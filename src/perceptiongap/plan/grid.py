"""The grid of planned studies: its cells, running one, running many (locally or on Dask), resumably.

A cell is (readers, exams, design), and, when the grid has those axes, a severity set and a case
mix (:mod:`perceptiongap.plan.levels`; None: the parameter source's own). Its replications draw
from their own random streams, ``numpy.random.SeedSequence([seed, readers, exams, design index,
...]).spawn(reps)`` (each then split in two: the simulated study, and the JAX key of its fit's
predictive draws; the severity set and case mix, when given, enter the entropy by their values),
so a cell's result does not depend on which other cells the grid holds, the order they run in, or
where they run: a cell on a Dask worker gives the same table as in this process.

The replications of a cell are simulated, then fitted ``batch_size`` at a time with one
``jax.vmap`` (:func:`perceptiongap.plan.laplace.fit_studies`); the last batch is padded with
copies of the first study, whose fits are dropped, so every batch has one compiled shape. The
default is 1 (one study per compiled call): on the 2-core CPU, batches measured 0.5x-1.1x the fits
per second of one at a time (``benchmarks/plan.py``, several runs), and the whole grid 2x slower in
batches of 25; a single study's fit is already one compiled XLA program, so batching saves no
dispatch.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from perceptiongap.engine import TaskStore, run_tasks
from perceptiongap.plan.effects import ParameterSource
from perceptiongap.plan.laplace import LaplaceSettings
from perceptiongap.plan.levels import CaseMix, with_case_mix, with_severities
from perceptiongap.readers.design import DESIGNS

__all__ = ["Cell", "CellResult", "GridSettings", "grid_cells", "run_cell", "run_cells"]


@dataclass(frozen=True)
class Cell:
    """One planned study: ``readers`` x ``exams`` read with ``design``; the severities (mm) it shows and
    its case mix when the grid has those axes (``severity_level``, ``case_mix_level``: their positions
    on the axes, for the cell's file name), else None (the parameter source's)."""

    readers: int
    exams: int
    design: str
    severity_mm: tuple[float, ...] | None = None
    case_mix: CaseMix | None = None
    severity_level: int = 0
    case_mix_level: int = 0

    @property
    def name(self) -> str:
        name = f"readers{self.readers}_exams{self.exams}_{self.design}"
        if self.severity_mm is not None:
            name += f"_severities{self.severity_level}"
        if self.case_mix is not None:
            name += f"_prevalence{self.case_mix_level}"
        return name

    def source(self, source: ParameterSource) -> ParameterSource:
        """``source`` at this cell's severities and case mix."""
        if self.severity_mm is not None:
            source = with_severities(source, self.severity_mm)
        if self.case_mix is not None:
            source = with_case_mix(source, self.case_mix)
        return source


@dataclass(frozen=True)
class GridSettings:
    """How every cell is run: the model fitted, the analysed subgroups, replications, seed, batch size."""

    model: str
    analysed: tuple[str, ...]
    reps: int
    seed: int
    batch_size: int = 1
    laplace: LaplaceSettings = field(default_factory=LaplaceSettings)


@dataclass(frozen=True)
class CellResult:
    """``rejections``: a row per (rep, criterion, subgroup, severity) (:func:`~perceptiongap.plan.power.rejections`);
    ``gamma_sd``: a row per (rep, subgroup, severity): the posterior sd of gamma and whether the fit converged."""

    cell: Cell
    rejections: pd.DataFrame
    gamma_sd: pd.DataFrame


def grid_cells(readers: Sequence[int], exams: Sequence[int], designs: Sequence[str],
               severity_sets: Sequence[Sequence[float]] | None = None,
               case_mixes: Sequence[CaseMix] | None = None) -> list[Cell]:
    """Every (severity set, case mix, readers, exams, design), in that order (None: that axis is absent)."""
    severity_axis = [(0, None)] if severity_sets is None else [
        (k, tuple(float(s) for s in values)) for k, values in enumerate(severity_sets)]
    mix_axis = [(0, None)] if case_mixes is None else [(k, tuple(mix)) for k, mix in enumerate(case_mixes)]
    return [Cell(int(r), int(e), str(d), severity_mm=severities, case_mix=mix, severity_level=k, case_mix_level=j)
            for (k, severities), (j, mix), r, e, d in itertools.product(severity_axis, mix_axis, readers, exams,
                                                                         designs)]


def _level_entropy(value) -> list[int]:
    """A grid level's values as seed entropy (empty for an absent axis): the same level, the same streams."""
    if value is None:
        return []
    return [int.from_bytes(hashlib.sha256(json.dumps(value).encode()).digest()[:8], "little")]


def _rep_seeds(settings: GridSettings, cell: Cell) -> tuple[list, list]:
    root = np.random.SeedSequence([settings.seed, cell.readers, cell.exams, DESIGNS.index(cell.design),
                                   *_level_entropy(cell.severity_mm), *_level_entropy(cell.case_mix)])
    pairs = [rep.spawn(2) for rep in root.spawn(settings.reps)]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def run_cell(cell: Cell, source: ParameterSource, settings: GridSettings) -> CellResult:
    """Simulate and fit the ``settings.reps`` replications of ``cell``; their criteria and sds."""
    import jax

    from perceptiongap.plan.laplace import fit_studies
    from perceptiongap.plan.power import rejections
    from perceptiongap.plan.simulate import simulate_studies

    source = cell.source(source)
    study_seeds, key_seeds = _rep_seeds(settings, cell)
    batch = max(1, min(settings.batch_size, settings.reps))
    columns = [source.subgroups.index(g) for g in settings.analysed]
    rejection_frames, sd_frames = [], []
    for start in range(0, settings.reps, batch):
        chosen = list(range(start, min(start + batch, settings.reps)))
        padded = chosen + [chosen[0]] * (batch - len(chosen))
        studies = simulate_studies(source, cell.readers, cell.exams, cell.design, [study_seeds[i] for i in padded])
        keys = np.stack([np.asarray(jax.random.PRNGKey(int(key_seeds[i].generate_state(1)[0]))) for i in padded])
        fits = fit_studies(settings.model, studies.arrays, keys, settings.laplace)
        keep = slice(0, len(chosen))
        fits = type(fits)(**{name: None if value is None else value[keep] for name, value in vars(fits).items()})
        arrays = {name: value[keep] for name, value in studies.arrays.items()}
        rows = rejections(fits, arrays, source.subgroups, settings.analysed, source.severity_mm)
        rows["rep"] += start
        rejection_frames.append(rows)
        rep, s, g = np.meshgrid(np.arange(len(chosen)), np.arange(1, len(source.severity_mm)),
                                np.arange(len(columns)), indexing="ij")
        sd_frames.append(pd.DataFrame({
            "rep": rep.ravel() + start, "subgroup": np.asarray(settings.analysed)[g.ravel()],
            "severity_mm": np.asarray(source.severity_mm)[s.ravel()],
            "gamma_sd": fits.gamma_sd[:, :, columns][rep, s, g].ravel(),
            "converged": fits.converged[rep.ravel()],
        }))
    return CellResult(cell, pd.concat(rejection_frames, ignore_index=True), pd.concat(sd_frames, ignore_index=True))


class _CellTask:
    """Picklable :func:`run_cell` bound to a source and settings (one Dask task per cell)."""

    def __init__(self, source: ParameterSource, settings: GridSettings):
        self.source, self.settings = source, settings

    def __call__(self, cell: Cell) -> CellResult:
        return run_cell(cell, self.source, self.settings)


def run_cells(cells: Sequence[Cell], source: ParameterSource, settings: GridSettings, *,
              cluster: str | None = None, store: TaskStore | None = None,
              on_done: Callable[[Cell, float | None], None] | None = None) -> list[CellResult | None]:
    """Run ``cells`` through the engine (:func:`perceptiongap.engine.run_tasks`): here, one after
    another, or on Dask (``cluster``: ``local:N`` or a scheduler address), one task per cell. With
    a ``store``, cells already on disk are skipped (None in the list) and each new one is saved as
    it finishes. Results in the order of ``cells``."""
    return run_tasks(list(cells), _CellTask(source, settings), store=store, cluster=cluster, on_done=on_done)
