"""Time `perceptiongap reproduce` stage by stage, and the release's posterior-predictive loop.

Usage: python benchmarks/reproduce.py [--inference stan-advi,nuts] [--model release[,label_specific]]
                                      [--advi-seeds 5] [--cluster local:2] [--out DIR]
                                      [--single-thread-xla] [--compile-cache DIR]

Prints the seconds of each stage (import, fits per method, posterior predictive for all groups,
analysis, figures and report), wall clock and this process's CPU time (all threads; less sensitive to
other work on a shared machine), with the load average before and after and, in the same run, the release's approach to the posterior predictive (a Python
loop over observers x severities x breasts averaging sigmoid over draws) timed on a subset and
extrapolated, with the ratio. Goals (2-core machine): stan-advi with 5 seeds < 120 s, nuts < 300 s,
posterior predictive for all groups < 1 s. With several ``--model`` each model's fits are timed
apart (same run), so that the cost of a variant is read against the release's; goal for
``--inference nuts --model release,label_specific``: everything < 8 minutes.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=2")


def release_posterior_predictive_loop(posterior, observers, severities, cases) -> float:
    """The release's algorithm (without its per-element shuffling): seconds for the given subset, over
    every draw of the posterior.

    A compact posterior (the results folder's default) keeps ``mu`` at the checked draws only (group
    ``ppc_case_draws``): the loop runs over those and its time is scaled to all draws (it is linear in them).
    """
    import numpy as np
    from scipy.special import expit

    post = posterior.posterior
    n_samples = post.sizes["chain"] * post.sizes["draw"]
    if "mu" in post.data_vars:
        mu, kept = post["mu"].values.reshape(-1, post.sizes["case"]), np.arange(n_samples)
    else:
        case_draws = posterior.ppc_case_draws["mu"].transpose("ppc_sample", "case")
        mu, kept = case_draws.values, case_draws["ppc_sample"].values.astype(int)
    gamma = post["gamma"].values.reshape(-1, post.sizes["severity"], post.sizes["subgroup"])[kept]
    nu = post["nu"].values.reshape(-1, post.sizes["observer"], post.sizes["subgroup"])[kept]
    b = post["b"].values.reshape(-1, post.sizes["subgroup"])[kept]
    subgroup_names = list(post["subgroup"].values)
    case_subgroup = [subgroup_names.index(s) for s in posterior.constant_data["case_subgroup"].values]
    start = time.perf_counter()
    for r in observers:
        for s in severities:
            for n in cases:
                g = case_subgroup[n]
                values = [expit(m + c + v + bb) for m, c, v, bb in zip(mu[:, n], gamma[:, s, g], nu[:, r, g], b[:, g])]
                np.mean(values)
    return (time.perf_counter() - start) * n_samples / len(kept)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inference", default="stan-advi,nuts")
    parser.add_argument("--advi-seeds", type=int, default=5)
    parser.add_argument("--model", default="release")
    parser.add_argument("--cluster", default=None)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--single-thread-xla", action="store_true",
                        help="one XLA thread per computation (perceptiongap.model.runtime; same numbers)")
    parser.add_argument("--compile-cache", type=Path, default=None,
                        help="JAX's persistent compilation cache in this folder (a second run skips the compiles)")
    args = parser.parse_args()
    if args.single_thread_xla or args.compile_cache is not None:
        from perceptiongap.model.runtime import configure_jax

        configure_jax(cache_dir=args.compile_cache, single_thread=args.single_thread_xla)

    import jax

    from perceptiongap.analysis import posterior_predictive
    from perceptiongap.analysis.subgroups import choose_subgroups
    from perceptiongap.model import load_posterior
    from perceptiongap.release import import_release, locate_release
    from perceptiongap.report import build_report
    from perceptiongap.results import ResultsFolder, analyse
    from perceptiongap.results.fitting import fit_study, model_data_for, model_groups, plan_fits
    from perceptiongap.results.store import write_study_into

    out = args.out or Path(tempfile.mkdtemp(prefix="perceptiongap-bench-"))
    timings: dict[str, float] = {}
    cpu: dict[str, float] = {}
    load_before = os.getloadavg()
    start_all, cpu_all = time.perf_counter(), time.process_time()

    class stage:
        """Times one stage, wall clock and CPU."""

        def __init__(self, name: str):
            self.name = name

        def __enter__(self):
            self.wall, self.cpu = time.perf_counter(), time.process_time()

        def __exit__(self, *exc):
            timings[self.name] = time.perf_counter() - self.wall
            cpu[self.name] = time.process_time() - self.cpu

    with stage("locate + import release"):
        observations, cases = import_release(locate_release())
        write_study_into(ResultsFolder(out), observations, cases)

    groups = model_groups(observations)
    choice = choose_subgroups(cases)
    for model in args.model.split(","):
        for method in args.inference.split(","):
            jobs = plan_fits(groups, [method], advi_seeds=args.advi_seeds, models=(model,))
            with stage(f"fit {model} {method} ({len(jobs)} fits incl. merged refits)"):
                fit_study(model_data_for(observations, cases, jobs, choice), jobs, out, cluster=args.cluster)

    separate, _ = ResultsFolder(out).find_posteriors()
    separate = [path for path in separate if path.parts[-4] == "release" or "release" not in args.model]
    one_per_group = {}
    for path in separate:
        one_per_group.setdefault(path.parent.name, load_posterior(path))
    posteriors = list(one_per_group.values())
    posterior_predictive(posteriors[0]).values  # compile once
    predictive_stage = f"posterior predictive, all {len(posteriors)} groups"
    with stage(predictive_stage):
        for posterior in posteriors:
            posterior_predictive(posterior).values
    predictive_seconds = timings[predictive_stage]

    with stage("analyse (all tables)"):
        analyse(out, report=False)
    with stage("figures and report"):
        build_report(out)
    timings["total"] = time.perf_counter() - start_all
    cpu["total"] = time.process_time() - cpu_all

    print(f"machine: {os.cpu_count()} cores, JAX devices {jax.local_device_count()}; results in {out}")
    print(f"load average (1, 5, 15 min) before {load_before[0]:.1f} {load_before[1]:.1f} {load_before[2]:.1f}, "
          f"after {os.getloadavg()[0]:.1f} {os.getloadavg()[1]:.1f} {os.getloadavg()[2]:.1f}")
    print(f"{'stage':<55s} {'wall':>8s}   {'cpu':>8s}")
    for name, seconds in timings.items():
        print(f"{name:<55s} {seconds:8.2f} s {cpu[name]:8.2f} s")

    # The release's loop, on one observer x one severity x 200 breasts, extrapolated to all groups.
    subset_cases = range(200)
    loop_seconds = release_posterior_predictive_loop(posteriors[0], [0], [1], subset_cases)
    cells = sum(p.posterior.sizes["observer"] * p.posterior.sizes["severity"] * p.posterior.sizes["case"]
                for p in posteriors)
    extrapolated = loop_seconds / len(subset_cases) * cells
    print(f"release posterior-predictive loop: {loop_seconds:.2f} s for {len(subset_cases)} cells, "
          f"extrapolated to {cells} cells: {extrapolated:.0f} s")
    print(f"posterior predictive speed-up over the release's loop: {extrapolated / predictive_seconds:.0f}x")


if __name__ == "__main__":
    sys.exit(main())
