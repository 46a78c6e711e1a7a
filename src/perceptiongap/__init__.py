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
``fit``                     the fit stage: every fit of a study into a results folder (``results``)
``analyse``                 the analyse stage: every table of a results folder (``results``)
``report``                  the report stage: figures and the HTML report (``results``; also
                            the ``perceptiongap.report`` package, which is callable)
``reproduce``               the paper from the authors' release, end to end (``results``)
``build_report``            figures and the HTML report of a results folder (``report``)
``plan_study``              simulated power of planned reader studies (``results.plan_stage``)
==========================  ==================================================================

The stages take the options of the commands of the same name (``perceptiongap fit --advi-seeds 2``
is ``perceptiongap.fit(..., advi_seeds=2)``). One model fit is ``perceptiongap.model.fit``;
running a network over every exam and severity is ``perceptiongap.predict.predict``; serving a
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
    "fit": "perceptiongap.results",
    "analyse": "perceptiongap.results",
    "reproduce": "perceptiongap.results",
    "build_report": "perceptiongap.report",
    "plan_study": "perceptiongap.results.plan_stage",
}

__all__ = ["__version__", "report", *_LAZY]


def __getattr__(name: str):
    if name == "report":  # the report package, which is callable as the report stage
        return importlib.import_module("perceptiongap.report")
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'perceptiongap' has no attribute {name!r}")
