"""Where `stan-advi` stops against where Stan's ADVI stops, over many seeds (issue 10, the remaining difference).

Our `stan-advi` follows Stan's procedure rule for rule (STAN_ADVI_RULES.md), so any difference in
where the two stop must come from what is random. This script separates the two kinds of
randomness: a *distribution* that differs (which shifts stop iterations systematically) from
*streams* that differ (which does not, and which two sets of Stan's own seeds show as well).

    python benchmarks/stan_oracle/stop_distribution.py fit --group gmic --seeds 0-99 --out ours.jsonl
    python benchmarks/stan_oracle/stop_distribution.py inits --group gmic --seeds 0-39 --out INITS \
        --data RUN/data/gmic.json --names RUN/fits/gmic/seed0.names [--driver build/driver_networks]
    python benchmarks/stan_oracle/stop_distribution.py fit --group gmic --seeds 0-39 --stan-inits INITS \
        --out ours_from_stan_inits.jsonl
    python benchmarks/stan_oracle/stop_distribution.py compare --group gmic --ours ours.jsonl \
        --stan RUN/fits/gmic,MORE/gmic [--from-stan-inits ours_from_stan_inits.jsonl] [--inits INITS]

`fit` runs our procedure (``stan_meanfield_advi`` on the release's density in double precision,
exactly as ``fit_stan_advi``) per seed and appends the stop, eta and ELBO trace to a JSON-lines
file (resumable). With ``--stan-inits`` each seed starts from Stan's own initial point of that
seed and uses our random draws from there. `inits` runs Stan's driver with ``ORACLE_TRACE`` just
long enough to read the initial point it draws (the trace's first record) and stores it in our
flat order's source form (Stan's coordinate permutation and the point). `compare` reads Stan's
fits (``seed<k>.json`` and ``seed<k>.elbo.csv`` as ``oracle.py run`` and the driver write them) and
prints: the stop iterations of each set, Mann-Whitney tests of ours against Stan and of Stan's
first seeds against its later ones, the mean ELBO increase between evaluations with its standard
error, and (with ``--inits``) a Kolmogorov-Smirnov test of Stan's initial points against
U(-2, 2). Seeds are the unit: the network groups share seeds (and with them random streams), so
each group is tested on its own.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from oracle import GROUPS, driver_path, model_of, parse_seeds, release_model_data  # noqa: E402

#: The ELBO evaluations between which the increase is reported.
INCREMENTS = ((100, 200), (200, 300), (300, 400), (400, 500), (500, 600), (600, 700))


# --- our fits ----------------------------------------------------------------------------------


def stan_initial_point(inits: Path, group: str, seed: int, flat_model) -> np.ndarray | None:
    """Stan's initial point of ``seed`` in our flat order (None when `inits` did not store it)."""
    import jax.numpy as jnp
    from jax.flatten_util import ravel_pytree

    path = inits / f"{group}_seed{seed}.npz"
    if not path.exists():
        return None
    from perceptiongap.model.hierarchical import LATENT_SITES

    stored = np.load(path)
    # Stan's output columns list the parameters, then the transformed ones; the permutation indexes the former.
    names = [str(name) for name in stored["parameter_names"] if str(name).split(".")[0] in LATENT_SITES]
    shapes = {site: np.shape(value) for site, value in flat_model.unravel(jnp.zeros(flat_model.dim)).items()}
    offsets = np.cumsum([0, *[int(np.prod(shape)) for shape in shapes.values()]])[:-1]
    ids = {site: np.arange(int(np.prod(shape))).reshape(shape) + offset
           for (site, shape), offset in zip(shapes.items(), offsets)}
    flat_ids = np.asarray(ravel_pytree({site: jnp.asarray(v, dtype=float) for site, v in ids.items()})[0]).astype(int)
    position_of_id = np.argsort(flat_ids)

    def our_position(name: str) -> int:
        site, *index = name.split(".")
        return int(position_of_id[ids[site][tuple(int(i) - 1 for i in index)]])

    point = np.empty(flat_model.dim)
    point[[our_position(names[int(column)]) for column in stored["permutation"]]] = stored["point"]
    return point


def fit(args: argparse.Namespace) -> None:
    import jax
    import jax.numpy as jnp

    import perceptiongap.model.stan_advi as stan_advi
    from perceptiongap.model.density import device_data, flat_model_for

    done = set()
    if args.out.exists():
        done = {json.loads(line)["seed"] for line in args.out.read_text().splitlines() if line.strip()}
    seeds = [seed for seed in parse_seeds(args.seeds) if seed not in done]
    data = release_model_data([args.group])[args.group]
    keys = {seed: jax.random.PRNGKey(seed) for seed in seeds}  # as fit_stan_advi makes them, outside x64
    original_initial_point = stan_advi._initial_point
    with args.out.open("a") as out, jax.enable_x64(True):
        flat = flat_model_for(data, numerics="release")
        arrays = device_data(data, "release")
        for seed in seeds:
            start = None
            if args.stan_inits is not None:
                start = stan_initial_point(args.stan_inits, args.group, seed, flat)
                if start is None:
                    print(f"seed {seed}: no initial point of Stan's stored, skipped", flush=True)
                    continue
            stan_advi._initial_point = original_initial_point if start is None else (
                lambda *_, point=jnp.asarray(start), **__: point)
            began = time.process_time()
            try:
                result = stan_advi.stan_meanfield_advi(flat.log_density, flat.dim, arrays, keys[seed],
                                                       stan_advi.StanADVISettings(), saturation=flat.saturation)
            except stan_advi.ADVIError as error:  # failed as Stan's ADVI fails: recorded, not compared
                out.write(json.dumps({"group": args.group, "seed": seed, "failed": str(error)}) + "\n")
                out.flush()
                print(f"seed {seed}: failed: {error}", flush=True)
                continue
            record = {"group": args.group, "seed": seed, "eta": result.eta, "iterations": result.iterations,
                      "start": "stan" if start is not None else "ours",
                      "elbo_iteration": result.elbo_iteration.tolist(), "elbo": result.elbo.tolist(),
                      "cpu_seconds": time.process_time() - began}
            out.write(json.dumps(record) + "\n")
            out.flush()
            print(f"seed {seed}: stop {result.iterations}, eta {result.eta:g}", flush=True)
    stan_advi._initial_point = original_initial_point


# --- Stan's initial points ---------------------------------------------------------------------


def inits(args: argparse.Namespace) -> None:
    """Run Stan's driver per seed with ORACLE_TRACE until the initial point is written, then stop it."""
    driver = args.driver or driver_path(model_of(release_model_data([args.group])[args.group]))
    data_path = args.data
    args.out.mkdir(parents=True, exist_ok=True)
    for seed in parse_seeds(args.seeds):
        target = args.out / f"{args.group}_seed{seed}.npz"
        if target.exists():
            continue
        prefix = args.out / f"{args.group}_seed{seed}"
        trace = prefix.with_suffix(".trace")
        process = subprocess.Popen([str(driver), str(data_path), str(seed), str(prefix)],
                                   env={**os.environ, "ORACLE_TRACE": str(trace)},
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(1200):
                time.sleep(0.25)
                if trace.exists() and trace.stat().st_size > 16:
                    n = int(np.frombuffer(trace.read_bytes()[:16], dtype=np.float64, count=1, offset=8)[0])
                    if trace.stat().st_size >= 16 + 8 * n + 16 + 8 * n:
                        break
        finally:
            process.kill()
            process.wait()
        raw = trace.read_bytes()
        n = int(np.frombuffer(raw, dtype=np.float64, count=1, offset=8)[0])
        permutation = np.frombuffer(raw, dtype=np.float64, count=n, offset=16).astype(int)
        record = np.dtype([("phase", np.int32), ("autodiff", np.int32), ("log_density", np.float64),
                           ("point", np.float64, (n,))])
        first = np.frombuffer(raw, dtype=record, count=1, offset=16 + 8 * n)[0]
        if first["phase"] != 0:
            raise SystemExit(f"error: {trace}: the first record is not the initial point (phase {first['phase']})")
        # The driver writes its column names only when it finishes: take them from a finished fit of the group.
        names = args.names.read_text().split()[3:]
        np.savez(target, permutation=permutation, point=first["point"], parameter_names=np.asarray(names))
        for suffix in (".trace", ".draws", ".log", ".elbo.csv", ".names", ".json"):
            prefix.with_suffix(suffix).unlink(missing_ok=True)
        print(f"seed {seed}: initial point in ({first['point'].min():.3f}, {first['point'].max():.3f})", flush=True)


# --- compare -----------------------------------------------------------------------------------


def read_ours(path: Path) -> pd.DataFrame:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    failed = [row["seed"] for row in rows if "failed" in row]
    if failed:
        print(f"{path}: seeds {failed} failed as Stan's ADVI fails; left out")
    rows = [row for row in rows if "failed" not in row]
    return pd.DataFrame({row["seed"]: pd.Series(row["elbo"], index=row["elbo_iteration"]) for row in rows}).T


def read_stan(folders: list[Path]) -> pd.DataFrame:
    traces = {}
    for folder in folders:
        for summary in sorted(folder.glob("seed*.json")):
            seed = int(summary.stem.removeprefix("seed"))
            if json.loads(summary.read_text()).get("return_code", 0) != 0:
                continue
            trace = pd.read_csv(summary.with_suffix(".elbo.csv"))
            traces[seed] = trace.set_index("iteration")["elbo"]
    return pd.DataFrame(traces).T.sort_index()


def stops(traces: pd.DataFrame) -> pd.Series:
    """The stop iteration of each seed: its last ELBO evaluation."""
    return traces.apply(lambda row: row.last_valid_index(), axis=1).astype(int)


def describe(name: str, traces: pd.DataFrame) -> dict:
    stop = stops(traces)
    row = {"set": name, "seeds": len(stop), "stop median": stop.median(), "stop mean": round(stop.mean(), 1),
           "P(stop<=700)": round(float(np.mean(stop <= 700)), 2)}
    for value in (500, 700, 900, 1100):
        row[f"n@{value}"] = int(np.sum(stop == value))
    row["n@>1100"] = int(np.sum(stop > 1100))
    return row


def increments(name: str, traces: pd.DataFrame) -> dict:
    row = {"set": name}
    for before, after in INCREMENTS:
        if before in traces and after in traces:
            change = (traces[after] - traces[before]).dropna()
            row[f"{before}->{after}"] = f"{change.mean():6.1f} ± {change.std() / np.sqrt(len(change)):.1f}"
    return row


def compare(args: argparse.Namespace) -> None:
    from scipy import stats

    ours = read_ours(args.ours)
    stan = read_stan(args.stan)
    sets = {"ours": ours, "Stan": stan}
    split = args.split if args.split is not None else len(stan) // 2
    stan_first, stan_later = stan.iloc[:split], stan.iloc[split:]
    sets[f"Stan seeds {stan_first.index.min()}-{stan_first.index.max()}"] = stan_first
    sets[f"Stan seeds {stan_later.index.min()}-{stan_later.index.max()}"] = stan_later
    if args.from_stan_inits is not None:
        sets["ours from Stan's inits"] = read_ours(args.from_stan_inits)
    pd.set_option("display.width", 220)
    print(f"group {args.group}: where each fit stopped (iterations)")
    print(pd.DataFrame([describe(name, traces) for name, traces in sets.items()]).to_string(index=False))
    print("\nELBO increase between evaluations, mean ± standard error over seeds")
    print(pd.DataFrame([increments(name, traces) for name, traces in sets.items()]).to_string(index=False))

    def test(a: str, b: str) -> None:
        x, y = stops(sets[a]), stops(sets[b])
        mw = stats.mannwhitneyu(x, y, alternative="two-sided")
        gap = x.mean() - y.mean()
        print(f"  {a} ({len(x)}) vs {b} ({len(y)}): mean stop {gap:+.0f} iterations, Mann-Whitney p = {mw.pvalue:.3f}")

    print("\nStop iterations, two-sided tests (seeds are the unit)")
    test("ours", "Stan")
    names = list(sets)
    test(names[2], names[3])
    test("ours", names[2])
    test("ours", names[3])
    if args.from_stan_inits is not None:
        test("ours from Stan's inits", "Stan")
        test("ours from Stan's inits", "ours")
        paired = pd.concat([stops(sets["ours from Stan's inits"]).rename("ours"), stops(stan).rename("stan")],
                           axis=1, join="inner")
        if len(paired) > 2:
            rho = stats.spearmanr(paired["ours"], paired["stan"])
            print(f"  same initial point, different draws: Spearman correlation of the stops over "
                  f"{len(paired)} seeds {rho.statistic:+.2f} (p = {rho.pvalue:.2f})")
    if args.inits is not None:
        points = [np.load(path)["point"] for path in sorted(args.inits.glob(f"{args.group}_seed*.npz"))]
        if points:
            pooled = np.concatenate(points)
            ks = stats.kstest(pooled, stats.uniform(-2, 4).cdf)
            print(f"\nStan's initial points ({len(points)} seeds, {pooled.size} coordinates) against U(-2, 2): "
                  f"Kolmogorov-Smirnov p = {ks.pvalue:.2f}; mean {pooled.mean():+.4f}, sd {pooled.std():.4f} "
                  f"(uniform: 0, {4 / np.sqrt(12):.4f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    command = commands.add_parser("fit", help="our stan-advi per seed (JSON lines, resumable)")
    command.add_argument("--group", default="gmic", choices=GROUPS)
    command.add_argument("--seeds", default="0-39")
    command.add_argument("--out", type=Path, required=True)
    command.add_argument("--stan-inits", type=Path, default=None, help="start each seed at Stan's initial point")
    command = commands.add_parser("inits", help="Stan's initial point per seed, from its driver's trace")
    command.add_argument("--group", default="gmic", choices=GROUPS)
    command.add_argument("--seeds", default="0-39")
    command.add_argument("--out", type=Path, required=True)
    command.add_argument("--driver", type=Path, default=None, help="Stan's driver (default: build/driver_<model>)")
    command.add_argument("--data", type=Path, required=True, help="the group's data JSON (`oracle.py run` writes it)")
    command.add_argument("--names", type=Path, required=True,
                         help="a finished Stan fit's column names for the group (`oracle.py run`: fits/<group>/seed0.names)")
    command = commands.add_parser("compare", help="stop iterations and ELBO increases, ours against Stan's")
    command.add_argument("--group", default="gmic", choices=GROUPS)
    command.add_argument("--ours", type=Path, required=True)
    command.add_argument("--stan", type=lambda text: [Path(p) for p in text.split(",")], required=True,
                         help="folders holding Stan's seed<k>.json and seed<k>.elbo.csv, comma-separated")
    command.add_argument("--from-stan-inits", type=Path, default=None)
    command.add_argument("--inits", type=Path, default=None)
    command.add_argument("--split", type=int, default=None, help="Stan's seeds split after this many (default half)")
    args = parser.parse_args()
    {"fit": fit, "inits": inits, "compare": compare}[args.command](args)


if __name__ == "__main__":
    main()
