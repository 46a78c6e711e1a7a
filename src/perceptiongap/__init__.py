"""perceptiongap: do humans and machines use the same image features in medical diagnosis?

The stages of the data flow (see ``DESIGN.md``) are importable from their modules:
``perceptiongap.study`` (data model), ``perceptiongap.release`` (the authors' release),
``perceptiongap.perturb`` (filters and images), ``perceptiongap.predict`` (networks),
``perceptiongap.calibrate``, ``perceptiongap.model`` (the Bayesian model and its inference),
``perceptiongap.analysis`` and ``perceptiongap.report``.
"""

__version__ = "0.1.0"
