"""Does the plan's inference give the same power as NUTS? One grid cell, the same simulated studies.

For ``--reps`` studies of one cell (``--readers`` x ``--exams``, release design, ``--severities``
(default the paper's nine), gamma falling linearly to ``--gamma-at-4mm`` in both analysed subgroups
(and, for ``--model label_specific``, delta likewise to ``--delta-at-4mm``), malignant breasts'
biases ``--separation`` logits above the others' (the unperturbed class separability; the priors
alone give none, and then no drop in separability can be seen), other parameters from the priors),
each study is fitted twice: by the plan's Laplace approximation of the marginal posterior
(:mod:`perceptiongap.plan.laplace`) and by NUTS (:func:`perceptiongap.model.fit_nuts`, the same
``--model``, ``--chains`` x ``--samples`` draws after as many warm-up steps).

The subset that tests the separability criterion (power between about 0.2 and 0.8 for it):

    python benchmarks/plan_nuts.py --reps 30 --readers 10 --exams 240 --severities 0,2,4 --gamma-at-4mm -4 --separation 2
 Both are judged by the same criteria (:func:`perceptiongap.plan.power.rejections`; for
NUTS, gamma's mean and sd over the draws and the posterior predictive of
:func:`perceptiongap.analysis.predictive.posterior_predictive`).

Printed per criterion (pooled over subgroups and severities) and per severity for the confidence
criterion: power under each, their difference and its Monte Carlo standard error (paired: the sd
of the per-study differences / sqrt(n)), and how often the two decisions agree; then how far the
Laplace means and sds of gamma are from NUTS's (in NUTS sds).

    python benchmarks/plan_nuts.py [--reps 20] [--readers 5] [--exams 240] [--model label_specific --delta-at-4mm -3]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def _model_data(arrays: dict, subgroups, severity_mm):
    from perceptiongap.model.data import ModelData

    n_readers, _, n_cases = arrays["prediction"].shape
    shape = (n_readers, len(severity_mm), n_cases)
    prediction, observed = np.zeros(shape), np.zeros(shape, dtype=bool)
    reader, case = np.meshgrid(np.arange(n_readers), np.arange(n_cases), indexing="ij")
    severity = arrays["severity_index"][:, 0, :]
    prediction[reader, severity, case] = arrays["prediction"][:, 0, :]
    observed[reader, severity, case] = True
    label = np.where(arrays["case_malignant"] > 0.5, "malignant", "benign")
    return ModelData(
        prediction=prediction, observed=observed, case_subgroup=arrays["case_subgroup"].astype(np.int32),
        observer_group="readers", observer_kind="human", observer_names=tuple(f"r{i}" for i in range(n_readers)),
        severity_mm=tuple(severity_mm), subgroup_names=tuple(subgroups),
        case_exam=tuple(f"e{n // 2}" for n in range(n_cases)), case_breast=tuple("LR"[n % 2] for n in range(n_cases)),
        case_label=tuple(label),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--readers", type=int, default=5)
    parser.add_argument("--exams", type=int, default=240)
    parser.add_argument("--gamma-at-4mm", type=float, default=-1.5)
    parser.add_argument("--delta-at-4mm", type=float, default=0.0, help="label_specific only")
    parser.add_argument("--separation", type=float, default=0.0,
                        help="mean bias of malignant breasts above the others' (logits)")
    parser.add_argument("--severities", default=None, help="comma-separated mm, 0 first (default: the paper's nine)")
    parser.add_argument("--model", default="release", choices=["release", "label_specific"])
    parser.add_argument("--chains", type=int, default=2)
    parser.add_argument("--samples", type=int, default=400)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from perceptiongap.model import use_host_devices

    use_host_devices(args.chains)
    import jax

    from perceptiongap.analysis.predictive import posterior_predictive
    from perceptiongap.analysis.separability_effects import separability_effect_draws
    from perceptiongap.model import NUTSSettings, fit_nuts
    from perceptiongap.plan.effects import effects_from_csv
    from perceptiongap.plan.laplace import StudyFits, fit_studies
    from perceptiongap.plan.power import rejections
    from perceptiongap.plan.simulate import simulate_studies
    from perceptiongap.vocabulary import PAPER_SEVERITIES_MM

    severities = (PAPER_SEVERITIES_MM if args.severities is None
                  else tuple(float(s) for s in args.severities.split(",")))
    rows = [{"subgroup": g, "severity_mm": s, "gamma": args.gamma_at_4mm * float(s) / 4.0,
             "delta": args.delta_at_4mm * float(s) / 4.0}
            for g in ("microcalcifications", "soft_tissue_lesions") for s in severities]
    path = Path(tempfile.mkdtemp()) / "effects.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    source = effects_from_csv(path, model=args.model)
    mu_mean = source.mu_mean.copy()
    mu_mean[:, :, 0] += args.separation  # label 0: malignant
    source = dataclasses.replace(source, mu_mean=mu_mean)
    analysed = ("microcalcifications", "soft_tissue_lesions")
    studies = simulate_studies(source, args.readers, args.exams, "release",
                               np.random.SeedSequence(args.seed).spawn(args.reps))
    keys = np.stack([np.asarray(jax.random.PRNGKey(i)) for i in range(args.reps)])
    started = time.perf_counter()
    laplace = fit_studies(args.model, studies.arrays, keys)
    laplace_time = time.perf_counter() - started
    laplace_rows = rejections(laplace, studies.arrays, source.subgroups, analysed, source.severity_mm)

    settings = NUTSSettings(num_warmup=args.samples, num_samples=args.samples, num_chains=args.chains,
                            log_likelihood=False, evidence=False)
    means, sds, predictives, delta_means, delta_sds = [], [], [], [], []
    started = time.perf_counter()
    for rep in range(args.reps):
        arrays = {name: value[rep] for name, value in studies.arrays.items()}
        posterior = fit_nuts(_model_data(arrays, source.subgroups, source.severity_mm), seed=rep, settings=settings,
                             model=args.model)
        gamma = posterior.posterior["gamma"].transpose("chain", "draw", "severity", "subgroup").values
        gamma = gamma.reshape(-1, *gamma.shape[2:])
        means.append(gamma.mean(axis=0))
        sds.append(gamma.std(axis=0))
        delta = separability_effect_draws(posterior)  # (sample, severity, subgroup); None for the release model
        if delta is not None:
            delta_means.append(delta.mean(axis=0))
            delta_sds.append(delta.std(axis=0))
        predictives.append(posterior_predictive(posterior).transpose("observer", "severity", "case").values)
        print(f"  NUTS {rep + 1}/{args.reps} ({time.perf_counter() - started:.0f} s)", flush=True)
    nuts_time = time.perf_counter() - started
    nuts = StudyFits(gamma_mean=np.stack(means), gamma_sd=np.stack(sds), delta_mean=np.stack(delta_means) if delta_means else None,
                     delta_sd=np.stack(delta_sds) if delta_sds else None, predictive=np.stack(predictives), converged=np.ones(args.reps, bool),
                     last_step=np.zeros(args.reps))
    nuts_rows = rejections(nuts, studies.arrays, source.subgroups, analysed, source.severity_mm)

    keys_ = ["rep", "criterion", "subgroup", "severity_mm"]
    both = laplace_rows.merge(nuts_rows, on=keys_, suffixes=("_laplace", "_nuts"))
    print(f"\n{args.reps} studies, {args.readers} readers x {args.exams} exams, model {args.model}, severities "
          f"{', '.join(f'{s:g}' for s in source.severity_mm)} mm; Laplace {laplace_time:.0f} s "
          f"(batched, compile included), NUTS {nuts_time:.0f} s; load average %.2f %.2f %.2f" % os.getloadavg())

    def report(frame, label):
        per_study = frame.groupby("rep")[["reject_laplace", "reject_nuts"]].mean()  # one value per study: paired
        difference = per_study["reject_laplace"] - per_study["reject_nuts"]
        se = difference.std(ddof=1) / np.sqrt(len(difference)) if len(difference) > 1 else float("nan")
        agree = (frame["reject_laplace"] == frame["reject_nuts"]).mean()
        verdict = "within" if abs(difference.mean()) <= 2 * se or difference.abs().max() == 0 else "OUTSIDE"
        print(f"  {label:38s} power Laplace {per_study['reject_laplace'].mean():.3f}  NUTS "
              f"{per_study['reject_nuts'].mean():.3f}  difference {difference.mean():+.3f} (MC se {se:.3f}; "
              f"{verdict} 2 se)  decisions agree {agree:.1%}")

    for criterion, frame in both.groupby("criterion"):
        report(frame, criterion)
    for (criterion, severity), frame in both.groupby(["criterion", "severity_mm"]):
        report(frame, f"{criterion} at {severity:g} mm")
    columns = [source.subgroups.index(g) for g in analysed]
    z_mean = (laplace.gamma_mean - nuts.gamma_mean)[:, 1:, columns] / nuts.gamma_sd[:, 1:, columns]
    sd_ratio = laplace.gamma_sd[:, 1:, columns] / nuts.gamma_sd[:, 1:, columns]
    print(f"  gamma: Laplace mean - NUTS mean, in NUTS sds: median {np.median(z_mean):+.3f}, largest |.| "
          f"{np.abs(z_mean).max():.3f}; sd ratio Laplace / NUTS: median {np.median(sd_ratio):.3f}, range "
          f"{sd_ratio.min():.3f} .. {sd_ratio.max():.3f}")


if __name__ == "__main__":
    main()
