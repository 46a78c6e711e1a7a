"""Grid levels: a study's severity set (effects interpolated on the random-walk scale) and its case mix."""

from __future__ import annotations

import numpy as np
import pytest

from perceptiongap.errors import InputError
from perceptiongap.plan.effects import effects_from_csv
from perceptiongap.plan.levels import case_mix_label, severity_set_label, with_case_mix, with_severities
from tests.plan.helpers import write_effects


@pytest.fixture
def source(tmp_path):
    # gamma linear in severity (0, -1, -2, -4 at 0, 1, 2, 4 mm): interpolation must give -s exactly.
    path = write_effects(tmp_path / "effects.csv", severity_mm=(0.0, 1.0, 2.0, 4.0), gamma=(0.0, -1.0, -2.0, -4.0),
                         delta=(0.0, -0.5, -1.0, -2.0))
    return effects_from_csv(path, model="label_specific")


def test_effects_at_severities_between_the_stated_ones_are_interpolated_linearly(source):
    moved = with_severities(source, (0.0, 0.5, 2.0, 3.0))
    assert moved.severity_mm == (0.0, 0.5, 2.0, 3.0)
    columns = [source.subgroups.index(g) for g in ("microcalcifications", "soft_tissue_lesions")]
    np.testing.assert_allclose(moved.gamma[0][:, columns], [[0, 0], [-0.5, -0.5], [-2, -2], [-3, -3]], atol=1e-12)
    np.testing.assert_allclose(moved.delta[0][:, columns], [[0, 0], [-0.25, -0.25], [-1, -1], [-1.5, -1.5]],
                               atol=1e-12)
    # gamma_label is interpolated too: its classes still differ by delta.
    difference = moved.gamma_label[0][..., 0] - moved.gamma_label[0][..., 1]
    np.testing.assert_allclose(difference[:, columns], moved.delta[0][:, columns], atol=1e-12)
    assert severity_set_label(moved.severity_mm) == "0,0.5,2,3"


def test_a_subset_of_the_stated_severities_keeps_their_effects(source):
    moved = with_severities(source, (0.0, 4.0))
    np.testing.assert_array_equal(moved.gamma[:, 1], source.gamma[:, 3])


@pytest.mark.parametrize(("severities", "problem"), [
    ((0.0, 1.0, 5.0), "5 mm is beyond the effects' largest severity (4 mm"),
    ((1.0, 2.0), "needs 0 (the reference) first"),
    ((0.0,), "at least one perturbed severity"),
    ((0.0, 2.0, 1.0), "must increase"),
])
def test_severity_sets_the_source_cannot_give_are_refused(source, severities, problem):
    with pytest.raises(InputError) as error:
        with_severities(source, severities)
    assert problem in error.value.message and error.value.source == "severities"


def test_a_stated_case_mix_is_kept_and_the_other_subgroups_fill_the_rest_in_their_proportions(source):
    before = source.prevalence
    mixed = with_case_mix(source, {"microcalcifications": (0.2, 0.5), "soft_tissue_lesions": (0.3, None)})
    g_mc, g_st = source.subgroups.index("microcalcifications"), source.subgroups.index("soft_tissue_lesions")
    np.testing.assert_allclose(mixed.prevalence[g_mc], [0.1, 0.1])
    np.testing.assert_allclose(mixed.prevalence[g_st].sum(), 0.3)
    # No malignant share stated: the source's is kept.
    np.testing.assert_allclose(mixed.prevalence[g_st, 0] / 0.3, before[g_st, 0] / before[g_st].sum())
    others = [g for g in range(len(source.subgroups)) if g not in (g_mc, g_st)]
    np.testing.assert_allclose(mixed.prevalence[others], before[others] * 0.5 / before[others].sum())
    assert mixed.prevalence.sum() == pytest.approx(1.0)
    assert case_mix_label(mixed, ("microcalcifications",)) == "microcalcifications=0.2:0.5"


def test_a_new_case_mix_recomputes_the_label_specific_effects_from_gamma_and_delta(source):
    mixed = with_case_mix(source, {"microcalcifications": (0.3, 0.1)})
    g = source.subgroups.index("microcalcifications")
    gamma_label = mixed.gamma_label[0][:, g]  # (S, 2)
    np.testing.assert_allclose(0.1 * gamma_label[:, 0] + 0.9 * gamma_label[:, 1], [0, -1, -2, -4], atol=1e-12)
    np.testing.assert_allclose(gamma_label[:, 0] - gamma_label[:, 1], [0, -0.5, -1, -2], atol=1e-12)


@pytest.mark.parametrize(("mix", "problem"), [
    ({"mass": (0.2, None)}, "subgroup 'mass' is not in the case mix"),
    ({"microcalcifications": (0.0, None)}, "must be in (0, 1]"),
    ({"microcalcifications": (0.2, 1.5)}, "malignant share of 'microcalcifications' must be in [0, 1]"),
    ({"microcalcifications": (0.6, None), "soft_tissue_lesions": (0.6, None)}, "add up to 1.2 (more than 1)"),
])
def test_case_mixes_that_cannot_be_are_refused(source, mix, problem):
    with pytest.raises(InputError) as error:
        with_case_mix(source, mix)
    assert problem in error.value.message and error.value.source == "prevalence"


def test_when_every_subgroup_is_named_the_shares_must_add_up_to_one(source):
    mix = {g: (0.2, None) for g in source.subgroups}
    with pytest.raises(InputError, match="no other subgroup is left"):
        with_case_mix(source, mix)
