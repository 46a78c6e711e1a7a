"""The authors' release as Observations + Cases, imported by perceptiongap.release.

The raw arrays that the analyses are compared against are read independently in raw_release.py.
"""

from __future__ import annotations

import pandas as pd
import pytest


@pytest.fixture(scope="session")
def release_cases_table(release_study) -> pd.DataFrame:
    return release_study[1]


@pytest.fixture(scope="session")
def release_observations_table(release_study) -> pd.DataFrame:
    return release_study[0]


#: A study with a label-specific effect on soft tissue lesions: at 1 and 4 mm filtering moves the
#: malignant breasts down and the others up, by 0.75 and 1.5 logits, so that the subgroup's mean
#: effect is 0 and the release's gamma[s, g] cannot express it; microcalcifications get a shared effect.
LABEL_EFFECT_SEVERITIES = (0.0, 0.5, 1.0, 4.0)


def label_effect_truth():
    import numpy as np

    gamma = np.zeros((4, 3))
    gamma[1:, 0] = [-0.3, -0.6, -1.0]
    gamma[2:, 1] = [0.75, 1.5]
    shift = np.zeros((4, 3))
    shift[2:, 1] = [-1.5, -3.0]
    return gamma, shift


@pytest.fixture(scope="session")
def label_effect_fits():
    """{group: {model: NUTS posterior}} of release and label_specific on the study above, with its truth."""
    from perceptiongap.model import NUTSSettings, build_model_data, fit
    from perceptiongap.study import validate_observations

    from ..model.simulate import SUBGROUPS, simulate_study

    gamma, shift = label_effect_truth()
    observations, cases, truth = simulate_study(seed=21, n_exams=80, severity_mm=LABEL_EFFECT_SEVERITIES,
                                                gamma=gamma, malignant_shift=shift, separation=2.0)
    observations = validate_observations(observations)
    settings = NUTSSettings(num_warmup=200, num_samples=200)
    fits = {}
    for group in ("networks", "readers"):
        data = build_model_data(observations, cases, group, subgroup_order=SUBGROUPS)
        fits[group] = {model: fit(data, "nuts", 0, settings=settings, model=model)
                       for model in ("release", "label_specific")}
    return fits, truth, (observations, cases)
