"""Whole folders: one default set of cut-offs and one cut-off rule for ``perturb`` and ``compose``."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from perceptiongap.errors import InputError
from perceptiongap.perturb import compose_files, perturb_files
from perceptiongap.vocabulary import PAPER_SEVERITIES_MM


@pytest.fixture
def exam(tmp_path, make_breast):
    folder = tmp_path / "exam"
    folder.mkdir()
    for seed, view in enumerate(("L-CC", "L-MLO", "R-CC", "R-MLO")):
        Image.fromarray(make_breast((64, 48), faces="right" if view[0] == "L" else "left", seed=seed)).save(
            folder / f"ex1_{view}.png")
    return folder


def test_the_default_is_the_unperturbed_image_and_the_papers_eight_cutoffs(exam, tmp_path):
    # 0.07 mm pixels: the paper's 6 cycles/mm is below their Nyquist frequency (7.1 cycles/mm).
    perturbed = perturb_files([exam / "ex1_L-CC.png"], tmp_path / "p", pixel_mm=0.07)
    composed = compose_files([exam], tmp_path / "c", pixel_mm=0.07)
    for table in (perturbed, composed):
        assert sorted(float(s) for s in table["severity_mm"]) == sorted(PAPER_SEVERITIES_MM)
    unperturbed = perturbed.loc[perturbed["cutoff_per_mm"] == "inf", "output"].item()
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "p" / unperturbed)),
                                  np.asarray(Image.open(exam / "ex1_L-CC.png")))


@pytest.mark.parametrize(
    ("cutoffs", "message"),
    [
        ([6, 6.01], "cutoffs_per_mm: cut-off 6.01 and 6 share the severity label 0.17 mm"),
        ([2, 2], "cutoffs_per_mm: cut-off 2 is given twice"),
        ([0.5, -1], "cutoffs_per_mm: -1 is not a positive number of cycles/mm"),
        ([], "cutoffs_per_mm: no cut-offs given"),
    ],
)
def test_perturb_and_compose_refuse_cutoffs_by_the_one_rule(exam, tmp_path, cutoffs, message):
    for run in (perturb_files, compose_files):
        with pytest.raises(InputError) as refused:
            run([exam], tmp_path / "out", cutoffs_per_mm=cutoffs, pixel_mm=0.07)
        assert str(refused.value).startswith(message)
    assert not (tmp_path / "out").exists()

