"""Time `perceptiongap plan`'s grid, and its fits batched (one jax.vmap) against one at a time.

Two measurements in the same run:

1. fits per second for one cell's shape (``--readers-one`` x ``--exams-one``, the paper's nine
   severities): the same simulated studies fitted one at a time and in batches of each of
   ``--batches`` sizes (one ``jax.vmap`` per batch; each shape compiled beforehand, compile times
   printed apart);
2. the performance goal of issue 15: the 3 x 3 grid (readers 5, 10, 20 x exams 240, 480, 720), one
   design, ``--reps`` replications per cell, nine severities, two analysed subgroups, wall time of
   :func:`perceptiongap.plan.grid.run_cells` (simulate, fit, judge; compile included), locally or on
   ``--cluster local:N``.

Parameters: stated effects (gamma falling linearly to -1 at 4 mm in both analysed subgroups, the
rest from the priors), or ``--from RESULTS_DIR`` (the radiologists' posterior). The machine's load
average is printed with every figure: timings on a shared machine are rough.

    python benchmarks/plan.py [--reps 100] [--batches 4,10,25] [--skip-grid] [--from RESULTS_DIR] [--cluster local:2]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def _load() -> str:
    return "load average %.2f %.2f %.2f" % os.getloadavg()


def _source(from_dir: str | None):
    from perceptiongap.plan.effects import effects_from_csv
    from perceptiongap.results.plan_stage import _source
    from perceptiongap.vocabulary import PAPER_SEVERITIES_MM

    if from_dir:
        return _source(None, from_dir, "radiologists", None, "release")
    rows = [{"subgroup": g, "severity_mm": s, "gamma": -float(s) / 4.0}
            for g in ("microcalcifications", "soft_tissue_lesions") for s in PAPER_SEVERITIES_MM]
    path = Path(tempfile.mkdtemp()) / "effects.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return effects_from_csv(path)


def batched_vs_single(source, readers: int, exams: int, batches: list[int]) -> None:
    """Fits per second, ``max(batches)`` studies fitted one at a time and in batches of each size."""
    import jax

    from perceptiongap.plan.laplace import LaplaceSettings, fit_studies
    from perceptiongap.plan.simulate import simulate_studies

    settings = LaplaceSettings()
    n_studies = max(batches)
    studies = simulate_studies(source, readers, exams, "release", np.random.SeedSequence(0).spawn(n_studies))
    keys = np.stack([np.asarray(jax.random.PRNGKey(i)) for i in range(n_studies)])

    def part(start, size):
        return {name: value[start:start + size] for name, value in studies.arrays.items()}, keys[start:start + size]

    print(f"one cell, {readers} readers x {exams} exams, {len(source.severity_mm)} severities, {n_studies} studies "
          f"({_load()})")
    rates = {}
    for size in sorted(set([1, *batches])):
        started = time.perf_counter()
        fit_studies("release", *part(0, size), settings)  # compile this batch shape
        compile_time = time.perf_counter() - started
        started = time.perf_counter()
        for start in range(0, n_studies - size + 1, size):
            fit_studies("release", *part(start, size), settings)
        fitted = (n_studies // size) * size
        elapsed = time.perf_counter() - started
        rates[size] = fitted / elapsed
        label = "one at a time" if size == 1 else f"batches of {size} (one jax.vmap each)"
        print(f"  {label}: {fitted} fits in {elapsed:.2f} s = {rates[size]:.2f} fits/s, "
              f"{rates[size] / rates[1]:.2f}x one at a time (compile {compile_time:.1f} s; {_load()})", flush=True)


def grid(source, reps: int, cluster: str | None, design: str, batch_size: int) -> None:
    from perceptiongap.plan.grid import GridSettings, grid_cells, run_cells

    settings = GridSettings(model="release", analysed=("microcalcifications", "soft_tissue_lesions"), reps=reps,
                            seed=0, batch_size=batch_size)
    cells = grid_cells([5, 10, 20], [240, 480, 720], [design])
    print(f"grid: 3 x 3 cells x {reps} reps = {9 * reps} fits, {design} design, "
          f"batches of {batch_size}, {'local' if cluster is None else cluster} ({_load()} at start)")
    started = time.perf_counter()

    def cell_done(cell, seconds):
        print(f"  {cell.name}: {seconds:.0f} s, done at {time.perf_counter() - started:.0f} s ({_load()})", flush=True)

    results = run_cells(cells, source, settings, cluster=cluster, on_done=cell_done)
    for result in results:
        power = result.rejections.groupby("criterion")["reject"].mean()
        print(f"  {result.cell.name}: mean power " + ", ".join(f"{k} {v:.2f}" for k, v in power.items()))
    total = time.perf_counter() - started
    print(f"grid total: {total:.0f} s ({total / 60:.1f} min; goal <= 20 min) = {9 * reps / total:.2f} fits/s "
          f"({_load()} at end)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=100)
    parser.add_argument("--from", dest="from_dir")
    parser.add_argument("--cluster")
    parser.add_argument("--design", default="release")
    parser.add_argument("--batches", default="4,10,25", help="batch sizes compared with one at a time")
    parser.add_argument("--readers-one", type=int, default=10)
    parser.add_argument("--exams-one", type=int, default=480)
    parser.add_argument("--batch-size", type=int, default=1, help="the grid's batch size")
    parser.add_argument("--skip-grid", action="store_true")
    args = parser.parse_args()
    source = _source(args.from_dir)
    batched_vs_single(source, args.readers_one, args.exams_one, [int(b) for b in args.batches.split(",")])
    if not args.skip_grid:
        grid(source, args.reps, args.cluster, args.design, args.batch_size)


if __name__ == "__main__":
    main()
