"""Run the `perceptiongap` command in-process, as a user's shell would; a simulated study to calibrate."""

from __future__ import annotations

import numpy as np
import pandas as pd

from perceptiongap.cli import main
from perceptiongap.study import write_table


def run_cli(argv, capsys) -> tuple[int, str, str]:
    """Run the CLI with ``argv``; return (exit code, stdout, stderr)."""
    try:
        main([str(a) for a in argv])
        code = 0
    except SystemExit as exit_:
        code = exit_.code or 0
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def simulated_study(tmp_path, name, n_exams, seed):
    """Observations of an over- and an under-confident network, and the Cases of their exams."""
    rng = np.random.default_rng(seed)
    exams = [f"{name}{i}" for i in range(n_exams)]
    malignant = rng.random((n_exams, 2)) < 0.3
    cases = pd.DataFrame({"exam": np.repeat(exams, 2), "breast": ["L", "R"] * n_exams,
                          "label": np.where(malignant.ravel(), "malignant", "benign"), "subgroup": "x"})
    frames = []
    for observer, sharpness in (("seed0", 6.0), ("seed1", 0.8)):  # true slope 2.5
        true_logit = rng.normal(np.where(malignant.ravel(), 1.0, -1.5), 1.0)
        frames.append(pd.DataFrame({
            "observer_group": "net", "observer": observer, "observer_kind": "machine", "exam": cases["exam"],
            "breast": cases["breast"], "severity_mm": 0.0, "scheme": "entire", "annotator": "",
            "prediction": 1 / (1 + np.exp(-sharpness * true_logit)),
        }))
    write_table(pd.concat(frames, ignore_index=True), tmp_path / f"{name}.parquet")
    write_table(cases, tmp_path / f"{name}_cases.csv")
    return tmp_path / f"{name}.parquet", tmp_path / f"{name}_cases.csv"
