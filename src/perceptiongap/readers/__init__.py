"""Reader studies (METHOD §3): design a study, serve it to readers, keep every answer, export.

- :func:`create_study` (``perceptiongap study design``): the design (balanced or as the release
  drew it), each reader's seeded order, the images prepared once, all in one study folder.
- :func:`serve` (``perceptiongap serve``): the FastAPI + uvicorn server of the reading page, with
  the reading rules in the SQLite schema (``docs/reader-study-api.md`` is its API).
- :func:`export_study` (``perceptiongap study export``): Observations + Cases (+ ROIs) for ``fit``.
- :func:`progress`, :func:`backup_database`: ``study status`` and ``study backup``.

Import the server (FastAPI) only when serving: ``perceptiongap.readers.server``.
"""

from perceptiongap.readers.answers import BIRADS, Answer, AnswerError, check_answer
from perceptiongap.readers.backup import backup_database
from perceptiongap.readers.design import Balance, Design, make_design
from perceptiongap.readers.export import export_study, export_tables
from perceptiongap.readers.folder import StudyInfo, create_study, open_study
from perceptiongap.readers.status import progress

__all__ = [
    "BIRADS",
    "Answer",
    "AnswerError",
    "Balance",
    "Design",
    "StudyInfo",
    "backup_database",
    "check_answer",
    "create_study",
    "export_study",
    "export_tables",
    "make_design",
    "open_study",
    "progress",
]


def serve(*args, **kwargs):
    """Serve a study (see :func:`perceptiongap.readers.server.serve`); imports FastAPI on first use."""
    from perceptiongap.readers.server import serve as _serve

    return _serve(*args, **kwargs)
