"""The exams file, the job list, and one exam's jobs: perturbation, ROI compositing, batching."""

from __future__ import annotations

import math

import numpy as np
import pytest

from perceptiongap import perturb
from perceptiongap.errors import InputError
from perceptiongap.predict import jobs
from perceptiongap.predict.jobs import Job, make_jobs, make_tasks, perturbed_exams, read_boxes, read_exams, run_task
from perceptiongap.predict.plugin import VIEWS
from perceptiongap.vocabulary import PAPER_CUTOFFS_PER_MM, PAPER_SEVERITIES_MM

from .predict_helpers import write_rois

CUTOFFS = (math.inf, *PAPER_CUTOFFS_PER_MM)


def test_read_exams_resolves_paths_and_keeps_the_order_of_first_appearance(exams_folder):
    exams = read_exams(exams_folder / "exams.csv")
    assert [e.exam for e in exams] == [f"synthetic-{i}" for i in range(4)]
    assert exams[2].paths == tuple(str(exams_folder / f"synthetic-2_{v}.png") for v in VIEWS)
    assert exams[2].pixel_mm == (0.07,) * 4


def write_csv(folder, text):
    path = folder / "bad.csv"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ("exam,path\ne,x.png\n", "missing column\\(s\\) 'view'"),
        ("exam,view,path\n", "no rows"),
        ("exam,view,path,pixel_mm\ne,L-CC,synthetic-0_L-CC.png,0.1\ne,LCC,synthetic-0_L-MLO.png,0.1\n",
         "column 'view', row 2: 'LCC' is not one of L-CC, L-MLO, R-CC, R-MLO"),
        ("exam,view,path,pixel_mm\ne,L-CC,synthetic-0_L-CC.png,0.1\ne,L-CC,synthetic-0_L-MLO.png,0.1\n",
         "row 2: exam 'e' has view L-CC twice"),
        ("exam,view,path,pixel_mm\ne,L-CC,synthetic-0_L-CC.png,0.1\ne,R-CC,synthetic-0_R-CC.png,0.1\n",
         "exam 'e' lacks view\\(s\\) L-MLO, R-MLO"),
        ("exam,view,path,pixel_mm\ne,L-CC,missing.png,0.1\n", "column 'path', row 1: no such file"),
        ("exam,view,path,pixel_mm\ne,L-CC,synthetic-0_L-CC.png,-1\n",
         "column 'pixel_mm', row 1: '-1' is not a pixel size in mm like 0.07 or 0.07x0.065"),
        ("exam,view,path\ne,L-CC,synthetic-0_L-CC.png\n",
         "row 1: synthetic-0_L-CC.png has no pixel spacing; add a 'pixel_mm' column or give pixel_mm"),
        ("exam,view,path\n,L-CC,synthetic-0_L-CC.png\n", "column 'exam', row 1: empty value"),
    ],
)
def test_read_exams_refuses_bad_files_with_one_line(exams_folder, rows, message):
    path = write_csv(exams_folder, rows)
    with pytest.raises(InputError, match=message) as error:
        read_exams(path)
    assert str(error.value).startswith(f"{path}: ") and "\n" not in str(error.value)


def test_pixel_mm_argument_fills_in_for_rows_without_one(exams_folder):
    rows = "exam,view,path,pixel_mm\n" + "".join(
        f"e,{v},synthetic-0_{v}.png,{'0.05x0.06' if v == 'R-MLO' else ''}\n" for v in VIEWS)
    (exam,) = read_exams(write_csv(exams_folder, rows), pixel_mm=0.07)
    assert exam.pixel_mm == (0.07, 0.07, 0.07, (0.05, 0.06))


def test_jobs_cover_each_scheme_and_each_annotator_of_an_exam(exams_folder, rois_file):
    exams = read_exams(exams_folder / "exams.csv")
    boxes = read_boxes(rois_file)
    all_jobs = make_jobs(exams, ["roi_exterior", "entire", "roi_interior"], boxes)
    assert [job.key for job in all_jobs] == [
        ("synthetic-0", "entire", ""),
        ("synthetic-0", "roi_interior", "a"),
        ("synthetic-0", "roi_exterior", "a"),
        ("synthetic-1", "entire", ""),
        ("synthetic-1", "roi_interior", "a"),
        ("synthetic-1", "roi_interior", "b"),
        ("synthetic-1", "roi_exterior", "a"),
        ("synthetic-1", "roi_exterior", "b"),
        ("synthetic-2", "entire", ""),
        ("synthetic-3", "entire", ""),
    ]
    tasks = make_tasks(exams, all_jobs, CUTOFFS, boxes=boxes, done={("synthetic-0", "entire", ""),
                                                                   ("synthetic-2", "entire", "")})
    assert [(t.images.exam, len(t.jobs)) for t in tasks] == [("synthetic-0", 2), ("synthetic-1", 5), ("synthetic-3", 1)]
    with pytest.raises(InputError, match="schemes: scheme\\(s\\) roi_interior need ROI boxes: give a ROI file \\(rois\\)"):
        make_jobs(exams, ["roi_interior"])
    with pytest.raises(InputError, match="unknown scheme\\(s\\) everywhere"):
        make_jobs(exams, ["everywhere"])


def test_roi_schemes_filter_only_inside_or_only_outside_the_boxes(exams_folder, rois_file):
    exams = read_exams(exams_folder / "exams.csv")
    boxes = read_boxes(rois_file)
    (task,) = make_tasks(exams[1:2], make_jobs(exams[1:2], ["entire", "roi_interior", "roi_exterior"], boxes),
                         CUTOFFS, boxes=boxes)
    originals = {v: perturb.read_image(p, 0.07).pixels for v, p in zip(VIEWS, task.images.paths)}
    filtered = {v: perturb.lowpass(originals[v], 0.07, PAPER_CUTOFFS_PER_MM) for v in VIEWS}
    seen = 0
    for job, cutoff, exam in perturbed_exams(task):
        assert set(exam) == set(VIEWS)
        for view, (image, pixel_mm) in exam.items():
            assert image.dtype == np.float32 and pixel_mm == (0.07, 0.07)
            if math.isinf(cutoff):
                np.testing.assert_array_equal(image, originals[view])
                continue
            low = filtered[view][PAPER_CUTOFFS_PER_MM.index(cutoff)]
            inside = np.zeros(image.shape, dtype=bool)
            for box in boxes["synthetic-1"].get((job.annotator, view), ()):
                inside[box.y0 : box.y1, box.x0 : box.x1] = True
            filtered_part = {"entire": np.ones_like(inside), "roi_interior": inside,
                             "roi_exterior": ~inside}[job.scheme]
            np.testing.assert_array_equal(image[filtered_part], low[filtered_part])
            np.testing.assert_array_equal(image[~filtered_part], originals[view][~filtered_part])
        seen += 1
    assert seen == 5 * len(CUTOFFS)


def test_run_task_rows_do_not_depend_on_the_batch_size(exams_folder, rois_file):
    exams = read_exams(exams_folder / "exams.csv")
    boxes = read_boxes(rois_file)
    (task,) = make_tasks(exams[1:2], make_jobs(exams[1:2], ["entire", "roi_exterior"], boxes), CUTOFFS, boxes=boxes)
    rows = run_task(task, "perceptiongap.reference:network", batch_size=1)
    assert len(rows) == 3 * len(CUTOFFS) * 2
    assert list(rows.columns) == list(jobs.TASK_COLUMNS)
    first_job = rows.iloc[: 2 * len(CUTOFFS)]
    assert list(first_job["severity_mm"][::2]) == list(PAPER_SEVERITIES_MM)
    assert list(first_job["breast"][:4]) == ["L", "R", "L", "R"]
    assert set(rows["annotator"]) == {"", "a", "b"}
    for batch_size in (4, 100):
        again = run_task(task, "perceptiongap.reference:network", batch_size=batch_size)
        np.testing.assert_array_equal(again["prediction"], rows["prediction"])


def test_job_keys_identify_exam_scheme_and_annotator():
    assert Job("e", "roi_interior", "a").key == ("e", "roi_interior", "a")


def test_a_cutoff_the_image_cannot_represent_names_the_file(exams_folder):
    exam = read_exams(exams_folder / "exams.csv")[0]
    coarse = jobs.ExamImages(exam.exam, exam.paths, (0.1,) * 4)  # Nyquist 5 cycles/mm < 6
    (task,) = make_tasks([coarse], [Job(exam.exam, "entire")], CUTOFFS)
    with pytest.raises(InputError) as error:
        run_task(task, "perceptiongap.reference:network", 8)
    assert str(error.value).startswith(f"{exam.paths[0]}: cut-off 6 cycles/mm is above the Nyquist frequency 5")


def test_a_box_outside_the_image_names_the_roi(exams_folder, tmp_path):
    exams = read_exams(exams_folder / "exams.csv")[:1]
    boxes = read_boxes(write_rois(tmp_path / "rois.csv", [("synthetic-0", "R-CC", "x", 100, 100, 200, 140)]))
    (task,) = make_tasks(exams, make_jobs(exams, ["roi_interior"], boxes), CUTOFFS, boxes=boxes)
    with pytest.raises(InputError, match="ROI exam 'synthetic-0' view R-CC annotator 'x' .* is outside the 128 x 160"):
        run_task(task, "perceptiongap.reference:network", 8)
