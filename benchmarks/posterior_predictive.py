"""Time the posterior predictive for all observer groups of the paper, against the release's loop.

Simulates posteriors of the release's sizes (radiologists: 10 observers; gmic, gmic_filtered,
dmv, dmv_filtered: 5 each; 9 severities; 1,440 breasts; 5 subgroups; 1,000 draws) and times
:func:`perceptiongap.analysis.posterior_predictive` on all five, cold (including XLA compilation)
and warm. In the same run it times the release's approach (a Python loop over observers x
severities x breasts, averaging a scalar sigmoid over draws; here without the release's
independent shuffling of each variable's draws) on one observer, one severity and a subset of
breasts, extrapolates it to the full size and prints the ratio.

    python benchmarks/posterior_predictive.py [--breasts-in-loop 100]
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

import numpy as np

warnings.filterwarnings("ignore", category=FutureWarning)  # ArviZ's refactor notice

import arviz as az  # noqa: E402
from scipy.special import expit  # noqa: E402

from perceptiongap.analysis import posterior_predictive  # noqa: E402
from perceptiongap.vocabulary import PAPER_SEVERITIES_MM  # noqa: E402

GROUPS = {"radiologists": 10, "gmic": 5, "gmic_filtered": 5, "dmv": 5, "dmv_filtered": 5}
SUBGROUPS = ("microcalcifications", "soft_tissue_lesions", "mixed", "occult", "nonbiopsied")
N_CASES = 1440
N_DRAWS = 1000


def simulated_posterior(rng: np.random.Generator, observer_group: str, n_observers: int) -> az.InferenceData:
    n_severities, n_groups = len(PAPER_SEVERITIES_MM), len(SUBGROUPS)
    gamma = np.cumsum(rng.normal(size=(1, N_DRAWS, n_severities, n_groups)), axis=2)
    gamma[:, :, 0] = 0.0
    case_subgroup = rng.choice(SUBGROUPS, size=N_CASES)
    idata = az.from_dict(
        posterior={
            "b": rng.normal(size=(1, N_DRAWS, n_groups)),
            "mu": rng.normal(scale=2.0, size=(1, N_DRAWS, N_CASES)),
            "gamma": gamma,
            "nu": rng.normal(size=(1, N_DRAWS, n_observers, n_groups)),
        },
        coords={"subgroup": list(SUBGROUPS), "severity": list(PAPER_SEVERITIES_MM),
                "observer": [f"seed{i}" for i in range(n_observers)], "case": np.arange(N_CASES)},
        dims={"b": ["subgroup"], "mu": ["case"], "gamma": ["severity", "subgroup"], "nu": ["observer", "subgroup"],
              "case_subgroup": ["case"], "case_label": ["case"]},
        constant_data={"case_subgroup": case_subgroup, "case_label": np.full(N_CASES, "benign")},
    )
    idata.posterior.attrs.update(observer_group=observer_group, inference="stan-advi", seed=0)
    return idata


def release_loop(
    idata: az.InferenceData, observers: list[int], severities: list[int], breasts: list[int]
) -> np.ndarray:
    """The release's algorithm: for each cell, a Python loop over draws of a scalar sigmoid, then the mean."""
    post = idata.posterior
    b = post["b"].values[0]
    mu = post["mu"].values[0]
    gamma = post["gamma"].values[0]
    nu = post["nu"].values[0]
    names = list(post["subgroup"].values)
    group = [names.index(name) for name in idata.constant_data["case_subgroup"].values]
    out = np.empty((len(observers), len(severities), len(breasts)))
    for i, r in enumerate(observers):
        for j, s in enumerate(severities):
            for k, n in enumerate(breasts):
                g = group[n]
                draws = [expit(m + c + v + d) for m, c, v, d in zip(mu[:, n], gamma[:, s, g], nu[:, r, g], b[:, g])]
                out[i, j, k] = np.mean(draws)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--breasts-in-loop", type=int, default=100, help="breasts timed with the release's loop")
    args = parser.parse_args()

    start = time.perf_counter()
    import jax.numpy as jnp

    jnp.zeros(1).block_until_ready()
    print(f"importing JAX and starting its CPU backend: {time.perf_counter() - start:.3f} s (not counted below)")

    rng = np.random.default_rng(0)
    posteriors = {group: simulated_posterior(rng, group, n) for group, n in GROUPS.items()}
    n_sigmoids = sum(n * len(PAPER_SEVERITIES_MM) * N_CASES * N_DRAWS for n in GROUPS.values())
    print(f"cpu cores visible: {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}; "
          f"sigmoid evaluations for all groups: {n_sigmoids / 1e6:.0f} M")

    predictive = {}
    timings = {}
    for label in ("first call (incl. XLA compilation)", "warm"):
        start = time.perf_counter()
        for group, idata in posteriors.items():
            t = time.perf_counter()
            predictive[group] = posterior_predictive(idata)
            timings[(label, group)] = time.perf_counter() - t
        total = time.perf_counter() - start
        per_group = ", ".join(f"{group} {timings[(label, group)]:.3f}" for group in posteriors)
        print(f"posterior_predictive, all 5 groups, {label}: {total:.3f} s  ({per_group})")
    warm_total = sum(timings[("warm", group)] for group in posteriors)
    print(f"  warm throughput: {n_sigmoids / warm_total / 1e9:.2f} G sigmoid / s")

    idata = posteriors["radiologists"]
    breasts = list(range(args.breasts_in_loop))
    start = time.perf_counter()
    loop = release_loop(idata, [0], [len(PAPER_SEVERITIES_MM) - 1], breasts)
    loop_seconds = time.perf_counter() - start
    cells_all = sum(n * len(PAPER_SEVERITIES_MM) * N_CASES for n in GROUPS.values())
    extrapolated = loop_seconds * cells_all / len(breasts)
    ours = predictive["radiologists"].values[0, -1, breasts]
    print(f"release loop: {len(breasts)} cells in {loop_seconds:.3f} s -> all {cells_all} cells ~ {extrapolated:.0f} s "
          f"({extrapolated / 60:.1f} min); max |difference| on the subset {np.abs(loop[0, 0] - ours).max():.1e}")
    print(f"ratio (release loop, extrapolated) / (vectorised, warm): {extrapolated / warm_total:.0f}x")


if __name__ == "__main__":
    main()
