"""Time the reader-study statistics against their straightforward algorithms, and on the release.

Goal: ``perceptiongap accuracy`` on the authors' release (30 observers, three schemes, 2,000
bootstrap replicates for every interval) computes in under two minutes on the 2-core machine.
What makes that possible, each measured here against the straightforward way in the same run:

1. bootstrap AUCs: all replicates at once from resampling counts (``stats.roc.weighted_aucs``)
   against a loop over replicates calling ``sklearn.metrics.roc_auc_score`` on the resampled
   breasts (one network at one severity: 61 malignant, 1,379 other breasts);
2. jackknife AUCs: every leave-one-case-out AUC from midranks (``stats.roc.auc_jackknife``)
   against refitting ``roc_auc_score`` without each case (one reader, 1,440 cases);
3. the whole computation of ``perceptiongap accuracy`` on the release (accuracy and error
   consistency tables, every scheme), if the release is found (``$PERCEPTIONGAP_SHARED``);
4. the statistics' share of ``perceptiongap reproduce`` (``analyse`` computes the same tables with
   fewer replicates, ``--bootstrap``, default 500, and the folder's subgroups): wall and CPU seconds,
   against the ``accuracy`` command's computation of 3. (budget: a few seconds of the 120 s that
   ``reproduce --inference stan-advi`` may take).

    python benchmarks/stats.py [--replicates 2000] [--reproduce-replicates 500] [--loop-replicates 200]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from perceptiongap.stats.bootstrap import derived_rng, stratified_counts
from perceptiongap.stats.roc import auc_jackknife, weighted_aucs


def bootstrap_aucs(replicates: int, loop_replicates: int) -> None:
    rng = np.random.default_rng(0)
    positives, negatives = rng.normal(1.2, 1, 61), rng.normal(0, 1, 1379)
    labels = np.r_[np.ones(61, bool), np.zeros(1379, bool)]
    counts = stratified_counts(labels.astype(int), replicates, derived_rng(0, "benchmark"))
    start = time.perf_counter()
    (fast,) = weighted_aucs(negatives, counts[~labels], [(positives, counts[labels])])
    vectorised = time.perf_counter() - start

    scores = np.r_[positives, negatives]
    start = time.perf_counter()
    loop = []
    for b in range(loop_replicates):
        drawn = np.repeat(np.arange(labels.size), counts[:, b].astype(int))
        loop.append(roc_auc_score(labels[drawn], scores[drawn]))
    per_replicate = (time.perf_counter() - start) / loop_replicates
    assert np.allclose(loop, fast[:loop_replicates])
    looped = per_replicate * replicates
    print(f"bootstrap AUC, {replicates} replicates of 1,440 breasts: vectorised {vectorised:.3f} s; "
          f"loop over replicates (sklearn) {looped:.2f} s (extrapolated from {loop_replicates}); "
          f"ratio {looped / vectorised:.0f}x")


def jackknife_aucs() -> None:
    rng = np.random.default_rng(1)
    truth = np.r_[np.zeros(1379, int), np.ones(61, int)]
    scores = rng.normal(size=truth.size) + 1.2 * truth
    start = time.perf_counter()
    _, fast = auc_jackknife(truth, scores)
    ranks = time.perf_counter() - start
    subset = 200
    start = time.perf_counter()
    slow = [roc_auc_score(np.delete(truth, k), np.delete(scores, k)) for k in range(subset)]
    refit = (time.perf_counter() - start) / subset * truth.size
    assert np.allclose(slow, fast[:subset])
    print(f"jackknife AUC, one reader, 1,440 cases: midranks {ranks * 1000:.1f} ms; refitting without each case "
          f"{refit:.2f} s (extrapolated from {subset}); ratio {refit / ranks:.0f}x")


def _release():
    shared = Path(os.environ.get("PERCEPTIONGAP_SHARED", Path(__file__).resolve().parents[2] / "shared"))
    if not (shared / "nyu-release").is_dir():
        print(f"release: not found under {shared}; skipped")
        return None
    from perceptiongap.release import import_release

    return import_release(shared / "nyu-release")


def release(observations, cases, replicates: int) -> float:
    from perceptiongap.stats import accuracy_table, error_consistency_tables

    start = time.perf_counter()
    table = accuracy_table(observations, cases, n_bootstrap=replicates)
    accuracy_seconds = time.perf_counter() - start
    start = time.perf_counter()
    tables = error_consistency_tables(observations, cases, n_bootstrap=replicates)
    consistency_seconds = time.perf_counter() - start
    total = accuracy_seconds + consistency_seconds
    print(f"release ({len(observations)} observations, {replicates} replicates): accuracy {accuracy_seconds:.1f} s "
          f"({len(table)} rows), error consistency {consistency_seconds:.1f} s ({len(tables.pairs)} pairs); "
          f"total {total:.1f} s (goal 120 s)")
    return total


def in_reproduce(observations, cases, replicates: int, command_seconds: float | None) -> None:
    """What ``analyse`` (so ``reproduce``) adds: :func:`statistics_tables` with the folder's subgroups."""
    from perceptiongap.analysis.subgroups import choose_subgroups
    from perceptiongap.stats.operating_point import default_operating_points
    from perceptiongap.stats.outputs import statistics_tables

    choice = choose_subgroups(cases, None)
    wall, cpu = time.perf_counter(), time.process_time()
    tables = statistics_tables(observations, cases, seed=0, n_bootstrap=replicates,
                               operating_points=default_operating_points(observations), subgroups=choice.analysed,
                               merged_subgroups=choice.merged)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    ratio = f"; {command_seconds / wall:.1f}x less wall time than the accuracy command above" if command_seconds else ""
    print(f"in reproduce (analyse, {replicates} replicates, subgroups {', '.join(choice.analysed)} + merged): "
          f"{wall:.1f} s wall, {cpu:.1f} s CPU ({len(tables['accuracy'])} accuracy rows, "
          f"{len(tables['error_consistency_pairs'])} pairs){ratio}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicates", type=int, default=2000)
    parser.add_argument("--reproduce-replicates", type=int, default=500)
    parser.add_argument("--loop-replicates", type=int, default=200)
    parser.add_argument("--only-reproduce", action="store_true", help="Time only what reproduce adds (4.).")
    args = parser.parse_args()
    if not args.only_reproduce:
        bootstrap_aucs(args.replicates, args.loop_replicates)
        jackknife_aucs()
    data = _release()
    if data is None:
        return
    command = None if args.only_reproduce else release(*data, args.replicates)
    in_reproduce(*data, args.reproduce_replicates, command)


if __name__ == "__main__":
    main()
