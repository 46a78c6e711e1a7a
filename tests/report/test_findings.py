"""Where methods, seeds and the model-free statistic disagree, on hand-made tables with known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd

from perceptiongap.analysis.conclusions import Conclusion
from perceptiongap.report.findings import (
    conclusion_disagreements,
    method_disagreements,
    observed_vs_model,
    seed_disagreements,
)

NAN = np.nan


def row(inference, group, severity, p_conf, p_sep, *, subgroup="soft_tissue_lesions", sep=0.8, fits=1,
        frac_conf=NAN, frac_sep=NAN):
    return {"inference": inference, "observer_group": group, "subgroup": subgroup, "severity_mm": severity,
            "confidence_mean": NAN if inference == "observed" else -1.0, "confidence_sd": 0.1,
            "p_confidence_positive": p_conf, "separability_mean": sep, "separability_sd": 0.05,
            "p_separability_drop": p_sep, "fits": fits, "frac_confidence_significant": frac_conf,
            "frac_separability_significant": frac_sep}


TABLE = pd.DataFrame([
    row("stan-advi", "gmic", 0.0, NAN, NAN, fits=5),
    row("stan-advi", "gmic", 4.0, 0.01, 0.004, fits=5, frac_conf=1.0, frac_sep=0.6),
    row("stan-advi", "gmic", 2.0, 0.20, 0.30, fits=5, frac_conf=0.0, frac_sep=0.0),
    row("nuts", "gmic", 0.0, NAN, NAN),
    row("nuts", "gmic", 4.0, 0.02, 0.48),
    row("nuts", "gmic", 2.0, 0.01, 0.30),
    row("observed", "gmic", 0.0, NAN, NAN, sep=0.55),
    row("observed", "gmic", 4.0, NAN, 0.004, sep=0.27),
    row("observed", "gmic", 2.0, NAN, 0.40, sep=0.50),
])


def test_method_disagreements_lists_cells_on_different_sides_of_005() -> None:
    found = method_disagreements(TABLE, ["stan-advi", "nuts"])
    assert found[["severity_mm", "statistic"]].values.tolist() == [[2.0, "confidence"], [4.0, "separability"]]
    assert found.loc[1, "p_stan-advi"] == 0.004 and found.loc[1, "p_nuts"] == 0.48


def test_one_method_has_nothing_to_disagree_with() -> None:
    assert method_disagreements(TABLE, ["nuts"]).empty


def test_seed_disagreements_are_fractions_strictly_between_0_and_1() -> None:
    found = seed_disagreements(TABLE)
    assert found[["inference", "severity_mm", "statistic", "fraction_significant", "median_p"]].values.tolist() == [
        ["stan-advi", 4.0, "separability", 0.6, 0.004]]


def test_observed_vs_model_names_the_cell_where_exact_inference_loses_the_drop() -> None:
    found = observed_vs_model(TABLE, ["stan-advi", "nuts"])
    assert found["severity_mm"].tolist() == [4.0]
    first = found.iloc[0]
    assert (first["observed_before"], first["observed_after"]) == (0.55, 0.27)
    assert (first["p_observed"], first["p_stan-advi"], first["p_nuts"]) == (0.004, 0.004, 0.48)


def test_conclusion_disagreements_ignore_methods_that_could_not_judge() -> None:
    split = Conclusion("a", "A", "rule", {"stan-advi": True, "nuts": False})
    unjudged = Conclusion("b", "B", "rule", {"stan-advi": True, "nuts": None})
    agreed = Conclusion("c", "C", "rule", {"stan-advi": False, "nuts": False})
    assert conclusion_disagreements([split, unjudged, agreed]) == [split]
