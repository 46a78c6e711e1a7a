"""Perturb or compose whole folders of mammograms, resumably: the functions behind the CLI.

``perturb_files`` writes one image per (input, cut-off, scheme, annotator) to::

    OUT/<scheme>/cutoff-<D0>/<name>.<png|dcm>                 scheme "entire"
    OUT/<scheme>/<annotator>/cutoff-<D0>/<name>.<png|dcm>     ROI schemes

where ``<name>`` is the input's path relative to the folder it was found in (or its stem when it
was named directly) and ``<D0>`` the cut-off in cycles/mm (``inf`` = unperturbed).
``compose_files`` writes ``OUT/<exam>/cutoff-<D0>.png``, one reading composite per exam and cut-off.
Both keep ``OUT/manifest.csv`` (see :mod:`perceptiongap.perturb.manifest`) and skip outputs that
are already complete.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from perceptiongap.errors import InputError
from perceptiongap.files import atomic_write_bytes, check_writable, partial_files, remove_paths
from perceptiongap.locks import output_lock
from perceptiongap.perturb.compose import COMPOSITE_VIEWS, compose, facing
from perceptiongap.perturb.filters import VARIANTS, pixel_size_mm
from perceptiongap.perturb.images import (
    Mammogram,
    dicom_bytes,
    identify,
    is_dicom,
    is_image_file,
    png_bytes,
    sha256_hex,
)
from perceptiongap.perturb.manifest import MANIFEST_NAME, Manifest
from perceptiongap.perturb.perturbation import ENTIRE, Region, perturb_image
from perceptiongap.perturb.roi import RoiBox, annotators_by_exam, group_rois
from perceptiongap.vocabulary import DEFAULT_CUTOFFS_PER_MM, SCHEMES, severity_mm, validate_cutoffs

#: Manifest columns of ``perturb_files``.
PERTURB_COLUMNS: tuple[str, ...] = (
    "source", "output", "exam", "view", "cutoff_per_mm", "severity_mm", "variant", "scheme", "annotator",
    "rois", "pixel_row_mm", "pixel_col_mm", "settings", "sha256",
)  # fmt: skip
_PERTURB_REQUEST = ("source", "cutoff_per_mm", "scheme", "annotator", "rois", "settings")

#: Manifest columns of ``compose_files``.
COMPOSE_COLUMNS: tuple[str, ...] = (
    "exam", "output", "cutoff_per_mm", "severity_mm", "variant", "source", "settings", "sha256",
)  # fmt: skip
_COMPOSE_REQUEST = ("exam", "cutoff_per_mm", "source", "settings")

Progress = Callable[[int, int], None]
"""Called as ``progress(done, total)`` in units of input images (perturb) or exams (compose)."""


@dataclass(frozen=True)
class InputImage:
    """An input file and the name its outputs take (a relative POSIX path without suffix)."""

    path: Path
    name: str


def format_cutoff(cutoff: float) -> str:
    """A cut-off as written in names and the manifest: ``6``, ``4.5``, ``0.25``, ``inf``."""
    cutoff = float(cutoff)
    if math.isinf(cutoff):
        return "inf"
    short = f"{cutoff:g}"
    return short if float(short) == cutoff else repr(cutoff)


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "_"


def _output_folders(folder: Path) -> list[Path]:
    """Folders at or under ``folder`` that hold a manifest of ``perturb`` or ``compose`` (our own outputs)."""
    owned = []
    for manifest in folder.rglob(MANIFEST_NAME):
        try:
            with open(manifest, encoding="utf-8") as stream:
                header = set(stream.readline().strip().split(","))
        except (OSError, UnicodeDecodeError):
            continue
        if set(PERTURB_COLUMNS) <= header or set(COMPOSE_COLUMNS) <= header:
            owned.append(manifest.parent)
    return owned


def find_images(inputs: Sequence[str | Path], *, exclude: str | Path | None = None) -> list[InputImage]:
    """The PNG and DICOM files named in ``inputs`` or found (recursively) in its folders.

    Hidden files, anything under ``exclude`` (the output folder) and the images of earlier outputs
    of ``perturb`` or ``compose`` (folders holding their ``manifest.csv``) are skipped, with a
    warning naming each such folder. A file named directly is taken, unless it lies under
    ``exclude``. Two inputs that would get the same output name are refused.
    """
    excluded = Path(exclude).resolve() if exclude is not None else None
    found: list[InputImage] = []
    under_exclude = 0
    under_outputs: dict[Path, int] = {}
    for item in inputs:
        item = Path(item)
        if item.is_dir():
            owned = _output_folders(item)
            for path in sorted(item.rglob("*")):
                relative = path.relative_to(item)
                if any(part.startswith(".") for part in relative.parts) or not path.is_file():
                    continue
                if not is_image_file(path):
                    continue
                if excluded is not None and path.resolve().is_relative_to(excluded):
                    under_exclude += 1
                    continue
                owner = next((folder for folder in owned if path.is_relative_to(folder)), None)
                if owner is not None:
                    under_outputs[owner] = under_outputs.get(owner, 0) + 1
                    continue
                found.append(InputImage(path, relative.with_suffix("").as_posix()))
        elif item.is_file():
            if excluded is not None and item.resolve().is_relative_to(excluded):
                raise InputError(f"is inside the output folder {exclude}; its outputs would replace it", source=item)
            found.append(InputImage(item, item.stem))
        else:
            raise InputError("no such file or folder", source=item)
    for folder, count in under_outputs.items():
        warnings.warn(f"{folder}: {count} image(s) skipped: an earlier output of perceptiongap (it holds "
                      f"{MANIFEST_NAME}); name its files to use them as inputs", stacklevel=2)
    if not found:
        named = ", ".join(str(i) for i in inputs)
        reasons = []
        if under_exclude:
            reasons.append(f"the {under_exclude} found are inside the output folder {exclude}; "
                           "write the outputs to a folder outside the inputs")
        if under_outputs:
            reasons.append(f"the {sum(under_outputs.values())} found are earlier outputs of perceptiongap "
                           f"({', '.join(str(f) for f in under_outputs)}); name their files to use them as inputs")
        if reasons:
            raise InputError(f"no images to use in {named}: {'; '.join(reasons)}")
        raise InputError(f"no PNG or DICOM images found in {named}")
    by_name: dict[str, Path] = {}
    for image in found:
        if image.name in by_name and by_name[image.name].resolve() != image.path.resolve():
            raise InputError(f"two inputs would write the same outputs: {by_name[image.name]} and {image.path}")
        by_name[image.name] = image.path
    return list({image.path.resolve(): image for image in found}.values())


def check_output_folder(out_dir: Path) -> None:
    """Refuse an output folder that is a file (a one-line error, not a traceback later)."""
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError("is a file, not a folder; give the output folder", source=out_dir)


def _settings(**values: object) -> str:
    return ";".join(f"{key}={'' if value is None else value}" for key, value in values.items())


def _boxes_text(boxes: Sequence[RoiBox]) -> str:
    return ";".join(f"{b.x0} {b.y0} {b.x1} {b.y1}" for b in boxes)


@dataclass(frozen=True)
class _Planned:
    request: dict[str, str]
    cutoff: float
    region: Region


def _exam_and_view(image: InputImage, *, purpose: str = "") -> tuple[str, str]:
    """The image's exam and view, or a one-line error saying how to name it."""
    exam, view = identify(image.path)
    if exam is None or view is None:
        raise InputError(
            f"cannot tell this image's exam and view{purpose}: name it EXAM_L-CC.png (L-CC, L-MLO, R-CC, R-MLO) "
            "or give DICOM ImageLaterality and ViewPosition",
            source=image.path,
        )
    return exam, view


def _check_common(variant: str, cutoffs_per_mm: Sequence[float], pixel_mm) -> tuple[float, ...]:
    """The settings both commands share; returns the cut-offs by the one rule, unperturbed first."""
    if variant not in VARIANTS:
        raise InputError(f"{variant!r} is not one of {', '.join(VARIANTS)}", source="variant")
    if pixel_mm is not None:
        try:
            pixel_size_mm(pixel_mm)
        except InputError as error:
            raise InputError(str(error), source="pixel_mm") from None
    given = np.atleast_1d(np.asarray(cutoffs_per_mm, dtype=object)).tolist()  # a single number is a list of one
    cutoffs = validate_cutoffs(given, source="cutoffs_per_mm")
    if not cutoffs:
        raise InputError("no cut-offs given", source="cutoffs_per_mm")
    return cutoffs


def _run(
    jobs: list[Callable[[], list[dict[str, str]]]],
    manifest: Manifest,
    workers: int,
    progress: Progress | None,
    total: int,
    done: int,
) -> None:
    """Run ``jobs`` (each returns manifest rows), ``workers`` at a time, recording as they finish."""
    if progress:
        progress(done, total)
    try:
        if workers <= 1:
            for job in jobs:
                manifest.add(job())
                done += 1
                if progress:
                    progress(done, total)
            return
        # Threads, not processes: FFTs, NumPy and zlib release the GIL, and errors stay InputErrors.
        with ThreadPoolExecutor(max_workers=workers) as pool:
            pending = {pool.submit(job) for job in jobs}
            while pending:
                finished, pending = wait(pending, return_when=FIRST_EXCEPTION)
                for future in finished:
                    if future.exception() is not None:
                        for other in pending:
                            other.cancel()
                        raise future.exception()
                    manifest.add(future.result())
                    done += 1
                    if progress:
                        progress(done, total)
    finally:
        manifest.flush()


def perturb_files(
    inputs: Sequence[str | Path],
    out_dir: str | Path,
    *,
    cutoffs_per_mm: Sequence[float] = DEFAULT_CUTOFFS_PER_MM,
    variant: str = "physical",
    pixel_mm: float | Sequence[float] | None = None,
    rois: Sequence[RoiBox] | None = None,
    scheme: str = "entire",
    feather_mm: float = 0.0,
    file_format: str = "png",
    workers: int = 1,
    force: bool = False,
    progress: Progress | None = None,
) -> pd.DataFrame:
    """Low-pass filter every input image at every cut-off; returns the manifest (strings).

    ``cutoffs_per_mm`` follow :func:`perceptiongap.vocabulary.validate_cutoffs` (default: the
    unperturbed image and the paper's eight cut-offs). ``pixel_mm`` is used for files that carry
    no spacing (PNG). ``rois`` and a ROI ``scheme`` give one version per annotator who drew on the
    image's exam; images of exams without ROIs are skipped. ``force`` rewrites outputs that an
    earlier run made from a different request. ``progress(done, total)`` is called in units of
    input images. Each image goes through :func:`perceptiongap.perturb.perturb_image`.
    """
    cutoffs = _check_common(variant, cutoffs_per_mm, pixel_mm)
    if scheme not in SCHEMES:
        raise InputError(f"{scheme!r} is not one of {', '.join(SCHEMES)}", source="scheme")
    if (scheme == "entire") != (rois is None):
        raise InputError("ROI schemes need ROI boxes (rois), and ROI boxes need a ROI scheme (scheme)", source="rois")
    if file_format not in ("png", "dicom"):
        raise InputError(f"{file_format!r} is not png or dicom", source="file_format")
    if not math.isfinite(feather_mm) or feather_mm < 0:
        raise InputError(f"{feather_mm!r} is not a non-negative number of mm", source="feather_mm")
    out_dir = Path(out_dir)
    check_output_folder(out_dir)
    with output_lock(out_dir, what="output folder"):
        check_writable(out_dir)
        images = find_images(inputs, exclude=out_dir)
        if file_format == "dicom":
            for image in images:
                if not is_dicom(image.path):
                    raise InputError("is not DICOM, so it cannot be written as DICOM; write PNG (file_format 'png')",
                                     source=image.path)
        pixel_text = "" if pixel_mm is None else "x".join(f"{v:g}" for v in pixel_size_mm(pixel_mm))
        settings = _settings(variant=variant, feather_mm=f"{feather_mm:g}", pixel_mm=pixel_text, format=file_format)
        suffix = ".png" if file_format == "png" else ".dcm"

        boxes_by_key = group_rois(rois or ())
        annotators = annotators_by_exam(rois or ())
        plans: list[tuple[InputImage, list[_Planned]]] = []
        skipped = 0
        for image in images:
            if scheme == "entire":
                versions = [("", ())]
            else:
                exam, view = _exam_and_view(image, purpose=" for its ROIs")
                if exam not in annotators:
                    skipped += 1
                    continue
                versions = [(name, boxes_by_key.get((exam, view, name), ())) for name in annotators[exam]]
            planned = []
            for annotator, boxes in versions:
                folder = f"{scheme}/{_safe_name(annotator)}" if annotator else scheme
                for cutoff in cutoffs:
                    output = f"{folder}/cutoff-{format_cutoff(cutoff)}/{image.name}{suffix}"
                    request = {
                        "source": str(image.path.resolve()),
                        "output": output,
                        "cutoff_per_mm": format_cutoff(cutoff),
                        "scheme": scheme,
                        "annotator": annotator,
                        "rois": _boxes_text(boxes),
                        "settings": settings,
                    }
                    region = ENTIRE if scheme == "entire" else Region(scheme, annotator, tuple(boxes))
                    planned.append(_Planned(request, cutoff, region))
            plans.append((image, planned))
        if skipped:
            warnings.warn(f"{skipped} image(s) skipped: their exams have no ROIs in the ROI file", stacklevel=2)
        outputs = [p.request["output"] for _, planned in plans for p in planned]
        if len(set(outputs)) != len(outputs):
            raise InputError(
                "two requested outputs share a file name (annotator names that differ only in punctuation?)")

        manifest = Manifest(out_dir, PERTURB_COLUMNS, _PERTURB_REQUEST)
        remove_paths(partial_files(out_dir))  # what a killed run left half-written; we hold the folder
        jobs = []
        for image, planned in plans:
            todo = []
            for plan in planned:
                status = manifest.status(plan.request)
                if status == "conflict" and not force:
                    raise InputError(manifest.describe_conflict(plan.request), source=out_dir)
                if status != "complete":
                    todo.append(plan)
            if todo:
                jobs.append(
                    lambda image=image, todo=todo: _perturb_one(image, todo, out_dir, variant, pixel_mm, feather_mm,
                                                                file_format)
                )
        _run(jobs, manifest, workers, progress, total=len(plans), done=len(plans) - len(jobs))
        return manifest.table()


def _derivation(variant: str, cutoff: float, region: Region, feather_mm: float) -> str:
    what = "unperturbed" if math.isinf(cutoff) else (
        f"Gaussian low-pass filter, cut-off {cutoff:g} cycles/mm (severity {severity_mm(cutoff):g} mm)"
    )
    scheme, annotator = region.scheme, region.annotator
    where = scheme if not annotator else f"{scheme} of annotator {annotator}'s ROIs"
    feather = f", feather {feather_mm:g} mm" if feather_mm and scheme != "entire" else ""
    return f"perceptiongap {variant} variant: {what}, scheme {where}{feather}"


def _perturb_one(
    image: InputImage,
    plans: list[_Planned],
    out_dir: Path,
    variant: str,
    pixel_mm: float | Sequence[float] | None,
    feather_mm: float,
    file_format: str,
) -> list[dict[str, str]]:
    perturbed = perturb_image(
        image.path,
        list(dict.fromkeys(plan.cutoff for plan in plans)),
        pixel_mm=pixel_mm,
        variant=variant,
        regions=list(dict.fromkeys(plan.region for plan in plans)),
        feather_mm=feather_mm,
    )
    mammogram = perturbed.original
    rows = []
    for plan in plans:  # region by region, as planned
        pixels = perturbed.pixels(plan.cutoff, plan.region)
        if file_format == "png":
            data = png_bytes(pixels, mammogram.pixel_mm, source=image.path)
        else:
            description = _derivation(variant, plan.cutoff, plan.region, feather_mm)
            data = dicom_bytes(mammogram, pixels, description, bits_stored=12 if variant == "release" else None)
        atomic_write_bytes(out_dir / plan.request["output"], data)
        rows.append(
            {
                **plan.request,
                "exam": mammogram.exam or "",
                "view": mammogram.view or "",
                "severity_mm": f"{severity_mm(plan.cutoff):g}",
                "variant": variant,
                "pixel_row_mm": f"{mammogram.pixel_mm[0]:g}",
                "pixel_col_mm": f"{mammogram.pixel_mm[1]:g}",
                "sha256": sha256_hex(data),
            }
        )
    return rows


def group_exams(images: Sequence[InputImage]) -> dict[str, dict[str, InputImage]]:
    """The four standard views of each exam; other views are skipped with a warning.

    Refuses an image whose exam or view cannot be told, a view given twice, or a missing view.
    """
    exams: dict[str, dict[str, InputImage]] = {}
    other = 0
    for image in images:
        exam, view = _exam_and_view(image)
        if view not in COMPOSITE_VIEWS:
            other += 1
            continue
        views = exams.setdefault(exam, {})
        if view in views:
            raise InputError(f"exam {exam!r} has two {view} images: {views[view].path} and {image.path}")
        views[view] = image
    if other:
        warnings.warn(f"{other} image(s) skipped: only CC and MLO views go into the reading composite", stacklevel=2)
    for exam, views in exams.items():
        missing = [view for view in COMPOSITE_VIEWS if view not in views]
        if missing:
            raise InputError(f"exam {exam!r} lacks the view(s) {', '.join(missing)} for its reading composite")
    if not exams:
        raise InputError("no exam with CC and MLO views found")
    return exams


def compose_files(
    inputs: Sequence[str | Path],
    out_dir: str | Path,
    *,
    cutoffs_per_mm: Sequence[float] = DEFAULT_CUTOFFS_PER_MM,
    variant: str = "physical",
    pixel_mm: float | Sequence[float] | None = None,
    gap_px: int = 0,
    force: bool = False,
    progress: Progress | None = None,
) -> pd.DataFrame:
    """Write every exam's reading composite at every cut-off; returns the manifest (strings).

    Cut-offs as for :func:`perturb_files`; each view goes through
    :func:`perceptiongap.perturb.perturb_image`. ``progress(done, total)`` counts exams.
    """
    cutoffs = _check_common(variant, cutoffs_per_mm, pixel_mm)
    if gap_px < 0:
        raise InputError(f"{gap_px} is not a non-negative number of pixels", source="gap_px")
    out_dir = Path(out_dir)
    check_output_folder(out_dir)
    with output_lock(out_dir, what="output folder"):
        check_writable(out_dir)
        exams = group_exams(find_images(inputs, exclude=out_dir))
        pixel_text = "" if pixel_mm is None else "x".join(f"{v:g}" for v in pixel_size_mm(pixel_mm))
        settings = _settings(variant=variant, pixel_mm=pixel_text, gap_px=gap_px)
        manifest = Manifest(out_dir, COMPOSE_COLUMNS, _COMPOSE_REQUEST)
        remove_paths(partial_files(out_dir))  # what a killed run left half-written; we hold the folder
        jobs = []
        for exam, views in sorted(exams.items()):
            sources = ";".join(str(views[view].path.resolve()) for view in COMPOSITE_VIEWS)
            todo = []
            for cutoff in cutoffs:
                request = {
                    "exam": exam,
                    "output": f"{_safe_name(exam)}/cutoff-{format_cutoff(cutoff)}.png",
                    "cutoff_per_mm": format_cutoff(cutoff),
                    "source": sources,
                    "settings": settings,
                }
                status = manifest.status(request)
                if status == "conflict" and not force:
                    raise InputError(manifest.describe_conflict(request), source=out_dir)
                if status != "complete":
                    todo.append((cutoff, request))
            if todo:
                jobs.append(
                    lambda views=views, todo=todo: _compose_one(views, todo, out_dir, variant, pixel_mm, gap_px))
        _run(jobs, manifest, 1, progress, total=len(exams), done=len(exams) - len(jobs))
        return manifest.table()


def _compose_one(
    views: dict[str, InputImage],
    todo: list[tuple[float, dict[str, str]]],
    out_dir: Path,
    variant: str,
    pixel_mm: float | Sequence[float] | None,
    gap_px: int,
) -> list[dict[str, str]]:
    cutoffs = [cutoff for cutoff, _ in todo]
    perturbed = {view: perturb_image(image.path, cutoffs, pixel_mm=pixel_mm, variant=variant)
                 for view, image in views.items()}
    read: dict[str, Mammogram] = {view: image.original for view, image in perturbed.items()}
    orientations = {view: mammogram.patient_orientation for view, mammogram in read.items()}
    spacings = {mammogram.pixel_mm for mammogram in read.values()}
    spacing = next(iter(spacings)) if len(spacings) == 1 else None
    rows = []
    for cutoff, request in todo:
        # Orientation is decided on the unperturbed pixels, so every severity is laid out alike.
        picture = compose(
            {view: perturbed[view].pixels(cutoff) for view in read},
            {view: orientations[view] or _facing_hint(read[view]) for view in read},
            gap_px=gap_px,
        )
        data = png_bytes(picture, spacing, source=request["output"])
        atomic_write_bytes(out_dir / request["output"], data)
        rows.append(
            {**request, "severity_mm": f"{severity_mm(cutoff):g}", "variant": variant, "sha256": sha256_hex(data)}
        )
    return rows


def _facing_hint(mammogram: Mammogram) -> tuple[str, str]:
    """A PatientOrientation-like hint from the unperturbed pixels (``A`` = faces right)."""
    return ("A" if facing(mammogram.pixels) == "right" else "P", "")


__all__ = [
    "COMPOSE_COLUMNS",
    "MANIFEST_NAME",
    "PERTURB_COLUMNS",
    "InputImage",
    "check_output_folder",
    "compose_files",
    "find_images",
    "format_cutoff",
    "group_exams",
    "perturb_files",
]
