"""The ``plan`` stage: simulated power of planned reader studies, into its own output folder.

    OUT/plan.json                    the settings (a resumed run must match them)
    OUT/cells/<cell>.csv             each finished cell's rejections (kept: a killed run resumes)
    OUT/cells/<cell>.sd.csv          each finished cell's posterior sds of gamma
    OUT/power.csv                    readers, exams, design, criterion, subgroup, severity_mm, power, power_se, reps,
                                     severity_set, prevalence (the grid's severity set and case mix)
    OUT/design_comparison.csv        posterior sd of gamma, balanced vs release, ratio and its MC error
    OUT/figures/power_curves.png|svg power against readers
    OUT/plan.html                    a self-contained page
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path

import pandas as pd

from perceptiongap.engine import TaskStore
from perceptiongap.errors import InputError
from perceptiongap.files import atomic_path, atomic_write_text, check_out_dir
from perceptiongap.locks import output_lock

__all__ = ["POWER_COLUMNS", "plan", "plan_study"]

POWER_COLUMNS = ("readers", "exams", "design", "criterion", "subgroup", "severity_mm", "power", "power_se", "reps",
                 "severity_set", "prevalence")
#: The grid's keys in power.csv and design_comparison.csv, beyond criterion, subgroup and severity.
GRID_KEYS = ["severity_set", "prevalence", "readers", "exams", "design"]
DEFAULT_ANALYSED = ("microcalcifications", "soft_tissue_lesions")


def _posterior_file(results_dir: Path, observer_group: str, inference: str | None, model: str = "release") -> Path:
    if not results_dir.is_dir():
        raise InputError("not a results folder", source=results_dir)
    # posteriors/<model>/<inference>/<group>/, or (release only) the older <inference>/<group>/.
    found = {*results_dir.glob(f"posteriors/{model}/*/{observer_group}/seed*.nc")}
    if model == "release":
        found |= {path for path in results_dir.glob(f"posteriors/*/{observer_group}/seed*.nc")
                  if path.parent.parent.parent.name == "posteriors"}
    found = sorted(found)
    if inference is not None:
        found = [path for path in found if path.parent.parent.name == inference]
    if not found:
        raise InputError(f"no {model} posterior of observer group {observer_group!r}"
                         + (f" fitted with {inference}" if inference else "") + " under posteriors/",
                         source=results_dir)
    methods = sorted({path.parent.parent.name for path in found})
    if len(methods) > 1:
        preferred = [m for m in ("nuts", "advi", "stan-advi") if m in methods]
        found = [path for path in found if path.parent.parent.name == preferred[0]]
    return found[0]


def _source(effects, from_dir, observer_group, inference, model):
    from perceptiongap.plan.effects import effects_from_csv, effects_from_posterior

    if (effects is None) == (from_dir is None):
        raise InputError("give exactly one of effects (a CSV) or from_dir (a results folder)", source="effects")
    if effects is not None:
        return effects_from_csv(effects, model=model)
    if model not in ("release", "label_specific"):
        raise InputError(f"--from draws from a release or label_specific posterior; {model!r} needs --effects",
                         source="model")
    import arviz as az

    path = _posterior_file(Path(from_dir), observer_group, inference, model)
    try:
        posterior = az.from_netcdf(path)
    except (OSError, ValueError) as error:
        raise InputError(f"cannot read posterior: {error}", source=path) from None
    return effects_from_posterior(posterior, source=str(path), model=model)


def _check_grid(readers, exams, designs, reps, batch_size, analysed, subgroups, model):
    from perceptiongap.plan.laplace import PLAN_MODELS
    from perceptiongap.readers.design import DESIGNS

    if model not in PLAN_MODELS:
        raise InputError(f"must be one of {', '.join(PLAN_MODELS)}, got {model!r}", source="model")
    for name, values, least in (("readers", readers, 2), ("exams", exams, 1)):
        if not values or min(values) < least:
            raise InputError(f"needs values >= {least}, got {list(values)}", source=name)
    for design in designs:
        if design not in DESIGNS:
            raise InputError(f"must be among {', '.join(DESIGNS)}, got {design!r}", source="designs")
    if reps < 2:
        raise InputError(f"must be >= 2, got {reps}", source="reps")
    if batch_size < 1:
        raise InputError(f"must be >= 1, got {batch_size}", source="batch_size")
    for subgroup in analysed:
        if subgroup not in subgroups:
            raise InputError(f"subgroup {subgroup!r} is not in the case mix ({', '.join(subgroups)})",
                             source="subgroups")


def plan(
    out: str | Path,
    *,
    effects: str | Path | None = None,
    from_dir: str | Path | None = None,
    observer_group: str = "radiologists",
    inference: str | None = None,
    model: str = "release",
    readers: Sequence[int] = (5, 10, 20),
    exams: Sequence[int] = (240, 480, 720),
    designs: Sequence[str] = ("balanced", "release"),
    subgroups: Sequence[str] = DEFAULT_ANALYSED,
    severity_sets: Sequence[Sequence[float]] | None = None,
    case_mixes: Sequence[Mapping[str, tuple[float, float | None]]] | None = None,
    reps: int = 100,
    seed: int = 0,
    batch_size: int = 1,
    curve_severity: float | None = None,
    cluster: str | None = None,
    force: bool = False,
    resume: bool = False,
    on_progress: Callable[[str, int, int | None], None] | None = None,
    on_message: Callable[[str], None] | None = None,
) -> Path:
    """Simulate, fit and judge ``reps`` studies per grid cell; write the tables, curves and page.

    Parameters come from ``effects`` (a CSV: subgroup, severity_mm, gamma[, delta]) or from the
    posterior of ``observer_group`` (of ``model``) in the results folder ``from_dir``. Optional grid
    axes: ``severity_sets`` (each a list of severities in mm, 0 first) and ``case_mixes`` (each
    {subgroup: (share of breasts, malignant share or None)}; see :mod:`perceptiongap.plan.levels`).
    Returns ``out``.
    """
    from perceptiongap.plan.grid import GridSettings, grid_cells, run_cells
    from perceptiongap.plan.levels import with_case_mix, with_severities

    out = Path(out)
    readers, exams, designs = tuple(int(r) for r in readers), tuple(int(e) for e in exams), tuple(designs)
    check_out_dir(out, force=force, resume=resume)
    source = _source(effects, from_dir, observer_group, inference, model)
    analysed = tuple(subgroups)
    _check_grid(readers, exams, designs, reps, batch_size, analysed, source.subgroups, model)
    if severity_sets is not None:
        severity_sets = _distinct([tuple(float(s) for s in values) for values in severity_sets], "severities")
        for values in severity_sets:
            with_severities(source, values)  # refuses a set the source cannot give, before any work
    if case_mixes is not None:
        case_mixes = _distinct([tuple((str(g), float(share), None if malignant is None else float(malignant))
                                      for g, (share, malignant) in dict(mix).items()) for mix in case_mixes],
                               "prevalence")
        for mix in case_mixes:
            with_case_mix(source, mix)
    sets = [source.severity_mm] if severity_sets is None else severity_sets
    _curve_severity(curve_severity, sets)
    settings = GridSettings(model=model, analysed=analysed, reps=reps, seed=seed, batch_size=batch_size)
    record = {
        "command": "plan", "parameters": source.origin, "model": model, "readers": list(readers),
        "exams": list(exams), "designs": list(designs), "subgroups": list(analysed), "reps": reps, "seed": seed,
        "severity_mm": list(source.severity_mm), "batch_size": batch_size,
        "severity_sets": None if severity_sets is None else [list(values) for values in severity_sets],
        "prevalence": None if case_mixes is None else [[list(entry) for entry in mix] for mix in case_mixes],
        "inference": {"method": "laplace-marginal", **asdict(settings.laplace)},
    }
    cells = grid_cells(readers, exams, designs, severity_sets, case_mixes)
    with output_lock(out, what="plan folder"):
        cells_dir = out / "cells"
        record_path = out / "plan.json"
        if resume and record_path.exists():
            earlier = json.loads(record_path.read_text())
            changed = [key for key in record if key != "batch_size" and earlier.get(key) != record[key]]
            if changed:
                raise InputError(f"the folder was planned with other settings ({', '.join(changed)}); use force to "
                                 "start afresh", source="resume")
        if force and cells_dir.is_dir():
            for path in cells_dir.glob("*.csv"):
                path.unlink()
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(record_path, json.dumps(record, indent=2) + "\n")
        pending = [cell for cell in cells if not (cells_dir / f"{cell.name}.csv").exists()]
        if on_message and len(pending) < len(cells):
            on_message(f"resuming: {len(cells) - len(pending)} of {len(cells)} cells already done")
        done = 0
        if on_progress:
            on_progress("grid cells", 0, len(cells))

        def cell_done(cell, seconds):
            nonlocal done
            done += 1
            if on_progress:
                on_progress("grid cells", done, len(cells))

        store = TaskStore(path=lambda cell: cells_dir / f"{cell.name}.csv", save=_save_cell)
        run_cells(cells, source, settings, cluster=cluster, store=store, on_done=cell_done)
        _write_outputs(out, cells, source, analysed, sets, curve_severity, record)
    return out


def _distinct(levels: list, option: str) -> list:
    if not levels:
        raise InputError("expected at least one level", source=option)
    if len(set(levels)) < len(levels):
        raise InputError("a level is listed twice", source=option)
    return levels


#: The stage under the name ``perceptiongap.plan_study`` (``perceptiongap.plan`` is the package).
plan_study = plan


def _read_cells(cells_dir: Path, cells, suffix: str, source, analysed) -> pd.DataFrame:
    from perceptiongap.plan.levels import case_mix_label, severity_set_label

    frames = []
    for cell in cells:
        frame = pd.read_csv(cells_dir / f"{cell.name}{suffix}.csv")
        cell_source = cell.source(source)
        frames.append(frame.assign(readers=cell.readers, exams=cell.exams, design=cell.design,
                                   severity_set=severity_set_label(cell_source.severity_mm),
                                   prevalence=case_mix_label(cell_source, analysed)))
    return pd.concat(frames, ignore_index=True)


def _save_cell(result, path: Path) -> None:
    """The cell's sds, then its rejections (``path``, written last: its presence marks the cell done)."""
    with atomic_path(path.with_name(f"{result.cell.name}.sd.csv")) as tmp:
        result.gamma_sd.to_csv(tmp, index=False)
    with atomic_path(path) as tmp:
        result.rejections.to_csv(tmp, index=False)


def _curve_severity(curve_severity: float | None, severity_sets: Sequence[Sequence[float]]) -> float:
    """The curves' severity: in every severity set (default: the largest perturbed one they share)."""
    shared = sorted(set.intersection(*({round(float(s), 9) for s in values[1:]} for values in severity_sets)))
    if curve_severity is None:
        if not shared:
            raise InputError("the severity sets share no perturbed severity for the power curves",
                             source="severities")
        return shared[-1]
    severity = float(curve_severity)
    if not any(abs(severity - s) < 1e-9 for s in shared):
        raise InputError(f"{severity:g} is not a perturbed severity of the plan "
                         f"({', '.join(f'{s:g}' for s in shared)})", source="curve_severity")
    return severity


def _write_outputs(out: Path, cells, source, analysed, severity_sets, curve_severity, record) -> None:
    from perceptiongap.plan.figures import design_comparison, plan_page, power_curves
    from perceptiongap.plan.power import power_table

    rows = _read_cells(out / "cells", cells, "", source, analysed)
    power = power_table(rows, GRID_KEYS).loc[:, list(POWER_COLUMNS)]
    power = power.sort_values(["criterion", "subgroup", "severity_mm", "severity_set", "prevalence", "design",
                               "exams", "readers"], kind="stable").reset_index(drop=True)
    with atomic_path(out / "power.csv") as tmp:
        power.to_csv(tmp, index=False)
    comparison = design_comparison(_read_cells(out / "cells", cells, ".sd", source, analysed))
    with atomic_path(out / "design_comparison.csv") as tmp:
        comparison.to_csv(tmp, index=False)
    figure = power_curves(power, _curve_severity(curve_severity, severity_sets))
    for suffix in ("png", "svg"):
        with atomic_path(out / "figures" / f"power_curves.{suffix}") as tmp:
            figure.savefig(tmp, format=suffix, dpi=150)
    settings = {key: value for key, value in record.items() if key != "command"}
    atomic_write_text(out / "plan.html", plan_page(power, comparison, figure, settings))
