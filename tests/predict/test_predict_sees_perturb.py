"""The network sees exactly what ``perturb`` writes: every input of ``predict`` equals, pixel for
pixel, the image ``perturb_files`` writes for the same exam, view, cut-off, scheme and annotator."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from perceptiongap.perturb import perturb_files, read_rois
from perceptiongap.predict import predict
from perceptiongap.predict.jobs import make_jobs, read_boxes, read_exams
from perceptiongap.vocabulary import VIEWS

from . import netdoubles

CUTOFFS = (math.inf, 3.0, 1.0, 0.25)
SCHEMES = ("entire", "roi_interior", "roi_exterior")


@pytest.mark.filterwarnings("ignore:.*image.s. skipped")
@pytest.mark.parametrize(("variant", "feather_mm"), [("physical", 0.5), ("release", 0.0)])
def test_every_network_input_is_the_image_perturb_writes(exams_folder, rois_file, tmp_path, variant, feather_mm):
    netdoubles.Recorder.seen = []
    predict("tests.predict.netdoubles:Recorder", exams_folder / "exams.csv", "g", tmp_path / "obs.parquet",
            cutoffs_per_mm=CUTOFFS, rois=rois_file, schemes=SCHEMES, variant=variant, feather_mm=feather_mm,
            batch_size=1)
    images = sorted(exams_folder.glob("*.png"))
    for scheme in SCHEMES:
        rois = None if scheme == "entire" else read_rois(rois_file)
        perturb_files(images, tmp_path / "perturbed", cutoffs_per_mm=CUTOFFS, variant=variant, pixel_mm=0.07,
                      rois=rois, scheme=scheme, feather_mm=feather_mm)

    # predict runs its jobs in order (exams, then schemes and annotators) and each at every cut-off.
    jobs = make_jobs(read_exams(exams_folder / "exams.csv"), SCHEMES, read_boxes(rois_file))
    expected = [(job, cutoff) for job in jobs for cutoff in CUTOFFS]
    assert len(netdoubles.Recorder.seen) == len(expected) == (4 + 2 * 3) * len(CUTOFFS)
    cutoff_names = {math.inf: "inf", 3.0: "3", 1.0: "1", 0.25: "0.25"}
    for (job, cutoff), exam in zip(expected, netdoubles.Recorder.seen):
        folder = job.scheme if job.scheme == "entire" else f"{job.scheme}/{job.annotator}"
        for view in VIEWS:
            written = np.asarray(Image.open(
                tmp_path / "perturbed" / folder / f"cutoff-{cutoff_names[cutoff]}" / f"{job.exam}_{view}.png"))
            image, pixel_mm = exam[view]
            assert image.dtype == np.float32 and pixel_mm == (0.07, 0.07)
            np.testing.assert_array_equal(image, written.astype(np.float32), err_msg=f"{job} {cutoff} {view}")
