"""Run a network over every exam x severity x scheme and collect its predictions as Observations.

- :mod:`~perceptiongap.predict.plugin`: the network protocol and ``load_model``;
- :mod:`~perceptiongap.predict.jobs`: the exams file, the jobs and how one exam's jobs are done;
- :mod:`~perceptiongap.predict.store`: durable, resumable storage of the rows;
- :mod:`~perceptiongap.predict.runner`: :func:`predict`, on one process, a pool, or Dask.
"""

from perceptiongap.predict.plugin import VIEWS, Exam, Model, load_model
from perceptiongap.predict.runner import predict

__all__ = ["VIEWS", "Exam", "Model", "load_model", "predict"]
