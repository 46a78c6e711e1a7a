"""Throughput of `perceptiongap predict` with the reference network, and where the time goes.

In one run, on the same synthetic exams (four uint16 views of 2000 x 1600 pixels at 0.07 mm, the
paper's nine severities, entire image): exams per second on 1 local worker, 2 local worker
processes and a 2-worker local Dask cluster, the scaling ratios against 1 worker, and the time
of one exam split into reading the files, filtering (all views, all cut-offs), making the
perturbed float32 exams, and the network. Goals (issue 5): 2 workers at least 1.7x one worker on
2 cores; filtering not the bottleneck for a real network.

    python benchmarks/predict.py [--exams 8] [--height 2000] [--width 1600]

Wall times include starting the worker processes (and the Dask cluster), as a user sees them.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from perceptiongap.perturb import lowpass, read_image
from perceptiongap.predict import predict
from perceptiongap.predict.jobs import Job, Task, perturbed_exams, read_exams
from perceptiongap.reference import network, write_synthetic_exams
from perceptiongap.vocabulary import PAPER_CUTOFFS_PER_MM

MODEL = "perceptiongap.reference:network"
CUTOFFS = (float("inf"), *PAPER_CUTOFFS_PER_MM)


def timed(function, repeat: int = 3) -> float:
    """Median wall time in seconds of ``repeat`` calls."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def breakdown(exams_csv: Path) -> dict[str, float]:
    """Seconds per exam (nine severities, entire image) in each stage, in this process."""
    images = read_exams(exams_csv)[0]
    task = Task(images=images, jobs=(Job(images.exam, "entire"),), cutoffs_per_mm=CUTOFFS)
    views = [read_image(path, pixel_mm) for path, pixel_mm in zip(images.paths, images.pixel_mm)]
    perturbed = [exam for _, _, exam in perturbed_exams(task)]
    read = timed(lambda: [read_image(path, pixel_mm) for path, pixel_mm in zip(images.paths, images.pixel_mm)])
    filtering = timed(lambda: [lowpass(view.pixels, view.pixel_mm, CUTOFFS) for view in views])
    everything = timed(lambda: [exam for _, _, exam in perturbed_exams(task)])
    stages = {
        "read files": read,
        "filter (4 views x 8 cut-offs)": filtering,
        "make perturbed float32 exams": max(everything - read - filtering, 0.0),
        "reference network (9 exams)": timed(lambda: network(perturbed), repeat=2),
    }
    return stages


def wall_time(exams_csv: Path, folder: Path, **where) -> float:
    """Seconds of a whole `predict` run, as a user waits for it."""
    out = folder / f"obs-{'-'.join(f'{k}{v}' for k, v in where.items())}.parquet"
    start = time.perf_counter()
    predict(MODEL, exams_csv, "reference", out, force=True, **where)
    return time.perf_counter() - start


def startup_time(**where) -> float:
    """Seconds to start the workers and load the network in each, with no exam to predict."""
    import concurrent.futures as cf
    import multiprocessing

    from perceptiongap.predict.jobs import cached_model
    from perceptiongap.predict.runner import dask_client

    start = time.perf_counter()
    if "cluster" in where:
        with dask_client(where["cluster"]) as client:
            client.run(cached_model, MODEL)
    else:
        with cf.ProcessPoolExecutor(where["workers"], mp_context=multiprocessing.get_context("spawn")) as pool:
            list(pool.map(cached_model, [MODEL] * where["workers"]))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exams", type=int, default=8)
    parser.add_argument("--height", type=int, default=2000)
    parser.add_argument("--width", type=int, default=1600)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="perceptiongap-bench-") as tmp:
        folder = Path(tmp)
        exams_csv = write_synthetic_exams(folder / "exams", args.exams, shape=(args.height, args.width),
                                          pixel_mm=0.07, seed=0)
        print(f"{args.exams} synthetic exams, 4 views of {args.height} x {args.width} uint16, "
              f"9 severities, entire image; {os.cpu_count()} CPU cores")

        stages = breakdown(exams_csv)
        total = sum(stages.values())
        print("\nwhere the time of one exam goes (1 process):")
        for name, seconds in stages.items():
            print(f"  {name:32s} {seconds:7.3f} s  {100 * seconds / total:5.1f} %")
        perturbation = total - stages["reference network (9 exams)"]
        print(f"  perturbation (read + filter + make) per perturbed exam: {perturbation / 9 * 1000:.0f} ms")

        print("\nthroughput: exams/s over the whole run, and without the start-up of the workers")
        runs = {
            "1 worker (this process)": dict(workers=1),
            "2 local worker processes": dict(workers=2),
            "Dask LocalCluster, 2 workers": dict(cluster="local:2"),
        }
        rates = {}
        for name, where in runs.items():
            wall = wall_time(exams_csv, folder, **where)
            startup = 0.0 if where == dict(workers=1) else startup_time(**where)
            rates[name] = (args.exams / wall, args.exams / max(wall - startup, 1e-9))
            print(f"  {name:30s} {rates[name][0]:6.3f} exams/s  (start-up {startup:4.1f} s; "
                  f"{rates[name][1]:6.3f} exams/s without it)")
        one = rates["1 worker (this process)"][0]
        for name in list(runs)[1:]:
            whole, steady = rates[name]
            print(f"scaling, {name} / 1 worker: {whole / one:.2f} whole run, {steady / one:.2f} without start-up "
                  f"(goal >= 1.7 on 2 free cores)")

if __name__ == "__main__":
    main()
