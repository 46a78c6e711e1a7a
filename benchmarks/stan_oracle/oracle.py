"""Stan itself as the oracle for `stan-advi` (issue 10): Stan's own mean-field ADVI on the release.

Builds Stan's mean-field ADVI for the release's two models from PyPI only (the `httpstan` wheel
ships Stan's C++ headers, Eigen, Boost, Sundials, TBB and `stanc`), runs it per observer group and
seed with PyStan 2's `vb` defaults (what the release called), stores each fit as a posterior in
perceptiongap's format, and compares the per-seed tables of `perceptiongap.analysis.fit_table`
with those of perceptiongap's own `stan-advi` on the same data and seeds.

Run from the repository root with the project's virtual environment (`make install`):

    .venv/bin/python benchmarks/stan_oracle/oracle.py build
    .venv/bin/python benchmarks/stan_oracle/oracle.py run --out stan-oracle [--seeds 0-9] [--jobs 2]
    .venv/bin/python benchmarks/stan_oracle/oracle.py compare --stan stan-oracle [--seeds 0-9]

`build` makes its own virtual environment `benchmarks/stan_oracle/.venv` (git-ignored), installs
the pinned `httpstan` wheel there (nothing but its files is used), compiles the two Stan programs
(`radiologists.stan`, `networks.stan`) with its `stanc` and the driver `driver.cpp` with g++, into
`benchmarks/stan_oracle/build/`. `run` writes, under `--out`: `data/<group>.json` (the model's
arrays from `import_release` + `build_model_data`, as Stan reads them), `fits/<group>/seed<k>.*`
(Stan's ELBO trace, counts, log), `posteriors/stan-oracle/<group>/seed<k>.nc` and `fits.csv`; it is
resumable (fits already on disk are kept). `compare` fits perceptiongap's `stan-advi` on the same
groups and seeds (kept under `--ours`, default `<stan>/ours`, so that a rerun against a changed
`stan-advi` needs `--refit`), and writes `per_seed.csv`, `comparison.csv` and `stops.csv` next to
them, printing both tables. Nothing here runs in the test suite: the build takes minutes.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPOSITORY = HERE.parents[1]
VENV = HERE / ".venv"
BUILD = HERE / "build"
#: The httpstan release whose headers and stanc are used (Stan 2.35.0, Stan Math 4.9.0).
HTTPSTAN = "httpstan==4.13.0"
MODELS = {"radiologists": HERE / "radiologists.stan", "networks": HERE / "networks.stan"}
GROUPS = ("radiologists", "gmic", "gmic_filtered", "dmv", "dmv_filtered")
STAN = "stan-oracle"  # the `inference` attribute of Stan's posteriors
OURS = "stan-advi"
CXXFLAGS = ["-O3", "-std=c++17", "-D_REENTRANT", "-DBOOST_DISABLE_ASSERTS", "-Wno-sign-compare",
            "-Wno-deprecated-declarations", "-Wno-ignored-attributes"]


def log(message: str) -> None:
    print(message, flush=True)


# --- build -----------------------------------------------------------------------------------


def httpstan_dir() -> Path:
    """The installed httpstan package folder inside the oracle's own virtual environment."""
    found = sorted(VENV.glob("lib/python*/site-packages/httpstan"))
    if not found:
        raise SystemExit(f"error: {VENV}: httpstan is not installed; run `oracle.py build` first")
    return found[0]


def driver_path(model: str) -> Path:
    return BUILD / f"driver_{model}"


def build(args: argparse.Namespace) -> None:
    """Install httpstan into the oracle's venv, translate both programs with stanc, compile the driver."""
    started = time.perf_counter()
    if not (VENV / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    if not list(VENV.glob("lib/python*/site-packages/httpstan")):
        # --no-deps: only the wheel's files (headers, libraries, stanc) are used, not its server.
        subprocess.run([str(VENV / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-deps", HTTPSTAN],
                       check=True)
    package = httpstan_dir()
    log(f"httpstan ready in {package} ({time.perf_counter() - started:.0f} s)")
    stanc = package / "stanc"
    include = package / "include"
    BUILD.mkdir(exist_ok=True)
    version = subprocess.run([str(stanc), "--version"], check=True, capture_output=True, text=True).stdout.strip()
    log(f"stanc: {version}")

    def compile_model(model: str) -> float:
        start = time.perf_counter()
        cpp = BUILD / f"{model}.hpp"
        subprocess.run([str(stanc), "--name", f"{model}_model", "--o", str(cpp), str(MODELS[model])], check=True)
        # stanc declares the model class `final`; the driver derives from it to count log-density
        # evaluations, so that one word is removed from the generated file.
        text = cpp.read_text()
        marker = f"class {model}_model final :"
        if marker not in text:
            raise SystemExit(f"error: {cpp}: expected `{marker}` in stanc's output")
        cpp.write_text(text.replace(marker, f"class {model}_model :"))
        command = ["g++", *CXXFLAGS, f'-DORACLE_MODEL_HPP="{cpp}"', f"-I{include}", str(HERE / "driver.cpp"),
                   "-o", str(driver_path(model)), f"-L{package / 'lib'}", f"-Wl,-rpath,{package / 'lib'}", "-ltbb"]
        subprocess.run(command, check=True)
        return time.perf_counter() - start

    with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
        for model, seconds in zip(MODELS, pool.map(compile_model, MODELS)):
            log(f"compiled {driver_path(model)} in {seconds:.0f} s")
    log(f"build done in {time.perf_counter() - started:.0f} s")


# --- run -------------------------------------------------------------------------------------


def parse_seeds(text: str) -> list[int]:
    """'0-9' or '0,3,5' or a mix -> sorted seeds."""
    seeds: set[int] = set()
    for part in text.split(","):
        if "-" in part:
            low, high = part.split("-")
            seeds.update(range(int(low), int(high) + 1))
        elif part:
            seeds.add(int(part))
    return sorted(seeds)


def release_model_data(groups) -> dict:
    """ModelData per observer group, exactly as `perceptiongap reproduce` builds them."""
    from perceptiongap.model import build_model_data
    from perceptiongap.release import import_release, locate_release
    from perceptiongap.vocabulary import PAPER_SUBGROUPS

    observations, cases = import_release(locate_release())  # --data is $PERCEPTIONGAP_DATA
    return {group: build_model_data(observations, cases, group, subgroup_order=PAPER_SUBGROUPS) for group in groups}


def stan_data(data) -> dict:
    """The arrays of `radiologists.stan` / `networks.stan` (1-based indices, one entry per observed cell)."""
    import numpy as np

    observer, severity, case = np.nonzero(data.observed)
    prediction = data.prediction[observer, severity, case]
    human = data.observer_kind == "human"
    return {
        "n_cases": data.n_cases, "n_observers": data.n_observers, "n_severities": data.n_severities,
        "n_subgroups": data.n_subgroups, "n_cells": int(observer.size),
        "case_subgroup": (data.case_subgroup + 1).tolist(),
        "cell_case": (case + 1).tolist(), "cell_severity": (severity + 1).tolist(),
        "cell_observer": (observer + 1).tolist(),
        "prediction": prediction.astype(int).tolist() if human else prediction.tolist(),
    }


def model_of(data) -> str:
    return "radiologists" if data.observer_kind == "human" else "networks"


def to_inference_data_function():
    """perceptiongap's posterior builder (its module may move while `model/` is being split)."""
    import importlib

    for module in ("perceptiongap.model", "perceptiongap.model.posterior_io", "perceptiongap.model.inference"):
        try:
            function = getattr(importlib.import_module(module), "to_inference_data", None)
        except ImportError:
            continue
        if function is not None:
            return function
    raise SystemExit("error: perceptiongap.model: no to_inference_data found")


def read_stan_draws(prefix: Path):
    """Stan's output: (column names, values (1 + output_samples, n_names)); row 0 is the mean."""
    import numpy as np

    names = prefix.with_suffix(".names").read_text().split()
    values = np.fromfile(prefix.with_suffix(".draws"), dtype=np.float64).reshape(-1, len(names))
    return names, values


def stan_sites(names, values, data) -> dict:
    """Stan's columns `mu.n`, `delta.s.g`, `gamma.s.g`, `nu.r.g`, `b.g` -> our sites (1, draws, *dims)."""
    import numpy as np

    shapes = {"mu": (data.n_cases,), "delta": (data.n_severities - 1, data.n_subgroups),
              "gamma": (data.n_severities, data.n_subgroups), "nu": (data.n_observers, data.n_subgroups),
              "b": (data.n_subgroups,)}
    draws = values[1:]  # row 0 is the approximation's mean (PyStan 2 returned it apart, as mean_pars)
    sites = {name: np.full((1, draws.shape[0], *shape), np.nan) for name, shape in shapes.items()}
    for column, name in enumerate(names):
        site, *index = name.split(".")
        if site in sites:
            sites[site][(0, slice(None), *(int(i) - 1 for i in index))] = draws[:, column]
    missing = [name for name, array in sites.items() if np.isnan(array).any()]
    if missing:
        raise SystemExit(f"error: Stan's output lacks columns of {', '.join(missing)}")
    return sites


def stan_posterior(prefix: Path, data, seed: int):
    """One Stan fit as a perceptiongap posterior, Stan's run recorded in its attributes."""
    import numpy as np
    import pandas as pd

    from perceptiongap.model import pareto_k_hat

    summary = json.loads(prefix.with_suffix(".json").read_text())
    names, values = read_stan_draws(prefix)
    trace = pd.read_csv(prefix.with_suffix(".elbo.csv"))
    log_p, log_g = values[1:, names.index("log_p__")], values[1:, names.index("log_g__")]
    finite = np.isfinite(log_p)
    counts = summary["counts"]
    settings = summary["settings"]
    attrs = {
        "eta": float(summary["eta"]), "iterations": int(summary["iterations"]),
        "converged": int(summary["iterations"] < settings["max_iterations"]),
        "elbo_iteration": trace["iteration"].to_numpy(), "elbo": trace["elbo"].to_numpy(),
        "elbo_draws_dropped": trace["elbo_draws_dropped"].to_numpy(),
        "tol_rel_obj": settings["tol_rel_obj"], "max_iterations": settings["max_iterations"],
        # log_g__ is Stan's -|z|^2 / 2 of each draw; log q differs from it by a constant, which
        # Pareto k-hat ignores. Draws whose log density is -inf are left out of k-hat and counted.
        "pareto_k": pareto_k_hat(log_p[finite], log_g[finite]) if finite.sum() > 10 else float("nan"),
        "output_draws_nonfinite_log_p": int((~finite).sum()),
        "main_elbo_draws_dropped": counts["main"]["double_nonfinite"],
        "main_gradient_draws_rejected": counts["main"]["var_calls"] - int(summary["iterations"]),
        "adapt_elbo_draws_dropped": counts["adapt"]["double_nonfinite"],
        "adapt_gradient_draws_nonfinite": counts["adapt"]["var_nonfinite_value"],
        "stan_seconds": summary["seconds"], "stan_version": "2.35.0 (" + HTTPSTAN + ")",
    }
    return to_inference_data_function()(data, stan_sites(names, values, data), inference=STAN, seed=seed,
                                        attrs=attrs)


def run(args: argparse.Namespace) -> None:
    """Stan's ADVI for every (group, seed) not yet on disk, `--jobs` fits at a time."""
    from perceptiongap.model import save_posterior

    out = args.out
    seeds = parse_seeds(args.seeds)
    all_data = release_model_data(args.groups)
    (out / "data").mkdir(parents=True, exist_ok=True)
    jobs = []
    for group, data in all_data.items():
        data_path = out / "data" / f"{group}.json"
        if not data_path.exists():
            data_path.write_text(json.dumps(stan_data(data)))
        for seed in seeds:
            if not posterior_path(out, STAN, group, seed).exists():
                jobs.append((group, seed, data_path))
    driver_missing = [model for model in MODELS if not driver_path(model).exists()]
    if jobs and driver_missing:
        raise SystemExit(f"error: {BUILD}: no driver for {', '.join(driver_missing)}; run `oracle.py build`")
    log(f"{len(jobs)} Stan fits to run ({len(all_data) * len(seeds) - len(jobs)} already done), {args.jobs} at a time")

    def fit(job):
        group, seed, data_path = job
        prefix = out / "fits" / group / f"seed{seed}"
        prefix.parent.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        result = subprocess.run([str(driver_path(model_of(all_data[group]))), str(data_path), str(seed), str(prefix)],
                                capture_output=True, text=True)
        return job, prefix, result.returncode, time.perf_counter() - start, result.stderr

    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
        for done, ((group, seed, _), prefix, code, seconds, stderr) in enumerate(pool.map(fit, jobs), 1):
            if code != 0:
                log(f"[{done}/{len(jobs)}] {group} seed {seed}: Stan failed (exit {code}), see {prefix}.log {stderr}")
                continue
            posterior = stan_posterior(prefix, all_data[group], seed)
            save_posterior(posterior, posterior_path(out, STAN, group, seed))
            if not args.keep_draws:
                prefix.with_suffix(".draws").unlink()  # kept in the netCDF posterior
            attrs = posterior.posterior.attrs
            log(f"[{done}/{len(jobs)}] {group} seed {seed}: {seconds:.0f} s, eta {attrs['eta']:g}, "
                f"stop {attrs['iterations']}, ELBO draws dropped {attrs['main_elbo_draws_dropped']}, "
                f"gradient draws rejected {attrs['main_gradient_draws_rejected']} "
                f"(elapsed {time.perf_counter() - started:.0f} s)")
    fits = fits_table(out, STAN, all_data, seeds)
    fits.to_csv(out / "fits.csv", index=False)
    per_seed = per_seed_tables(out, STAN, list(all_data), seeds)
    per_seed.to_csv(out / "per_seed.csv", index=False)
    log(f"wrote {out / 'fits.csv'} ({len(fits)} fits) and {out / 'per_seed.csv'}")


def posterior_path(root: Path, inference: str, group: str, seed: int) -> Path:
    return root / "posteriors" / inference / group / f"seed{seed}.nc"


FIT_COLUMNS = ("eta", "iterations", "converged", "pareto_k", "main_elbo_draws_dropped", "main_gradient_draws_rejected",
               "adapt_elbo_draws_dropped", "adapt_gradient_draws_nonfinite", "output_draws_nonfinite_log_p",
               "stan_seconds", "seconds")


def fits_table(root: Path, inference: str, all_data: dict, seeds) -> "pd.DataFrame":
    """One row per fit on disk: group, seed and the run's attributes (NaN where a method lacks one)."""
    import pandas as pd

    from perceptiongap.model import load_posterior

    rows = []
    for group in all_data:
        for seed in seeds:
            path = posterior_path(root, inference, group, seed)
            if path.exists():
                attrs = load_posterior(path).posterior.attrs
                rows.append({"inference": inference, "observer_group": group, "seed": seed,
                             **{column: attrs.get(column) for column in FIT_COLUMNS}})
    return pd.DataFrame(rows)


# --- check ---------------------------------------------------------------------------------


def check(args: argparse.Namespace) -> None:
    """Our log density (double precision) at Stan's own draws against Stan's `log_p__`.

    An end-to-end check of the data and of the mapping of Stan's columns onto our parameters: both
    must agree to rounding wherever Stan's value is finite.
    """
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import numpy as np
    from jax.flatten_util import ravel_pytree

    from perceptiongap.model.density import device_data, flat_model_for
    from perceptiongap.model.hierarchical import LATENT_SITES

    seeds = parse_seeds(args.seeds)
    all_data = release_model_data(args.groups)
    worst = 0.0
    for group, data in all_data.items():
        model = flat_model_for(data)
        arrays = device_data(data)
        for seed in seeds:
            prefix = args.stan / "fits" / group / f"seed{seed}"
            if not prefix.with_suffix(".draws").exists():
                raise SystemExit(f"error: {prefix}.draws: missing (kept only with `run --keep-draws`)")
            names, values = read_stan_draws(prefix)
            sites = stan_sites(names, values, data)
            rows = np.arange(0, values.shape[0] - 1, max(1, (values.shape[0] - 1) // args.draws))[: args.draws]
            flat = np.stack([np.asarray(ravel_pytree({site: jnp.asarray(sites[site][0, i]) for site in LATENT_SITES})[0])
                             for i in rows])
            ours = np.asarray(jax.vmap(model.log_density, in_axes=(0, None))(jnp.asarray(flat), arrays))
            stan = values[1:, names.index("log_p__")][rows]
            finite = np.isfinite(stan)
            difference = np.abs(ours[finite] - stan[finite])
            relative = difference / np.abs(stan[finite])
            worst = max(worst, float(relative.max(initial=0.0)))
            log(f"{group} seed {seed}: {finite.sum()} of {len(rows)} draws finite under Stan; "
                f"|ours - Stan| up to {difference.max(initial=0.0):.2e} (relative {relative.max(initial=0.0):.1e}); "
                f"ours at Stan's -inf draws: {ours[~finite][:5]}")
    log(f"largest relative difference {worst:.1e}")


# --- compare ---------------------------------------------------------------------------------


def fit_ours(args: argparse.Namespace, all_data: dict, seeds) -> None:
    """perceptiongap's `stan-advi` on the same groups and seeds (kept on disk unless --refit)."""
    from perceptiongap.model import fit_stan_advi, save_posterior

    for group, data in all_data.items():
        for seed in seeds:
            path = posterior_path(args.ours, OURS, group, seed)
            if path.exists() and not args.refit:
                continue
            start = time.perf_counter()
            posterior = fit_stan_advi(data, seed)
            posterior.posterior.attrs["seconds"] = time.perf_counter() - start
            save_posterior(posterior, path)
            attrs = posterior.posterior.attrs
            log(f"{OURS} {group} seed {seed}: {attrs['seconds']:.1f} s, eta {attrs['eta']:g}, "
                f"stop {attrs['iterations']}")


def per_seed_tables(root: Path, inference: str, groups, seeds) -> "pd.DataFrame":
    """fit_table of every posterior on disk, with its seed."""
    import pandas as pd

    from perceptiongap.analysis import fit_table
    from perceptiongap.model import load_posterior

    tables = []
    for group in groups:
        for seed in seeds:
            path = posterior_path(root, inference, group, seed)
            if path.exists():
                tables.append(fit_table(load_posterior(path)).assign(seed=seed))
    if not tables:
        raise SystemExit(f"error: {root}: no {inference} posteriors of groups {', '.join(groups)}")
    return pd.concat(tables, ignore_index=True)


def stan_results(folder: Path, name: str, groups, seeds, compute) -> "pd.DataFrame":
    """Stan's table `name` as `run` wrote it (so that comparing needs no Stan posterior), else computed."""
    import pandas as pd

    path = folder / name
    if path.exists():
        table = pd.read_csv(path)
        table = table[table["observer_group"].isin(groups) & table["seed"].isin(seeds)]
        if set(zip(table["observer_group"], table["seed"])) == {(g, s) for g in groups for s in seeds}:
            return table.reset_index(drop=True)
    return compute()


def comparison(per_seed: "pd.DataFrame") -> "pd.DataFrame":
    """Per group x subgroup x severity: Stan vs ours, median separability, fraction significant, median E[gamma]."""
    import pandas as pd

    from perceptiongap.analysis.summary import combine_fits

    blocks = [combine_fits([table.drop(columns="seed")]) for _, table in per_seed.groupby(
        ["inference", "observer_group"], sort=False)]
    combined = pd.concat(blocks, ignore_index=True)
    key = ["observer_group", "subgroup", "severity_mm"]
    columns = {"separability_mean": "separability", "frac_separability_significant": "frac_drop_significant",
               "confidence_mean": "gamma", "p_separability_drop": "p_drop", "fits": "fits"}
    sides = []
    for inference, label in ((STAN, "stan"), (OURS, "ours")):
        side = combined[combined["inference"] == inference].set_index(key)[list(columns)].rename(
            columns={name: f"{new}_{label}" for name, new in columns.items()})
        sides.append(side)
    table = sides[0].join(sides[1], how="outer").reset_index()
    table["separability_diff"] = table["separability_ours"] - table["separability_stan"]
    table["frac_diff"] = table["frac_drop_significant_ours"] - table["frac_drop_significant_stan"]
    table["gamma_diff"] = table["gamma_ours"] - table["gamma_stan"]
    perturbed = table["severity_mm"] > 0
    table["goal_met"] = (table["separability_diff"].abs() <= 0.05) & (
        (table["frac_diff"].abs() <= 0.2) | ~perturbed)
    order = {group: i for i, group in enumerate(GROUPS)}
    table = table.sort_values(["observer_group", "subgroup", "severity_mm"],
                              key=lambda c: c.map(order) if c.name == "observer_group" else c, kind="stable")
    return table.reset_index(drop=True)


def stops(fits: "pd.DataFrame") -> "pd.DataFrame":
    """Per method and group: stop iteration (median, range), the etas chosen, Stan's dropped draws."""
    import pandas as pd

    rows = []
    for (inference, group), rows_of in fits.groupby(["inference", "observer_group"], sort=False):
        etas = rows_of["eta"].value_counts().sort_index()
        row = {"inference": inference, "observer_group": group, "fits": len(rows_of),
               "stop_median": rows_of["iterations"].median(), "stop_min": rows_of["iterations"].min(),
               "stop_max": rows_of["iterations"].max(),
               "eta": ", ".join(f"{eta:g} x{n}" for eta, n in etas.items()),
               "pareto_k_median": rows_of["pareto_k"].median()}
        for column in ("main_elbo_draws_dropped", "main_gradient_draws_rejected"):
            if rows_of[column].notna().any():
                row[f"{column}_median"] = rows_of[column].median()
                row[f"{column}_max"] = rows_of[column].max()
        rows.append(row)
    return pd.DataFrame(rows)


def compare(args: argparse.Namespace) -> None:
    import pandas as pd

    seeds = parse_seeds(args.seeds)
    args.ours = args.ours or args.stan / "ours"
    all_data = release_model_data(args.groups)
    fit_ours(args, all_data, seeds)
    per_seed = pd.concat([stan_results(args.stan, "per_seed.csv", args.groups, seeds,
                                       lambda: per_seed_tables(args.stan, STAN, args.groups, seeds)),
                          per_seed_tables(args.ours, OURS, args.groups, seeds)], ignore_index=True)
    table = comparison(per_seed)
    fits = pd.concat([stan_results(args.stan, "fits.csv", args.groups, seeds,
                                   lambda: fits_table(args.stan, STAN, all_data, seeds)),
                      fits_table(args.ours, OURS, all_data, seeds)], ignore_index=True)
    stop_table = stops(fits)
    args.ours.mkdir(parents=True, exist_ok=True)
    per_seed.to_csv(args.ours / "per_seed.csv", index=False)
    table.to_csv(args.ours / "comparison.csv", index=False)
    fits.to_csv(args.ours / "fits.csv", index=False)
    stop_table.to_csv(args.ours / "stops.csv", index=False)
    pd.set_option("display.width", 250)
    pd.set_option("display.max_rows", 500)
    pd.set_option("display.max_columns", 50)
    shown = table[table["severity_mm"] > 0][[
        "observer_group", "subgroup", "severity_mm", "separability_stan", "separability_ours", "separability_diff",
        "frac_drop_significant_stan", "frac_drop_significant_ours", "gamma_stan", "gamma_ours", "goal_met"]]
    print(shown.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    print()
    print(stop_table.to_string(index=False, float_format=lambda x: f"{x:.2f}"))
    met = table.loc[table["severity_mm"] > 0, "goal_met"]
    print(f"\ngoal (|separability diff| <= 0.05 and |fraction diff| <= 0.2) met in {int(met.sum())} of {len(met)} "
          f"group x subgroup x severity rows; tables in {args.ours}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    command = commands.add_parser("build", help="install httpstan into the oracle's venv and compile both models")
    command.add_argument("--jobs", type=int, default=2, help="models compiled at once (default 2)")
    command.set_defaults(function=build)
    for name, function, help_text in (("run", run, "run Stan's ADVI per group and seed"),
                                      ("compare", compare, "fit our stan-advi on the same seeds and compare")):
        command = commands.add_parser(name, help=help_text)
        command.add_argument("--seeds", default="0-9", help="seeds, e.g. 0-9 or 0,2,5 (default 0-9)")
        command.add_argument("--groups", default=",".join(GROUPS),
                             type=lambda text: [g for g in text.split(",") if g], help="observer groups")
        command.set_defaults(function=function)
    run_command, compare_command = commands.choices["run"], commands.choices["compare"]
    run_command.add_argument("--out", type=Path, required=True, help="folder for Stan's fits and posteriors")
    run_command.add_argument("--jobs", type=int, default=2, help="Stan fits at once (default 2)")
    run_command.add_argument("--keep-draws", action="store_true",
                             help="keep Stan's raw output (for `check`) besides the netCDF posterior")
    command = commands.add_parser("check", help="our log density at Stan's draws against Stan's log_p__")
    command.add_argument("--stan", type=Path, required=True, help="the folder `run --keep-draws` wrote")
    command.add_argument("--seeds", default="0")
    command.add_argument("--groups", default=",".join(GROUPS), type=lambda text: [g for g in text.split(",") if g])
    command.add_argument("--draws", type=int, default=50, help="draws compared per fit (default 50)")
    command.set_defaults(function=check)
    compare_command.add_argument("--stan", type=Path, required=True, help="the folder `run --out` wrote")
    compare_command.add_argument("--ours", type=Path, default=None, help="folder for our fits and the tables "
                                 "(default STAN/ours)")
    compare_command.add_argument("--refit", action="store_true", help="refit ours even where a posterior exists")
    args = parser.parse_args()
    if shutil.which("g++") is None and args.command == "build":
        raise SystemExit("error: g++ not found (the build needs a C++17 compiler)")
    args.function(args)


if __name__ == "__main__":
    main()
