"""Synthetic DICOM mammograms written with pydicom, for the perturb tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


def write_dicom(path: Path, pixels: np.ndarray, *, photometric: str = "MONOCHROME2", bits_stored: int = 12, **header):
    """A minimal single-frame digital mammography DICOM with ``pixels`` (uint16) and ``header``."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    mammography = "1.2.840.10008.5.1.4.1.1.1.2"  # Digital Mammography X-Ray Image Storage - For Presentation
    meta = FileMetaDataset()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.MediaStorageSOPClassUID = mammography
    meta.MediaStorageSOPInstanceUID = generate_uid()
    dataset = Dataset()
    dataset.file_meta = meta
    dataset.SOPClassUID = mammography
    dataset.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    dataset.StudyInstanceUID = generate_uid()
    dataset.SeriesInstanceUID = generate_uid()
    dataset.PatientID = "SYNTH-1"
    dataset.Modality = "MG"
    dataset.ImageType = ["ORIGINAL", "PRIMARY"]
    dataset.Rows, dataset.Columns = pixels.shape
    dataset.SamplesPerPixel = 1
    dataset.PhotometricInterpretation = photometric
    dataset.BitsAllocated = 16
    dataset.BitsStored = bits_stored
    dataset.HighBit = bits_stored - 1
    dataset.PixelRepresentation = 0
    dataset.WindowCenter = 2048
    dataset.WindowWidth = 4096
    for keyword, value in header.items():
        setattr(dataset, keyword, value)
    dataset.PixelData = np.ascontiguousarray(pixels, dtype="<u2").tobytes()
    dataset.save_as(path, enforce_file_format=True)
    return dataset


@pytest.fixture
def make_dicom():
    return write_dicom


def breast_like(shape=(120, 90), faces="right", seed=0) -> np.ndarray:
    """A 12-bit image with tissue fading from the chest wall (the side opposite ``faces``)."""
    rng = np.random.default_rng(seed)
    height, width = shape
    profile = np.linspace(3000, 200, width)  # bright chest wall on the left: faces right
    image = profile[None, :] + rng.normal(0, 100, size=shape)
    image = np.clip(image, 0, 4095).astype(np.uint16)
    return image if faces == "right" else image[:, ::-1].copy()


@pytest.fixture
def make_breast():
    return breast_like
