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



# --------------------------------------------------------------------------------------------
# What a folder search takes as input, and what it refuses as output (issue 16)


def test_earlier_outputs_under_an_input_folder_are_skipped_with_a_warning(exam, tmp_path):
    """Issue 16: `perturb data --out data/roi` also filtered the already-filtered images of data/perturbed."""
    perturb_files([exam], exam / "perturbed", cutoffs_per_mm=[2, 1], pixel_mm=0.1)
    with pytest.warns(UserWarning, match="perturbed: 8 image"):
        compose_files([exam], exam / "composites", cutoffs_per_mm=[2], pixel_mm=0.1)
    with pytest.warns(UserWarning) as warned:
        table = perturb_files([exam], exam / "again", cutoffs_per_mm=[2], pixel_mm=0.1)
    assert len(table) == 4  # the four views, not their 8 filtered copies nor the composite
    assert sorted(table["output"]) == [f"entire/cutoff-2/ex1_{v}.png" for v in ("L-CC", "L-MLO", "R-CC", "R-MLO")]
    messages = sorted(str(w.message) for w in warned)
    assert messages == [
        f"{exam / 'composites'}: 1 image(s) skipped: an earlier output of perceptiongap (it holds manifest.csv); "
        "name its files to use them as inputs",
        f"{exam / 'perturbed'}: 8 image(s) skipped: an earlier output of perceptiongap (it holds manifest.csv); "
        "name its files to use them as inputs",
    ]
    # compose, which refused the folder before, now skips the outputs alike.
    with pytest.warns(UserWarning):
        assert len(compose_files([exam], tmp_path / "c", cutoffs_per_mm=[2], pixel_mm=0.1)) == 1


def test_a_manifest_csv_of_someone_else_does_not_hide_a_folder(exam, tmp_path):
    (exam / "manifest.csv").write_text("patient,file\n1,ex1_L-CC.png\n")
    assert len(perturb_files([exam], tmp_path / "out", cutoffs_per_mm=[2], pixel_mm=0.1)) == 4


def test_images_skipped_because_they_are_under_the_output_folder_are_named_as_such(exam):
    """Issue 16: `perturb infold --out infold` said "no PNG or DICOM images found"."""
    with pytest.raises(InputError) as refused:
        perturb_files([exam], exam, cutoffs_per_mm=[2], pixel_mm=0.1)
    assert str(refused.value) == (f"no images to use in {exam}: the 4 found are inside the output folder {exam}; "
                                  "write the outputs to a folder outside the inputs")
    assert sorted(p.name for p in exam.iterdir()) == [f"ex1_{v}.png" for v in ("L-CC", "L-MLO", "R-CC", "R-MLO")]


def test_an_image_named_inside_the_output_folder_is_refused(exam, tmp_path):
    out = tmp_path / "out"
    perturb_files([exam], out, cutoffs_per_mm=[2], pixel_mm=0.1)
    named = out / "entire" / "cutoff-2" / "ex1_L-CC.png"
    with pytest.raises(InputError) as refused:
        perturb_files([named], out, cutoffs_per_mm=[2], pixel_mm=0.1)
    assert str(refused.value) == f"{named}: is inside the output folder {out}; its outputs would replace it"


@pytest.mark.parametrize("run", [perturb_files, compose_files])
def test_an_output_folder_that_is_a_file_is_refused_before_any_work(exam, tmp_path, run):
    """Issue 16: `perturb --out FILE` ended in a NotADirectoryError traceback."""
    out = tmp_path / "taken"
    out.write_text("a file of the user's")
    with pytest.raises(InputError) as refused:
        run([exam], out, cutoffs_per_mm=[2], pixel_mm=0.1)
    assert str(refused.value) == f"{out}: is a file, not a folder; give the output folder"
    assert out.read_text() == "a file of the user's"


def test_a_killed_runs_half_written_files_are_removed_on_the_next_run(exam, tmp_path):
    out = tmp_path / "out"
    perturb_files([exam], out, cutoffs_per_mm=[2], pixel_mm=0.1)
    leftover = out / "entire" / "cutoff-2" / ".ex1_L-CC.png.k1ll3d.partial"  # what a kill before the rename leaves
    leftover.write_bytes(b"half a png")
    perturb_files([exam], out, cutoffs_per_mm=[2], pixel_mm=0.1)
    assert not leftover.exists()
