"""Does `advi` stop at its optimum? Run it twice as long on the release and compare.

Usage: python benchmarks/advi_convergence.py [--seed 0] [--out DIR] [--groups a,b] [--quick] [--no-old-rule]

Fits every observer group of the authors' release (and the merged-subgroup refits) with `advi`
as `reproduce --inference advi` does, then again with exactly twice as many iterations as each fit
took (as `ConvergedADVISettings(fixed_iterations=2 * iterations)`, no early stop, the same averaging;
run as one run carried on, `fit_advi_and_twice`, which gives the same numbers for less time).
Prints, per fit, the iterations, the largest change of any severity effect E[gamma[s, g]] between
the two runs (goal: within 0.02), for all subgroups and for the analysed ones, the run times, and
the paper's conclusions (METHOD §7) judged on both (goal: no verdict changes). A stop rule that a
decaying step size could satisfy without reaching the optimum would show up here as severity
effects that keep moving.

The time cost of the rule is measured against the rule it replaced (the ELBO-trend stop of the
previous `advi`: one gradient draw per step, blocks of 250, stop when the upper end of the ELBO's
trend over 8 blocks projects a gain below 1e-4 |ELBO|), run in the same process on the
separate and merged fits of ``--old-rule-groups`` (default: radiologists and GMIC; ``--no-old-rule``
skips it). The "seconds" of a converged fit is its share of the carried-on run.

Fits are cached in ``--out`` (default: a new temporary folder): a second run with the same
``--out`` reuses them, so the fits can be split over runs (``--groups``) and the verdicts judged
by a last run over all. ``--quick``: the radiologists and GMIC only, separate fits (no merged
refits), no verdicts (those need every group); about a fifth of the time.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path


def old_rule_fit(model, arrays, key) -> dict:
    """The previous `advi` stop rule on the same model: iterations, seconds and E[gamma] at its stop."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    from numpyro.optim import Adam

    from perceptiongap.model.advi import _block_runner
    from perceptiongap.model.meanfield import estimate_elbo

    block, window, rel_tol, max_iterations = 250, 8, 1e-4, 50_000
    start, start_cpu = time.perf_counter(), time.process_time()
    key_init, key_run, key_elbo, _ = jax.random.split(key, 4)
    mean = jax.random.uniform(key_init, (model.dim,), minval=-2.0, maxval=2.0)
    optimizer = Adam(0.01)
    state = optimizer.init((mean, jnp.zeros_like(mean)))
    run = _block_runner(model.log_density, optimizer, block, 1)
    averages, trace = [], []
    for index in range(max_iterations // block):
        state, block_mean, block_log_sd = run(state, jax.random.fold_in(key_run, index), arrays)
        averages = (averages + [block_mean])[-window:]
        trace.append(float(estimate_elbo(model.log_density, block_mean, block_log_sd, key_elbo, arrays, 200)))
        if len(trace) >= window:
            recent = np.asarray(trace[-window:])
            x = np.arange(window) - (window - 1) / 2
            slope = float(x @ (recent - recent.mean()) / (x @ x))
            residual = recent - recent.mean() - slope * x
            se = math.sqrt(float(residual @ residual) / (window - 2) / float(x @ x))
            if (slope + 2 * se) * (window - 1) < rel_tol * abs(recent[-1]):
                break
    mean = jnp.mean(jnp.stack(averages), axis=0)
    gamma = np.asarray(model.sites(mean, arrays)["gamma"])
    return {"iterations": (index + 1) * block, "seconds": time.perf_counter() - start,
            "cpu_seconds": time.process_time() - start_cpu, "gamma": gamma.tolist()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="folder for the posteriors (reused when present)")
    parser.add_argument("--groups", default=None, help="comma-separated observer groups to fit (default: all)")
    parser.add_argument("--quick", action="store_true", help="radiologists and GMIC, separate fits, no verdicts")
    parser.add_argument("--no-old-rule", action="store_true", help="skip the timing of the previous stop rule")
    parser.add_argument("--old-rule-groups", default="radiologists,gmic",
                        help="observer groups whose fits are timed under the previous rule too (default: radiologists,gmic)")
    args = parser.parse_args()

    import jax
    import numpy as np
    import pandas as pd

    from perceptiongap.analysis.subgroups import choose_subgroups
    from perceptiongap.analysis.tables import study_tables
    from perceptiongap.files import atomic_write_text
    from perceptiongap.model import load_posterior, save_posterior
    from perceptiongap.model.advi import fit_advi_and_twice
    from perceptiongap.model.density import device_data, flat_model_for
    from perceptiongap.release import import_release, locate_release
    from perceptiongap.results.fitting import dense_groups, model_data_for, model_groups, plan_fits
    from perceptiongap.vocabulary import MERGED_SUBGROUP

    out = args.out or Path(tempfile.mkdtemp(prefix="perceptiongap-advi-convergence-"))
    observations, cases = import_release(locate_release())
    choice = choose_subgroups(cases)
    jobs = plan_fits(model_groups(observations), ["advi"], seed=args.seed)
    groups = ["radiologists", "gmic"] if args.quick else (args.groups.split(",") if args.groups else None)
    selected = [job for job in jobs if (groups is None or job.observer_group in groups)
                and not (args.quick and job.merged)]
    data = model_data_for(observations, cases, selected, choice)

    rows, runs = [], {"converged": [], "twice as long": []}
    for job in selected:
        paths = {label: out / label.replace(" ", "_") / job.relative_path for label in ("converged", "twice as long")}
        if all(path.is_file() for path in paths.values()):
            fits = {label: load_posterior(path) for label, path in paths.items()}
        else:
            # One run carried on to twice its iterations: the same as a second run with
            # fixed_iterations = 2 x iterations (tested), at two thirds of the cost of both.
            start, start_cpu = time.perf_counter(), time.process_time()
            first, twice = fit_advi_and_twice(data[job.observer_group, job.merged], job.seed)
            seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - start_cpu
            if twice is None:
                raise SystemExit(f"{job.describe()}: advi stopped at its iteration limit without converging")
            # The first run's own time: its share of the iterations (the blocks cost the same).
            first.posterior.attrs["fit_seconds"] = seconds * first.posterior.attrs["iterations"] / twice.posterior.attrs["iterations"]
            twice.posterior.attrs["fit_seconds"] = seconds
            share = first.posterior.attrs["iterations"] / twice.posterior.attrs["iterations"]
            first.posterior.attrs["fit_cpu_seconds"] = cpu_seconds * share
            twice.posterior.attrs["fit_cpu_seconds"] = cpu_seconds
            fits = {"converged": first, "twice as long": twice}
            for label, posterior in fits.items():
                posterior.posterior.attrs["merged"] = int(job.merged)
                save_posterior(posterior, paths[label])
        for label, posterior in fits.items():
            runs[label].append(posterior)
        old = None
        if not args.no_old_rule and (job.observer_group in args.old_rule_groups.split(",")):
            old_path = out / "old_rule" / Path(job.relative_path).with_suffix(".json")
            if not old_path.is_file():
                model_data = data[job.observer_group, job.merged]
                old = old_rule_fit(flat_model_for(model_data), device_data(model_data), jax.random.PRNGKey(job.seed))
                old_path.parent.mkdir(parents=True, exist_ok=True)
                atomic_write_text(old_path, json.dumps(old))
            old = json.loads(old_path.read_text())
        gamma = {label: fit.posterior["gamma"].mean(("chain", "draw")) for label, fit in fits.items()}
        # The subgroups the paper's conclusions read (the merged refit's merged subgroup included).
        analysed = [name for name in gamma["converged"]["subgroup"].values
                    if name in {*choice.analysed, MERGED_SUBGROUP}]
        change = abs(gamma["converged"] - gamma["twice as long"])
        attrs = {label: fit.posterior.attrs for label, fit in fits.items()}
        rows.append({"fit": job.describe().removeprefix("release advi ").replace(f" (seed {job.seed})", "").replace(f"(seed {job.seed}, ", "("),
                     "iterations": int(attrs["converged"]["iterations"]),
                     "converged": bool(attrs["converged"]["converged"]),
                     "max |change|": float(change.max()),
                     "analysed": float(change.sel(subgroup=analysed).max()) if analysed else np.nan,
                     "MCSE": float(attrs["converged"].get("max_mcse", np.nan)),
                     "seconds": float(attrs["converged"].get("fit_seconds", np.nan)),
                     "seconds twice": float(attrs["twice as long"].get("fit_seconds", np.nan)),
                     "old iterations": old["iterations"] if old else np.nan,
                     "old seconds": old["seconds"] if old else np.nan,
                     "CPU s": float(attrs["converged"].get("fit_cpu_seconds", np.nan)),
                     "old CPU s": old.get("cpu_seconds", np.nan) if old else np.nan,
                     "old vs new E[gamma]": float(np.max(np.abs(np.asarray(old["gamma"]) - gamma["converged"].values)))
                     if old else np.nan})
        row = rows[-1]
        print(f"{row['fit']}: {row['iterations']} iterations (converged: {row['converged']}, {row['seconds']:.0f} s), "
              f"largest change of E[gamma] after {2 * row['iterations']}: {row['max |change|']:.4f} "
              f"(analysed subgroups: {row['analysed']:.4f}); old rule: {row['old iterations']} iterations, "
              f"{row['old seconds']:.0f} s", flush=True)

    table = pd.DataFrame(rows)
    pd.set_option("display.width", 250)
    print()
    print(table.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    worst = table["max |change|"].max()
    worst_analysed = table["analysed"].max()
    print(f"\nlargest change of any severity effect: {worst:.4f} (goal 0.02: {'met' if worst <= 0.02 else 'missed'}), "
          f"of the analysed subgroups: {worst_analysed:.4f}; posteriors in {out}")
    timed = table[table["old seconds"].notna()]
    both_cpu = timed[timed["CPU s"].notna() & timed["old CPU s"].notna()]
    cpu = (f"; CPU time {both_cpu['CPU s'].sum():.0f} s against {both_cpu['old CPU s'].sum():.0f} s "
           f"({both_cpu['CPU s'].sum() / both_cpu['old CPU s'].sum():.2f}x)" if len(both_cpu) else "")
    if len(timed):
        print(f"fit time on the {len(timed)} fits timed under both rules: new rule {timed['seconds'].sum():.0f} s "
              f"against the old rule's {timed['old seconds'].sum():.0f} s "
              f"({timed['seconds'].sum() / timed['old seconds'].sum():.2f}x{cpu}); "
              f"iterations {timed['iterations'].sum()} "
              f"against {int(timed['old iterations'].sum())}; the old rule's largest |E[gamma] old - new|: "
              f"{timed['old vs new E[gamma]'].max():.3f}")

    if len(selected) < len(jobs):
        print("verdicts not judged: they need every fit (run without --quick/--groups; cached fits are reused)")
        return
    verdicts = {}
    for label, posteriors in runs.items():
        separate = [p for p in posteriors if not p.posterior.attrs.get("merged")]
        merged = [p for p in posteriors if p.posterior.attrs.get("merged")]
        # The "twice as long" fits do not meet the stop rule by design (they stop at a fixed count);
        # the tables do not look at that, only at the draws.
        tables = study_tables(observations, cases, separate, merged, subgroups=choice.analysed,
                              merged_subgroups=choice.merged, dense_groups=dense_groups(observations))
        conclusions = tables["conclusions"]
        verdicts[label] = conclusions[conclusions["inference"] == "advi"].set_index("conclusion")["supported"]
    both = pd.DataFrame(verdicts)
    print()
    print(both.to_string())
    changed = int((both["converged"] != both["twice as long"]).sum())
    print(f"\nverdicts changed: {changed} of {len(both)}")


if __name__ == "__main__":
    sys.exit(main())
