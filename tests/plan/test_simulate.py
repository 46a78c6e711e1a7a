"""Simulated studies: the case mix, the designs of `study design`, and answers from the model."""

from __future__ import annotations

import numpy as np

from perceptiongap.plan.effects import effects_from_csv
from perceptiongap.plan.simulate import simulate_studies
from tests.plan.helpers import write_effects


def test_balanced_design_spreads_every_readers_exams_evenly_over_severities(tmp_path):
    source = effects_from_csv(write_effects(tmp_path / "e.csv"))
    studies = simulate_studies(source, 6, 90, "balanced", np.random.SeedSequence(0).spawn(2))
    severity = studies.arrays["severity_index"][:, :, 0, :]  # (B, R, C)
    np.testing.assert_array_equal(severity[..., 0::2], severity[..., 1::2])  # both breasts of an exam together
    counts = (severity[..., 0::2, None] == np.arange(3)).sum(axis=2)  # (B, R, S) exams per severity
    assert counts.max(axis=-1).max() - counts.min(axis=-1).min() <= 1  # 90 exams / 3 severities: 30 each
    assert studies.arrays["observed"].all()


def test_case_mix_follows_the_prevalence(tmp_path):
    source = effects_from_csv(write_effects(tmp_path / "e.csv"))
    studies = simulate_studies(source, 2, 3000, "release", [np.random.SeedSequence(1)])
    counts = studies.arrays["subgroup_label_counts"][0]  # (G, 2) of 6000 breasts
    expected = source.prevalence * 6000
    assert np.all(np.abs(counts - expected) <= 4 * np.sqrt(expected) + 1)


def test_answers_follow_the_severity_effect(tmp_path):
    # gamma -4 at 2 mm for the analysed subgroups: their breasts are called malignant far less often there.
    source = effects_from_csv(write_effects(tmp_path / "e.csv", gamma=(0.0, 0.0, -4.0)))
    studies = simulate_studies(source, 10, 600, "release", [np.random.SeedSequence(2)])
    arrays = {name: value[0] for name, value in studies.arrays.items()}
    analysed = np.broadcast_to(arrays["case_subgroup"] < 2, arrays["prediction"].shape)
    severity = arrays["severity_index"]
    rate = [arrays["prediction"][analysed & (severity == s)].mean() for s in (0, 2)]
    assert rate[1] < 0.5 * rate[0]
    others = ~analysed
    assert abs(arrays["prediction"][others & (severity == 0)].mean()
               - arrays["prediction"][others & (severity == 2)].mean()) < 0.03


def test_same_seeds_same_studies(tmp_path):
    source = effects_from_csv(write_effects(tmp_path / "e.csv"))
    first, second = (simulate_studies(source, 3, 30, "balanced", np.random.SeedSequence(5).spawn(2)) for _ in range(2))
    for name, value in first.arrays.items():
        np.testing.assert_array_equal(value, second.arrays[name])
