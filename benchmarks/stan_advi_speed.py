"""Time `stan-advi` fits on the release under the process settings that `reproduce` can use, same numbers or not.

Usage: python benchmarks/stan_advi_speed.py [--groups gmic,radiologists] [--seeds 4] [--jobs 2]

Each configuration runs in a fresh process (XLA reads its flags once, at start), fitting every group
at seeds 0 .. seeds-1, ``--jobs`` fits at a time in threads as ``perceptiongap reproduce`` runs them:

* ``original``: the process defaults (XLA's own intra-op thread pool, nothing cached on disk);
* ``one XLA thread per fit``: :func:`perceptiongap.model.runtime.configure_jax` without a cache
  (each fit's computations on the thread that runs it: the fits are already the parallel unit);
* ``+ compile cache, cold``: the same plus JAX's persistent compilation cache in an empty folder;
* ``+ compile cache, warm``: again, with the folder the cold run filled (what a second run finds).

Prints, per configuration, wall seconds, this process's CPU seconds (all threads), the CPU seconds
of the first fit of each shape (compile included) against the rest, the ratio against
``original`` measured in the same run, the load average, and whether every fit's numbers (draws,
eta, stop iteration, ELBO trace) are bit-identical to ``original``'s.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

CONFIGURATIONS = ("original", "one XLA thread per fit", "+ compile cache, cold", "+ compile cache, warm")


def fingerprint(posterior) -> str:
    """A hash of everything a fit's numbers consist of: the draws of every site, eta, stop, ELBO trace."""
    digest = hashlib.sha256()
    post = posterior.posterior
    for name in sorted(post.data_vars):
        digest.update(name.encode())
        digest.update(post[name].values.tobytes())
    for name in ("eta", "iterations", "elbo", "elbo_iteration"):
        digest.update(repr(post.attrs[name]).encode() if name in ("eta", "iterations") else
                      bytes(memoryview(post.attrs[name])))
    return digest.hexdigest()[:16]


def worker(args: argparse.Namespace) -> None:
    """Fit in this process and print one JSON line: wall, CPU, per-fit fingerprints."""
    if args.configuration != "original":
        from perceptiongap.model.runtime import configure_jax

        configure_jax(cache_dir=args.cache)
    import jax  # noqa: F401  (after the configuration, as the CLI does)

    from perceptiongap.model import build_model_data, fit_stan_advi
    from perceptiongap.release import import_release, locate_release
    from perceptiongap.vocabulary import PAPER_SUBGROUPS

    observations, cases = import_release(locate_release())
    groups = args.groups.split(",")
    data = {group: build_model_data(observations, cases, group, subgroup_order=PAPER_SUBGROUPS) for group in groups}
    # First fit of each group first, as perceptiongap's fit_study orders them, so the threads compile different shapes.
    jobs = [(group, 0) for group in groups] + [(group, seed) for seed in range(1, args.seeds) for group in groups]

    def fit(job):
        group, seed = job
        start = time.perf_counter()
        posterior = fit_stan_advi(data[group], seed)
        return {"group": group, "seed": seed, "seconds": time.perf_counter() - start,
                "iterations": int(posterior.posterior.attrs["iterations"]), "fingerprint": fingerprint(posterior)}

    wall, cpu = time.perf_counter(), time.process_time()
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        fits = list(pool.map(fit, jobs))
    print(json.dumps({"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu, "fits": fits}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", default="gmic,radiologists")
    parser.add_argument("--seeds", type=int, default=4, help="seeds per group (default 4)")
    parser.add_argument("--jobs", type=int, default=2, help="fits at a time (default 2, as reproduce on 2 cores)")
    parser.add_argument("--worker", dest="configuration", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--cache", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.configuration is not None:
        worker(args)
        return

    cache = tempfile.mkdtemp(prefix="perceptiongap-jax-cache-")
    results = {}
    print(f"{len(args.groups.split(','))} groups x {args.seeds} seeds, {args.jobs} fits at a time; "
          f"load average before {' '.join(f'{x:.1f}' for x in os.getloadavg())}", flush=True)
    for configuration in CONFIGURATIONS:
        command = [sys.executable, __file__, "--worker", configuration, "--groups", args.groups,
                   "--seeds", str(args.seeds), "--jobs", str(args.jobs)]
        if "cache" in configuration:
            command += ["--cache", cache]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"{configuration}: failed\n{done.stderr[-3000:]}")
        results[configuration] = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"  {configuration}: done, load {os.getloadavg()[0]:.1f}", flush=True)

    original = results["original"]
    reference = {(f["group"], f["seed"]): f["fingerprint"] for f in original["fits"]}
    print(f"{'configuration':<26s} {'wall s':>8s} {'cpu s':>8s} {'cpu ratio':>9s} {'wall ratio':>10s} "
          f"{'first fits s':>12s} {'others s':>9s}  identical numbers")
    for configuration, result in results.items():
        firsts = sum(f["seconds"] for f in result["fits"] if f["seed"] == 0)
        others = sum(f["seconds"] for f in result["fits"] if f["seed"] != 0)
        same = all(reference[f["group"], f["seed"]] == f["fingerprint"] for f in result["fits"])
        print(f"{configuration:<26s} {result['wall']:8.1f} {result['cpu']:8.1f} "
              f"{original['cpu'] / result['cpu']:8.2f}x {original['wall'] / result['wall']:9.2f}x "
              f"{firsts:12.1f} {others:9.1f}  {'yes' if same else 'NO'}")
    print("(first fits / others: summed wall seconds of the fits at seed 0, which compile, and of the rest; "
          f"stop iterations {sorted({f['iterations'] for f in original['fits']})})")
    print(f"load average after {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    sys.exit(main())
