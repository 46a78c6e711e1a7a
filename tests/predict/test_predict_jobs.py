"""The exams file, the job list, and one exam's jobs: perturbation, ROI compositing, batching."""

from __future__ import annotations

import math

import numpy as np
import pytest

from perceptiongap.errors import InputError
from perceptiongap.predict import jobs
from perceptiongap.predict.jobs import Job, make_jobs, make_tasks, perturbed_exams, read_boxes, read_exams, run_task
from perceptiongap.predict.plugin import VIEWS
from perceptiongap.severities import PAPER_CUTOFFS_PER_MM, PAPER_SEVERITIES_MM

CUTOFFS = (math.inf, *PAPER_CUTOFFS_PER_MM)


def test_read_exams_resolves_paths_and_keeps_the_order_of_first_appearance(exams_folder):
    exams = read_exams(exams_folder / "exams.csv")
    assert [e.exam for e in exams] == [f"synthetic-{i}" for i in range(4)]
    assert exams[2].paths == tuple(str(exams_folder / f"synthetic-2_{v}.png") for v in VIEWS)
    assert exams[2].pixel_mm == (0.1,) * 4


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
         "column 'pixel_mm', row 1: '-1' is not a positive number of mm"),
        ("exam,view,path\ne,L-CC,synthetic-0_L-CC.png\n",
         "row 1: synthetic-0_L-CC.png has no pixel spacing; add a 'pixel_mm' column or pass --pixel-mm"),
        ("exam,view,path\n,L-CC,synthetic-0_L-CC.png\n", "column 'exam', row 1: empty value"),
    ],
)
def test_read_exams_refuses_bad_files_with_one_line(exams_folder, rows, message):
    path = write_csv(exams_folder, rows)
    with pytest.raises(InputError, match=message) as error:
        read_exams(path)
    assert str(error.value).startswith(f"{path}: ") and "\n" not in str(error.value)


def test_pixel_mm_argument_fills_in_for_rows_without_one(exams_folder):
    rows = "exam,view,path\n" + "".join(f"e,{v},synthetic-0_{v}.png\n" for v in VIEWS)
    (exam,) = read_exams(write_csv(exams_folder, rows), pixel_mm=0.07)
    assert exam.pixel_mm == (0.07,) * 4


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
    with pytest.raises(InputError, match="need ROI boxes: pass --rois"):
        make_jobs(exams, ["roi_interior"])
    with pytest.raises(InputError, match="unknown scheme\\(s\\) everywhere"):
        make_jobs(exams, ["everywhere"])


def test_roi_schemes_filter_only_inside_or_only_outside_the_boxes(exams_folder, rois_file):
    exams = read_exams(exams_folder / "exams.csv")
    boxes = read_boxes(rois_file)
    (task,) = make_tasks(exams[1:2], make_jobs(exams[1:2], ["entire", "roi_interior", "roi_exterior"], boxes),
                         CUTOFFS, boxes=boxes)
    originals = {v: jobs.engine.read_image(p, 0.1)[0].astype(np.float32) for v, p in zip(VIEWS, task.images.paths)}
    filtered = {v: jobs.engine.lowpass(originals[v], 0.1, PAPER_CUTOFFS_PER_MM) for v in VIEWS}
    seen = 0
    for job, cutoff, exam in perturbed_exams(task):
        assert set(exam) == set(VIEWS)
        for view, (image, pixel_mm) in exam.items():
            assert image.dtype == np.float32 and pixel_mm == 0.1
            if math.isinf(cutoff):
                np.testing.assert_array_equal(image, originals[view])
                continue
            low = filtered[view][PAPER_CUTOFFS_PER_MM.index(cutoff)]
            inside = np.zeros(image.shape, dtype=bool)
            for x0, y0, x1, y1 in boxes["synthetic-1"].get((job.annotator, view), np.empty((0, 4))).astype(int):
                inside[y0:y1, x0:x1] = True
            filtered_part = {"entire": np.ones_like(inside), "roi_interior": inside, "roi_exterior": ~inside}[job.scheme]
            np.testing.assert_allclose(image[filtered_part], low[filtered_part], rtol=1e-6, atol=1e-3)
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
