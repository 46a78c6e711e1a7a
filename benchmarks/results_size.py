"""Size of a results folder's posteriors: the compact form (the default) against every draw, on the release.

Fits each observer group of the authors' release once with stan-advi (seed 0, separate subgroups), saves each
posterior both ways (`results.compact.compact_posterior`, and every draw as `--keep-all-draws` keeps it), and prints
the file sizes, their ratio, the time the compact form adds per fit (its posterior predictive) and the largest
difference between the posterior predictive read back from the two files (the analyses' input).

    python benchmarks/results_size.py [--data DIR]     # DIR: the release (default: as `perceptiongap reproduce`)
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

warnings.filterwarnings("ignore", category=FutureWarning)  # ArviZ's refactor notice


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None)
    args = parser.parse_args()

    from perceptiongap.analysis import posterior_predictive
    from perceptiongap.analysis.subgroups import choose_subgroups, subgroup_order
    from perceptiongap.model import build_model_data, fit, load_posterior, save_posterior
    from perceptiongap.release import import_release, locate_release
    from perceptiongap.results.compact import compact_posterior
    from perceptiongap.results.fitting import model_groups

    observations, cases = import_release(locate_release(args.data))
    order = subgroup_order(choose_subgroups(cases, None))
    totals = {"all draws": 0, "compact": 0}
    largest, extra_seconds = 0.0, []
    with tempfile.TemporaryDirectory() as folder:
        for group in model_groups(observations):
            posterior = fit(build_model_data(observations, cases, group, subgroup_order=order), "stan-advi", 0)
            full, compact = Path(folder) / f"{group}.full.nc", Path(folder) / f"{group}.compact.nc"
            save_posterior(posterior, full)
            start = time.perf_counter()
            save_posterior(compact_posterior(posterior), compact)
            extra_seconds.append(time.perf_counter() - start)
            difference = np.abs(posterior_predictive(load_posterior(full)).values
                                - posterior_predictive(load_posterior(compact)).values).max()
            largest = max(largest, float(difference))
            totals["all draws"] += full.stat().st_size
            totals["compact"] += compact.stat().st_size
            print(f"{group:14s} all draws {full.stat().st_size / 1e6:6.2f} MB   compact {compact.stat().st_size / 1e6:5.2f} MB")
    ratio = totals["all draws"] / totals["compact"]
    print(f"all groups: all draws {totals['all draws'] / 1e6:.1f} MB, compact {totals['compact'] / 1e6:.1f} MB "
          f"({ratio:.1f}x smaller)")
    print(f"compacting and saving: {np.median(extra_seconds):.2f} s per fit (median; the first includes compilation)")
    print(f"largest |difference| of the posterior predictive read back: {largest:.2e}")


if __name__ == "__main__":
    main()
