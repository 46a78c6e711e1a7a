"""perceptiongap: do humans and machines use the same image features in medical diagnosis?

The stages of the data flow (``DESIGN.md``) as functions; each lives in its own module and is
imported on first use, so ``import perceptiongap`` stays light:

==========================  ==================================================================
``read_study``              Observations + Cases from Parquet/CSV, validated (``study``)
``locate_release``          the authors' release: find or download, checksum-verified (``release``)
``import_release``          the release as Observations + Cases (``release``)
``lowpass``                 Gaussian low-pass filtering in cycles/mm (``perturb``)
``create_study``            design a reader study and prepare its images (``readers``)
``export_study``            a reader study's answers as Observations + Cases (``readers``)
``DirichletCalibrator``     calibrate network outputs (``calibrate``)
``build_model_data``        one observer group's model arrays (``model``)
``fit``                     fit the model: stan-advi, advi or nuts -> ArviZ posterior (``model``)
``analyse_results``         every table of a results folder (``workflow``)
``build_report``            figures and the HTML report of a results folder (``report``)
==========================  ==================================================================

Running a network over every exam and severity is ``perceptiongap.predict.predict``; serving a
reader study is ``perceptiongap.readers.serve``.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_LAZY = {
    "read_study": "perceptiongap.study",
    "locate_release": "perceptiongap.release",
    "import_release": "perceptiongap.release",
    "lowpass": "perceptiongap.perturb",
    "create_study": "perceptiongap.readers",
    "export_study": "perceptiongap.readers",
    "DirichletCalibrator": "perceptiongap.calibrate",
    "build_model_data": "perceptiongap.model",
    "fit": "perceptiongap.model",
    "analyse_results": "perceptiongap.workflow",
    "build_report": "perceptiongap.report",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'perceptiongap' has no attribute {name!r}")
