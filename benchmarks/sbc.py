"""Simulation-based calibration of nuts, advi and stan-advi on a small study shaped like the release.

Usage: python benchmarks/sbc.py [--reps 200] [--methods nuts,advi,stan-advi] [--cluster local:2]
                                [--compare-workers [--compare-reps N]] [--out DIR]

The study: 60 exams (120 breasts) in 3 subgroups at 5 severities (0, 0.5, 1, 2, 4 mm); a sparse
reader group (6 readers, each exam read once at a random severity, as the release's reader study)
and a dense group (3 observers, every breast at every severity). Each replication draws the
release model's parameters from their priors and binary predictions from its likelihood
(:mod:`perceptiongap.model.sbc`), fits them, and ranks the true severity effects gamma[s, g]
(s > 0: 12 per group) among 99 posterior draws. Replications alternate between the two groups.

Prints per method: replications, seconds, the chi-square p-value of uniform ranks per parameter
(10 bins), the smallest p-value Bonferroni-corrected, and the verdict (``calibrated`` unless that
is below 0.01); writes rank histograms to ``<out>/sbc_<method>.png`` and the ranks to
``<out>/<method>/rep<k>.npy`` (finished replications are kept: rerun to resume). With
``--compare-workers`` the nuts replications run first on ``local:1`` and then on ``local:2`` (into
separate folders) and the ratio is printed; with ``--compare-reps N`` only the first N
replications are timed on both (fresh folders ``compare<N>_one_worker``/``compare<N>_two_workers``),
then all replications run on ``--cluster``. ``--finished-only`` runs nothing and judges the
replications already on disk (a partial run; the count is printed). Load averages are printed at the start and end of
each run, since timings on a shared machine mean little without them. Replications run through
:func:`perceptiongap.engine.run_tasks`; a Dask worker keeps its compiled NUTS sampler between
replications of one shape.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

SEVERITIES = (0.0, 0.5, 1.0, 2.0, 4.0)
SUBGROUPS = ("microcalcifications", "soft_tissue_lesions", "nonbiopsied")
N_RANKED = 99
#: Settings per method: shorter NUTS chains than the defaults (SBC needs many fits, not long ones).
SETTINGS = {"nuts": dict(num_warmup=300, num_samples=500, num_chains=2, log_likelihood=False, evidence=False)}


def templates(seed: int = 0):
    """The two observer groups' ModelData (their observed cells; predictions are replaced per replication)."""
    from perceptiongap.model.data import ModelData

    rng = np.random.default_rng(seed)
    n_exams, n_sev = 60, len(SEVERITIES)
    n_cases = 2 * n_exams
    case_subgroup = rng.integers(0, len(SUBGROUPS), size=n_cases)
    label = np.where(case_subgroup == 2, "nonbiopsied", np.where(rng.random(n_cases) < 0.5, "malignant", "benign"))
    common = dict(case_subgroup=case_subgroup, severity_mm=SEVERITIES, subgroup_names=SUBGROUPS,
                  case_exam=tuple(np.repeat([f"exam{i:03d}" for i in range(n_exams)], 2)),
                  case_breast=tuple(np.tile(["L", "R"], n_exams)), case_label=tuple(label))
    n_readers = 6
    read_at = rng.integers(0, n_sev, size=(n_readers, n_exams))
    sparse = np.zeros((n_readers, n_sev, n_cases), dtype=bool)
    for reader in range(n_readers):
        for exam in range(n_exams):
            sparse[reader, read_at[reader, exam], 2 * exam:2 * exam + 2] = True
    dense = np.ones((3, n_sev, n_cases), dtype=bool)
    return [
        ModelData(prediction=np.zeros(sparse.shape), observed=sparse, observer_group="readers", observer_kind="human",
                  observer_names=tuple(f"reader{i}" for i in range(n_readers)), **common),
        ModelData(prediction=np.zeros(dense.shape), observed=dense, observer_group="networks",
                  observer_kind="machine", observer_names=("net0", "net1", "net2"), **common),
    ]


def replications(method: str, reps: int):
    from perceptiongap.model import SETTINGS_TYPES
    from perceptiongap.model.sbc import SBCReplication

    settings = SETTINGS_TYPES[method](**SETTINGS[method]) if method in SETTINGS else None
    groups = templates()
    return [SBCReplication(groups[k % 2], method, seed=k, settings=settings, n_ranked=N_RANKED) for k in range(reps)]


def run(method: str, reps: int, out: Path, cluster: str | None) -> tuple[np.ndarray, float]:
    from perceptiongap.engine import TaskStore, run_tasks
    from perceptiongap.files import atomic_path
    from perceptiongap.model.sbc import run_replication

    def save(ranks: np.ndarray, path: Path) -> None:
        with atomic_path(path) as partial:
            with open(partial, "wb") as handle:
                np.save(handle, ranks)

    store = TaskStore(path=lambda rep: out / method / f"rep{rep.seed}.npy", save=save, load=np.load)
    done = 0

    def progress(rep, seconds) -> None:
        nonlocal done
        done += 1
        print(f"\r{method}: {done}/{reps}", end="", file=sys.stderr, flush=True)

    start = time.perf_counter()
    print(f"{method} on {cluster}: load average at start {os.getloadavg()[0]:.1f}", file=sys.stderr)
    ranks = run_tasks(replications(method, reps), run_replication, store=store, cluster=cluster, on_done=progress)
    print(f"\n{method} on {cluster}: load average at end {os.getloadavg()[0]:.1f}", file=sys.stderr)
    return np.stack(ranks), time.perf_counter() - start


def histogram_figure(ranks: np.ndarray, counts: np.ndarray, p_values: np.ndarray, method: str, verdict: str):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    n_sev, n_sub = ranks.shape[1:]
    figure = Figure(figsize=(2.4 * n_sub, 1.8 * n_sev), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(n_sev, n_sub, squeeze=False, sharex=True)
    expected = ranks.shape[0] / counts.shape[0]
    band = [expected - 2 * np.sqrt(expected), expected + 2 * np.sqrt(expected)]
    for s in range(n_sev):
        for g in range(n_sub):
            axis = axes[s, g]
            axis.bar(np.arange(counts.shape[0]), counts[:, s, g], color="#4477AA", width=0.9)
            axis.axhspan(*band, color="#999999", alpha=0.3)
            axis.set_title(f"γ[{SEVERITIES[s + 1]:g} mm, {SUBGROUPS[g][:14]}] p={p_values[s, g]:.3f}", fontsize=7)
    figure.suptitle(f"SBC of {method}: rank histograms over {ranks.shape[0]} replications (grey: ±2 sd of "
                    f"uniform counts); verdict: {verdict}", fontsize=9)
    return figure


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=200)
    parser.add_argument("--methods", default="nuts,advi,stan-advi")
    parser.add_argument("--cluster", default="local:2")
    parser.add_argument("--compare-workers", action="store_true")
    parser.add_argument("--compare-reps", type=int, default=None,
                        help="with --compare-workers: time local:1 and local:2 on the first N replications only")
    parser.add_argument("--out", type=Path, default=Path("sbc-results"))
    parser.add_argument("--finished-only", action="store_true",
                        help="run nothing: judge the replications (of the first --reps) already on disk")
    args = parser.parse_args()

    from perceptiongap.model.sbc import rank_uniformity, verdict

    args.out.mkdir(parents=True, exist_ok=True)
    for method in args.methods.split(","):
        if args.finished_only:
            paths = [args.out / method / f"rep{k}.npy" for k in range(args.reps)]
            found = [np.load(path) for path in paths if path.is_file()]
            if not found:
                print(f"{method}: no finished replications in {args.out / method}")
                continue
            ranks, seconds = np.stack(found), float("nan")
        elif method == "nuts" and args.compare_workers and args.compare_reps:
            # The ratio on a subset, timed on both clusters in this run, each into a folder of its own.
            n = min(args.compare_reps, args.reps)
            _, one = run(method, n, args.out / f"compare{n}_one_worker", "local:1")
            _, two = run(method, n, args.out / f"compare{n}_two_workers", "local:2")
            print(f"nuts, first {n} replications: local:1 {one:.1f} s, local:2 {two:.1f} s; speed-up {one / two:.2f}x")
        elif method == "nuts" and args.compare_workers:
            _, one = run(method, args.reps, args.out / "one_worker", "local:1")
            print(f"nuts, {args.reps} replications on local:1: {one:.1f} s")
        if not args.finished_only:
            ranks, seconds = run(method, args.reps, args.out, args.cluster)
        if method == "nuts" and args.compare_workers and not args.compare_reps and not args.finished_only:
            print(f"nuts, {args.reps} replications on {args.cluster}: {seconds:.1f} s; speed-up {one / seconds:.2f}x")
        counts, p_values = rank_uniformity(ranks, N_RANKED)
        judged = verdict(p_values)
        smallest = float(np.min(p_values) * p_values.size)
        where = "found on disk" if args.finished_only else f"in {seconds:.1f} s on {args.cluster}"
        print(f"{method}: {ranks.shape[0]} replications {where}; "
              f"chi-square p per gamma[s>0, g] from {np.min(p_values):.4f} to {np.max(p_values):.3f}; "
              f"smallest Bonferroni-corrected {min(smallest, 1.0):.4f}; verdict: {judged}")
        figure = histogram_figure(ranks, counts, p_values, method, judged)
        figure.savefig(args.out / f"sbc_{method}.png", dpi=110)
        print(f"  rank histograms: {args.out / f'sbc_{method}.png'}")


if __name__ == "__main__":
    main()
