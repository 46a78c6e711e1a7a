"""Stan itself as the oracle for `stan-advi` (issue 10): Stan's own mean-field ADVI on the release.

Builds Stan's mean-field ADVI for the release's two models from PyPI only (the `httpstan` wheel
ships Stan's C++ headers, Eigen, Boost, Sundials, TBB and `stanc`), runs it per observer group and
seed with PyStan 2's `vb` defaults (what the release called), stores each fit as a posterior in
perceptiongap's format, and compares the per-seed tables of `perceptiongap.analysis.fit_table`
with those of perceptiongap's own `stan-advi` on the same data and seeds.

Run from the repository root with the project's virtual environment (`make install`):

    .venv/bin/python benchmarks/stan_oracle/oracle.py build
    .venv/bin/python benchmarks/stan_oracle/oracle.py run --out DIR [--seeds 0-19] [--jobs 2] [--keep-draws]
    .venv/bin/python benchmarks/stan_oracle/oracle.py compare --stan DIR [--seeds 0-19] [--ours DIR2] [--refit]
    .venv/bin/python benchmarks/stan_oracle/oracle.py noise --stan DIR [--seeds 0-9] [--other-seeds 10-19]
    .venv/bin/python benchmarks/stan_oracle/oracle.py check --stan DIR --seeds 0    (needs run --keep-draws)
    .venv/bin/python benchmarks/stan_oracle/oracle.py replay --out DIR3 --group gmic --seed 6

`build` makes its own virtual environment `benchmarks/stan_oracle/.venv` (git-ignored), installs
the pinned `httpstan` wheel there (nothing but its files is used), translates the two Stan programs
(`radiologists.stan`, `networks.stan`) with its `stanc` and compiles the driver `driver.cpp` with
g++ into `benchmarks/stan_oracle/build/`. `run` writes, under `--out`: `data/<group>.json` (the
model's arrays from `import_release` + `build_model_data`, as Stan reads them),
`fits/<group>/seed<k>.*` (Stan's ELBO trace with its dropped draws, counts, log),
`posteriors/stan-oracle/<group>/seed<k>.nc`, `fits.csv` and `per_seed.csv` (fit_table of every
fit); it is resumable (fits already on disk are kept). `compare` fits perceptiongap's `stan-advi` on
the same groups and seeds (kept under `--ours`, default `<stan>/ours`; `--refit` after changing
`stan-advi`) and writes `per_seed.csv`, `comparison.csv` (with bootstrap intervals over seeds),
`fits.csv` and `stops.csv` there, printing the comparison; it needs only Stan's `per_seed.csv` and
`fits.csv`, so `--stan benchmarks/stan_oracle/reference` (the 100 fits measured when this was
written) works without building Stan. `noise` is the same comparison between two sets of Stan's own
seeds: how far apart chance alone puts two runs of the same procedure. `check` compares our log
density and gradient with Stan's at Stan's draws; `replay` re-runs our update rule on the points at
which Stan evaluated its gradients (see STAN_ADVI_RULES.md, section 12). Nothing here runs in the
test suite: the build takes minutes.
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

import numpy as np
import pandas as pd

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
        built = driver_path(model).with_suffix(".new")
        command = ["g++", *CXXFLAGS, f'-DORACLE_MODEL_HPP="{cpp}"', f"-I{include}", str(HERE / "driver.cpp"),
                   "-o", str(built), f"-L{package / 'lib'}", f"-Wl,-rpath,{package / 'lib'}", "-ltbb"]
        subprocess.run(command, check=True)
        os.replace(built, driver_path(model))  # a rename: fits running the old binary keep it
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

    names = prefix.with_suffix(".names").read_text().split()
    values = np.fromfile(prefix.with_suffix(".draws"), dtype=np.float64).reshape(-1, len(names))
    return names, values


def stan_sites(names, values, data) -> dict:
    """Stan's columns `mu.n`, `delta.s.g`, `gamma.s.g`, `nu.r.g`, `b.g` -> our sites (1, draws, *dims)."""

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


def fits_table(root: Path, inference: str, all_data: dict, seeds) -> pd.DataFrame:
    """One row per fit on disk: group, seed and the run's attributes (NaN where a method lacks one)."""

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
    """Our log density and gradient (double precision) against Stan's, at Stan's own draws.

    An end-to-end check of the data, of the mapping of Stan's columns onto our parameters and of our
    density's gradient: at every draw both must agree to rounding. Stan's values come from the
    driver's `--gradient` mode (Stan's log_prob_grad, all constants kept).
    """
    import tempfile

    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    from jax.flatten_util import ravel_pytree

    from perceptiongap.model.density import device_data, flat_model_for
    from perceptiongap.model.hierarchical import LATENT_SITES

    seeds = parse_seeds(args.seeds)
    all_data = release_model_data(args.groups)
    worst_value, worst_gradient = 0.0, 0.0
    for group, data in all_data.items():
        model = flat_model_for(data)
        arrays = device_data(data)
        value_and_grad = jax.jit(jax.vmap(jax.value_and_grad(model.log_density), in_axes=(0, None)))
        for seed in seeds:
            prefix = args.stan / "fits" / group / f"seed{seed}"
            if not prefix.with_suffix(".draws").exists():
                raise SystemExit(f"error: {prefix}.draws: missing (kept only with `run --keep-draws`)")
            names, values = read_stan_draws(prefix)
            rows = 1 + np.linspace(0, values.shape[0] - 2, args.draws).astype(int)
            columns = [i for i, name in enumerate(names) if name.split(".")[0] in LATENT_SITES]
            with tempfile.TemporaryDirectory() as tmp:
                points, results = Path(tmp) / "points.f64", Path(tmp) / "results.f64"
                np.ascontiguousarray(values[np.ix_(rows, columns)]).tofile(points)
                data_path = args.stan / "data" / f"{group}.json"
                subprocess.run([str(driver_path(model_of(data))), "--gradient", str(data_path), str(points),
                                str(results)], check=True)
                stan = np.fromfile(results).reshape(len(rows), 1 + len(columns))
            sites = stan_sites(names, values, data)
            flat = np.stack([np.asarray(ravel_pytree({site: jnp.asarray(sites[site][0, row - 1])
                                                      for site in LATENT_SITES})[0]) for row in rows])
            ours_value, ours_flat_gradient = (np.asarray(x) for x in value_and_grad(jnp.asarray(flat), arrays))
            gradient_sites = jax.vmap(model.unravel)(jnp.asarray(ours_flat_gradient))
            ours_gradient = np.stack([np.asarray(gradient_sites[names[c].split(".")[0]])[
                (slice(None), *(int(i) - 1 for i in names[c].split(".")[1:]))] for c in columns], axis=1)
            finite = np.isfinite(stan[:, 0])
            value_error = np.abs(ours_value - stan[:, 0])[finite] / np.abs(stan[finite, 0])
            gradient_error = (np.abs(ours_gradient - stan[:, 1:]).max(axis=1)[finite]
                              / np.maximum(np.abs(stan[finite, 1:]).max(axis=1), 1.0))
            worst_value = max(worst_value, float(value_error.max(initial=0.0)))
            worst_gradient = max(worst_gradient, float(gradient_error.max(initial=0.0)))
            log(f"{group} seed {seed}: {finite.sum()} of {len(rows)} draws finite under Stan; relative difference "
                f"of the log density up to {value_error.max(initial=0.0):.1e}, of the gradient up to "
                f"{gradient_error.max(initial=0.0):.1e}; ours where Stan's is not finite: {ours_value[~finite][:5]}")
    log(f"largest relative difference: log density {worst_value:.1e}, gradient {worst_gradient:.1e}")


# --- replay ---------------------------------------------------------------------------------


def read_trace(path: Path):
    """The driver's ORACLE_TRACE records: (permutation, phase, autodiff, log density, points)."""

    raw = path.read_bytes()
    header = np.frombuffer(raw, dtype=np.int32, count=2)
    n = int(np.frombuffer(raw, dtype=np.float64, count=1, offset=8)[0])
    permutation = np.frombuffer(raw, dtype=np.float64, count=n, offset=16).astype(int)
    if header[0] != -1:
        raise SystemExit(f"error: {path}: not an ORACLE_TRACE file")
    record = np.dtype([("phase", np.int32), ("autodiff", np.int32), ("log_density", np.float64),
                       ("point", np.float64, (n,))])
    records = np.frombuffer(raw, dtype=record, offset=16 + 8 * n)
    return permutation, records


def replay(args: argparse.Namespace) -> None:
    """Re-run our update rule on the points at which Stan evaluated its gradients, and compare.

    Stan's gradient draw k is zeta_k = m_k + exp(omega_k) z_k. Starting from Stan's initial point
    and omega = 0, the replay recovers z_k = (zeta_k - m_k) / exp(omega_k) with *our* m_k and
    omega_k, computes the gradient at zeta_k with our density (double precision) and applies our
    update rule (the one `stan_advi.py` implements: s_1 = g_1^2, s_k = 0.9 s_(k-1) + 0.1 g_k^2,
    step eta / sqrt(k) * g / (1 + sqrt(s))). If the rules are the same, the replayed trajectory is
    Stan's: at every ELBO evaluation the mean of Stan's 100 finite ELBO draws plus our entropy
    equals Stan's ELBO, Stan's ELBO draws standardised with our m_k, omega_k are N(0, 1), and the
    final m equals Stan's first output row (the approximation's mean). Non-finite gradient draws
    are skipped, as Stan redraws them.
    """
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    from jax.flatten_util import ravel_pytree

    from perceptiongap.model.density import device_data, flat_model_for
    from perceptiongap.model.hierarchical import LATENT_SITES

    data = release_model_data([args.group])[args.group]
    model = flat_model_for(data)
    arrays = device_data(data)
    prefix = args.out / f"{args.group}_seed{args.seed}"
    trace_path = prefix.with_suffix(".trace")
    if not trace_path.exists() or args.rerun:
        args.out.mkdir(parents=True, exist_ok=True)
        data_path = args.out / f"{args.group}.json"
        data_path.write_text(json.dumps(stan_data(data)))
        subprocess.run([str(driver_path(model_of(data))), str(data_path), str(args.seed), str(prefix)], check=True,
                        env={**os.environ, "ORACLE_TRACE": str(trace_path)})
    permutation, records = read_trace(trace_path)
    names, values = read_stan_draws(prefix)
    summary = json.loads(prefix.with_suffix(".json").read_text())
    eta = float(summary["eta"])
    stan_elbo = pd.read_csv(prefix.with_suffix(".elbo.csv"))

    # Stan's unconstrained coordinate i is parameter column permutation[i]; map it onto our flat vector.
    parameter_names = [name for name in names[3:] if name.split(".")[0] in LATENT_SITES]
    shapes = {site: np.shape(value) for site, value in model.unravel(jnp.zeros(model.dim)).items()}
    ids = {site: np.arange(np.prod(shape, dtype=int)).reshape(shape) + offset for site, shape, offset in zip(
        shapes, shapes.values(), np.cumsum([0, *[np.prod(v, dtype=int) for v in shapes.values()]])[:-1])}
    flat_ids = np.asarray(ravel_pytree({site: jnp.asarray(v, dtype=float) for site, v in ids.items()})[0]).astype(int)
    position_of_id = np.argsort(flat_ids)

    def our_position(name: str) -> int:
        site, *index = name.split(".")
        return int(position_of_id[ids[site][tuple(int(i) - 1 for i in index)]])

    to_ours = np.array([our_position(parameter_names[column]) for column in permutation])  # stan coord -> ours
    gradient = jax.jit(jax.grad(model.log_density))

    def ours(point):
        flat = np.empty(model.dim)
        flat[to_ours] = point
        return flat

    initial = records[records["phase"] == 0][0]["point"]
    m, omega = ours(initial), np.zeros(model.dim)
    s_m, s_omega = np.zeros(model.dim), np.zeros(model.dim)
    k, skipped, elbo_values, elbo_z, rows = 0, 0, [], [], []
    for record in records[records["phase"] == 2]:
        zeta = ours(record["point"])
        if record["autodiff"]:
            if not np.isfinite(record["log_density"]):
                skipped += 1
                continue
            z = (zeta - m) / np.exp(omega)
            g = np.asarray(gradient(jnp.asarray(zeta), arrays))
            g_m, g_omega = g, g * z * np.exp(omega) + 1.0
            k += 1
            s_m = g_m**2 if k == 1 else 0.9 * s_m + 0.1 * g_m**2
            s_omega = g_omega**2 if k == 1 else 0.9 * s_omega + 0.1 * g_omega**2
            m = m + eta / np.sqrt(k) * g_m / (1.0 + np.sqrt(s_m))
            omega = omega + eta / np.sqrt(k) * g_omega / (1.0 + np.sqrt(s_omega))
        else:
            elbo_z.append((zeta - m) / np.exp(omega))
            if np.isfinite(record["log_density"]):
                elbo_values.append(record["log_density"])
            if len(elbo_values) == 100:
                entropy = 0.5 * model.dim * (1.0 + np.log(2.0 * np.pi)) + omega.sum()
                z = np.concatenate(elbo_z)
                rows.append({"iteration": k, "elbo_replayed": np.mean(elbo_values) + entropy,
                             "z_mean": z.mean(), "z_sd": z.std(), "skipped_gradient_draws": skipped})
                elbo_values, elbo_z = [], []
    table = pd.DataFrame(rows).merge(stan_elbo[["iteration", "elbo"]].rename(columns={"elbo": "elbo_stan"}),
                                     on="iteration", how="left")
    table["relative_difference"] = (table["elbo_replayed"] - table["elbo_stan"]).abs() / table["elbo_stan"].abs()
    pd.set_option("display.width", 200)
    print(table.to_string(index=False, float_format=lambda x: f"{x:.6g}"))
    stan_mean = np.empty(model.dim)
    for column, name in enumerate(names):
        if name.split(".")[0] in LATENT_SITES:
            stan_mean[our_position(name)] = values[0, column]
    difference = np.abs(m - stan_mean)
    print(f"final mean: replayed vs Stan's first output row, largest difference {difference.max():.2e} "
          f"(largest |m| {np.abs(stan_mean).max():.2f}); {k} iterations replayed, Stan stopped at "
          f"{summary['iterations']}; {skipped} gradient draws skipped as non-finite")


# --- compare ---------------------------------------------------------------------------------


def fit_ours(args: argparse.Namespace, all_data: dict, seeds, label: str) -> None:
    """perceptiongap's `stan-advi` on the same groups and seeds (kept on disk unless --refit)."""
    from perceptiongap.model import fit_stan_advi, save_posterior

    for group, data in all_data.items():
        for seed in seeds:
            path = posterior_path(args.ours, label, group, seed)
            if path.exists() and not args.refit:
                continue
            start = time.perf_counter()
            posterior = fit_stan_advi(data, seed)
            posterior.posterior.attrs["seconds"] = time.perf_counter() - start
            posterior.posterior.attrs["inference"] = label
            save_posterior(posterior, path)
            attrs = posterior.posterior.attrs
            log(f"{label} {group} seed {seed}: {attrs['seconds']:.1f} s, eta {attrs['eta']:g}, "
                f"stop {attrs['iterations']}")


def per_seed_tables(root: Path, inference: str, groups, seeds) -> pd.DataFrame:
    """fit_table of every posterior on disk, with its seed."""

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


def stan_results(folder: Path, name: str, groups, seeds, compute) -> pd.DataFrame:
    """Stan's table `name` as `run` wrote it (so that comparing needs no Stan posterior), else computed."""

    path = folder / name
    if path.exists():
        table = pd.read_csv(path)
        table = table[table["observer_group"].isin(groups) & table["seed"].isin(seeds)]
        if set(zip(table["observer_group"], table["seed"])) == {(g, s) for g in groups for s in seeds}:
            return table.reset_index(drop=True)
    return compute()


def comparison(per_seed: pd.DataFrame, ours: str = OURS) -> pd.DataFrame:
    """Per group x subgroup x severity: Stan vs ours, median separability, fraction significant, median E[gamma]."""

    from perceptiongap.analysis.summary import combine_fits

    blocks = [combine_fits([table.drop(columns="seed")]) for _, table in per_seed.groupby(
        ["inference", "observer_group"], sort=False)]
    combined = pd.concat(blocks, ignore_index=True)
    key = ["observer_group", "subgroup", "severity_mm"]
    columns = {"separability_mean": "separability", "frac_separability_significant": "frac_drop_significant",
               "confidence_mean": "gamma", "p_separability_drop": "p_drop", "fits": "fits"}
    sides = []
    for inference, label in ((STAN, "stan"), (ours, "ours")):
        side = combined[combined["inference"] == inference].set_index(key)[list(columns)].rename(
            columns={name: f"{new}_{label}" for name, new in columns.items()})
        sides.append(side)
    table = sides[0].join(sides[1], how="outer").reset_index()
    table["separability_diff"] = table["separability_ours"] - table["separability_stan"]
    table["frac_diff"] = table["frac_drop_significant_ours"] - table["frac_drop_significant_stan"]
    table["gamma_diff"] = table["gamma_ours"] - table["gamma_stan"]
    table = table.merge(seed_noise(per_seed, ours), on=key, how="left")
    perturbed = table["severity_mm"] > 0
    table["goal_met"] = (table["separability_diff"].abs() <= 0.05) & (
        (table["frac_diff"].abs() <= 0.2) | ~perturbed)
    order = {group: i for i, group in enumerate(GROUPS)}
    table = table.sort_values(["observer_group", "subgroup", "severity_mm"],
                              key=lambda c: c.map(order) if c.name == "observer_group" else c, kind="stable")
    return table.reset_index(drop=True)


def seed_noise(per_seed: pd.DataFrame, ours: str, n_resamples: int = 4000, level: float = 0.9) -> pd.DataFrame:
    """How much of a difference between the two methods' seed medians is chance: bootstrap intervals.

    Seeds are resampled with replacement, each method separately (their seeds are unrelated random
    streams), and the difference of medians (separability, E[gamma]) and of the fraction of seeds
    with p < 0.05 is recomputed; the columns ``*_lo`` / ``*_hi`` hold the central ``level`` interval.
    An interval that contains 0 means the seeds cannot tell the methods apart there.
    """

    rng = np.random.default_rng(20240610)
    key = ["observer_group", "subgroup", "severity_mm"]
    rows = []
    for values, block in per_seed.groupby(key, sort=False):
        row = dict(zip(key, values))
        stan, mine = block[block["inference"] == STAN], block[block["inference"] == ours]
        if stan.empty or mine.empty:
            continue
        for column, name, statistic in (("separability_mean", "separability_diff", np.median),
                                        ("confidence_mean", "gamma_diff", np.median),
                                        ("p_separability_drop", "frac_diff", lambda x, axis: np.mean(x < 0.05, axis))):
            a, b = stan[column].to_numpy(dtype=float), mine[column].to_numpy(dtype=float)
            if np.isnan(a).all() or np.isnan(b).all():
                continue
            differences = (statistic(b[rng.integers(0, len(b), (n_resamples, len(b)))], axis=1)
                           - statistic(a[rng.integers(0, len(a), (n_resamples, len(a)))], axis=1))
            row[f"{name}_lo"], row[f"{name}_hi"] = np.quantile(differences, [(1 - level) / 2, (1 + level) / 2])
        rows.append(row)
    return pd.DataFrame(rows)


def stops(fits: pd.DataFrame) -> pd.DataFrame:
    """Per method and group: stop iteration (median, range), the etas chosen, Stan's dropped draws."""

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

    seeds = parse_seeds(args.seeds)
    label = OURS + ("-x64" if args.x64 else "")
    if args.x64:  # a diagnostic: is float32 part of the difference? (the project's stan-advi runs in float32)
        import jax

        jax.config.update("jax_enable_x64", True)
    args.ours = args.ours or args.stan / ("ours-x64" if args.x64 else "ours")
    all_data = release_model_data(args.groups)
    fit_ours(args, all_data, seeds, label)
    per_seed = pd.concat([stan_results(args.stan, "per_seed.csv", args.groups, seeds,
                                       lambda: per_seed_tables(args.stan, STAN, args.groups, seeds)),
                          per_seed_tables(args.ours, label, args.groups, seeds)], ignore_index=True)
    table = comparison(per_seed, label)
    fits = pd.concat([stan_results(args.stan, "fits.csv", args.groups, seeds,
                                   lambda: fits_table(args.stan, STAN, all_data, seeds)),
                      fits_table(args.ours, label, all_data, seeds)], ignore_index=True)
    stop_table = stops(fits)
    write_and_print(args.ours, per_seed, table, fits, stop_table)


def write_and_print(folder: Path, per_seed, table, fits, stop_table) -> None:
    """Write the four tables into ``folder`` and print the comparison and the stops."""

    folder.mkdir(parents=True, exist_ok=True)
    per_seed.to_csv(folder / "per_seed.csv", index=False)
    table.to_csv(folder / "comparison.csv", index=False)
    fits.to_csv(folder / "fits.csv", index=False)
    stop_table.to_csv(folder / "stops.csv", index=False)
    pd.set_option("display.width", 250)
    pd.set_option("display.max_rows", 500)
    pd.set_option("display.max_columns", 50)
    shown = table[table["severity_mm"] > 0].copy()
    for name in ("separability_diff", "frac_diff"):
        shown[f"{name} (90%)"] = [f"{v:+.2f} [{lo:+.2f}, {hi:+.2f}]" for v, lo, hi in
                                  zip(shown[name], shown[f"{name}_lo"], shown[f"{name}_hi"])]
    shown = shown.rename(columns={"observer_group": "group", "severity_mm": "mm", "separability_stan": "sep_stan",
                                  "separability_ours": "sep_ours", "frac_drop_significant_stan": "sig_stan",
                                  "frac_drop_significant_ours": "sig_ours"})
    print(shown[["group", "subgroup", "mm", "sep_stan", "sep_ours", "separability_diff (90%)", "sig_stan", "sig_ours",
                 "frac_diff (90%)", "gamma_stan", "gamma_ours", "goal_met"]].to_string(
        index=False, float_format=lambda x: f"{x:.2f}"))
    print()
    print(stop_table.to_string(index=False, float_format=lambda x: f"{x:.2f}"))
    perturbed = table[table["severity_mm"] > 0]
    apart = ((perturbed["separability_diff_lo"] > 0) | (perturbed["separability_diff_hi"] < 0)
             | (perturbed["frac_diff_lo"] > 0) | (perturbed["frac_diff_hi"] < 0))
    print(f"\ngoal (|separability diff| <= 0.05 and |fraction diff| <= 0.2) met in {int(perturbed['goal_met'].sum())} "
          f"of {len(perturbed)} group x subgroup x severity rows; the seeds tell the two apart (a 90% interval "
          f"excluding 0) in {int(apart.sum())} of them; tables in {folder}")


def noise(args: argparse.Namespace) -> None:
    """Stan against Stan: the same comparison between two disjoint sets of Stan's own seeds.

    What the goal's thresholds mean at this number of seeds: two sets of runs of the same procedure
    differ by this much by chance alone. The second set is labelled "ours" in the printed table.
    """

    first, second = parse_seeds(args.seeds), parse_seeds(args.other_seeds)
    if set(first) & set(second):
        raise SystemExit("error: --seeds and --other-seeds must not overlap")
    both = first + second
    per_seed = stan_results(args.stan, "per_seed.csv", args.groups, both,
                            lambda: per_seed_tables(args.stan, STAN, args.groups, both))
    fits = pd.read_csv(args.stan / "fits.csv")
    fits = fits[fits["observer_group"].isin(args.groups) & fits["seed"].isin(both)].copy()
    other = STAN + " (other seeds)"
    for table in (per_seed, fits):
        table.loc[table["seed"].isin(second), "inference"] = other
    table = comparison(per_seed, other)
    write_and_print(args.stan / "noise", per_seed, table, fits, stops(fits))


def group_list(text: str) -> list[str]:
    """--groups: observer groups of the release, comma-separated."""
    groups = [group for group in text.split(",") if group]
    unknown = [group for group in groups if group not in GROUPS]
    if unknown or not groups:
        raise argparse.ArgumentTypeError(f"unknown group(s) {', '.join(unknown) or '(none)'}; "
                                         f"choose from {', '.join(GROUPS)}")
    return groups


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
                             type=group_list, help="observer groups")
        command.set_defaults(function=function)
    run_command, compare_command = commands.choices["run"], commands.choices["compare"]
    run_command.add_argument("--out", type=Path, required=True, help="folder for Stan's fits and posteriors")
    run_command.add_argument("--jobs", type=int, default=2, help="Stan fits at once (default 2)")
    run_command.add_argument("--keep-draws", action="store_true",
                             help="keep Stan's raw output (for `check`) besides the netCDF posterior")
    command = commands.add_parser("check", help="our log density and gradient against Stan's, at Stan's draws")
    command.add_argument("--stan", type=Path, required=True, help="the folder `run --keep-draws` wrote")
    command.add_argument("--seeds", default="0")
    command.add_argument("--groups", default=",".join(GROUPS), type=group_list)
    command.add_argument("--draws", type=int, default=50, help="draws compared per fit (default 50)")
    command.set_defaults(function=check)
    command = commands.add_parser("noise", help="the same comparison between two disjoint sets of Stan's seeds")
    command.add_argument("--stan", type=Path, required=True, help="the folder `run --out` wrote")
    command.add_argument("--seeds", default="0-9")
    command.add_argument("--other-seeds", default="10-19")
    command.add_argument("--groups", default=",".join(GROUPS), type=group_list)
    command.set_defaults(function=noise)
    command = commands.add_parser("replay", help="re-run our update rule on the points of one traced Stan fit")
    command.add_argument("--group", default="gmic", choices=GROUPS)
    command.add_argument("--seed", type=int, default=0)
    command.add_argument("--out", type=Path, required=True, help="folder for the traced fit (about 30 MB)")
    command.add_argument("--rerun", action="store_true", help="run Stan again even where a trace exists")
    command.set_defaults(function=replay)
    compare_command.add_argument("--stan", type=Path, required=True, help="the folder `run --out` wrote")
    compare_command.add_argument("--ours", type=Path, default=None, help="folder for our fits and the tables "
                                 "(default STAN/ours)")
    compare_command.add_argument("--refit", action="store_true", help="refit ours even where a posterior exists")
    compare_command.add_argument("--x64", action="store_true", help="run our stan-advi in double precision "
                                 "(a diagnostic; default folder STAN/ours-x64)")
    args = parser.parse_args()
    if shutil.which("g++") is None and args.command == "build":
        raise SystemExit("error: g++ not found (the build needs a C++17 compiler)")
    args.function(args)


if __name__ == "__main__":
    main()
