"""A reader's answer for one breast, and the rules that make it consistent (METHOD §3).

The authors' instructions to readers (``perturbation_study_instructions.pdf`` in their release)
ask, for each breast, the BI-RADS assessment of its most suspicious finding (0-5, with 4A/4B/4C),
whether it is malignant (yes for 4A-5, no for 1-3, "BI-RADS 3 is considered not malignant") and
a probability of malignancy (POM, 0-100) consistent with the category:

=========  ==================
BI-RADS    POM (percent)
=========  ==================
1, 2       0
3          0 < POM <= 2
4A         2 < POM <= 10
4B         10 < POM <= 50
4C         50 < POM < 95
5          POM >= 95
=========  ==================

BI-RADS 0 (incomplete, needs more imaging) is not in that table: the reader chooses malignant
yes or no and any POM in 0-100. :func:`check_answer` raises :class:`AnswerError` naming the rule
an answer breaks; the database repeats the same rules as CHECK constraints
(:data:`SQL_ANSWER_CHECK`), and a test holds the two to agreement.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from perceptiongap.vocabulary import BIRADS_CATEGORIES

__all__ = [
    "BIRADS",
    "MALIGNANT_BY_BIRADS",
    "POM_RANGES",
    "SQL_ANSWER_CHECK",
    "Answer",
    "AnswerError",
    "breast_name",
    "check_answer",
    "pom_allowed",
]

#: The BI-RADS assessments a reader may give, in order (the data model's ``birads`` column).
BIRADS: tuple[str, ...] = BIRADS_CATEGORIES

#: BI-RADS -> the malignant answer it fixes (None: the reader chooses).
MALIGNANT_BY_BIRADS: dict[str, bool | None] = {
    "0": None, "1": False, "2": False, "3": False, "4A": True, "4B": True, "4C": True, "5": True,
}  # fmt: skip

#: BI-RADS -> (low, high, low_open, high_open, text): the POM interval in percent.
POM_RANGES: dict[str, tuple[float, float, bool, bool, str]] = {
    "0": (0.0, 100.0, False, False, "0 <= POM <= 100"),
    "1": (0.0, 0.0, False, False, "POM = 0"),
    "2": (0.0, 0.0, False, False, "POM = 0"),
    "3": (0.0, 2.0, True, False, "0 < POM <= 2"),
    "4A": (2.0, 10.0, True, False, "2 < POM <= 10"),
    "4B": (10.0, 50.0, True, False, "10 < POM <= 50"),
    "4C": (50.0, 95.0, True, True, "50 < POM < 95"),
    "5": (95.0, 100.0, False, False, "95 <= POM <= 100"),
}


def _sql_pom_clause(birads: str) -> str:
    low, high, low_open, high_open, _ = POM_RANGES[birads]
    return (f"(birads = '{birads}' AND pom {'>' if low_open else '>='} {low!r} "
            f"AND pom {'<' if high_open else '<='} {high!r})")


#: The same rules as a SQL boolean expression over columns ``birads``, ``malignant`` (0/1), ``pom``.
SQL_ANSWER_CHECK: str = (
    "(malignant IN (0, 1)) AND ("
    + " OR ".join(
        f"(birads = '{b}' AND malignant = {int(m)})" for b, m in MALIGNANT_BY_BIRADS.items() if m is not None
    )
    + " OR birads = '0') AND ("
    + " OR ".join(_sql_pom_clause(b) for b in BIRADS)
    + ")"
)


class AnswerError(ValueError):
    """An answer that breaks one of the rules; ``rule`` is a stable name, ``message`` one line."""

    def __init__(self, message: str, *, rule: str, breast: str | None = None, view: str | None = None):
        super().__init__(message)
        self.rule = rule
        self.breast = breast
        self.view = view


@dataclass(frozen=True)
class Answer:
    """One breast's answer: BI-RADS category, malignant yes/no, POM in percent (0-100)."""

    birads: str
    malignant: bool
    pom: float


def breast_name(breast: str) -> str:
    """``"L"`` -> ``"left breast"``."""
    return {"L": "left breast", "R": "right breast"}.get(breast, f"breast {breast!r}")


def pom_allowed(birads: str, pom: float) -> bool:
    """True if ``pom`` (percent) lies in the interval BI-RADS ``birads`` allows."""
    low, high, low_open, high_open, _ = POM_RANGES[birads]
    above = pom > low if low_open else pom >= low
    below = pom < high if high_open else pom <= high
    return above and below


def check_answer(breast: str, birads: object, malignant: object, pom: object) -> Answer:
    """Return the :class:`Answer`, or raise :class:`AnswerError` naming the first rule broken."""
    where = breast_name(breast)
    if not isinstance(birads, str) or birads.upper() not in BIRADS:
        raise AnswerError(
            f"{where}: BI-RADS must be one of {', '.join(BIRADS)}, got {birads!r}",
            rule="birads_category", breast=breast,
        )
    birads = birads.upper()
    if not isinstance(malignant, bool):
        raise AnswerError(
            f"{where}: malignant must be true or false, got {malignant!r}", rule="malignant_matches_birads",
            breast=breast,
        )
    fixed = MALIGNANT_BY_BIRADS[birads]
    if fixed is not None and malignant != fixed:
        reason = "BI-RADS 1-3: malignant = no" if not fixed else "BI-RADS 4A-5: malignant = yes"
        raise AnswerError(
            f"{where}: BI-RADS {birads} means {'malignant' if fixed else 'not malignant'} ({reason})",
            rule="malignant_matches_birads", breast=breast,
        )
    if isinstance(pom, bool) or not isinstance(pom, (int, float)) or not math.isfinite(pom) or not 0 <= pom <= 100:
        raise AnswerError(
            f"{where}: POM must be a number from 0 to 100 (percent), got {pom!r}", rule="pom_scale", breast=breast
        )
    if not pom_allowed(birads, float(pom)):
        raise AnswerError(
            f"{where}: BI-RADS {birads} needs {POM_RANGES[birads][4]}, got {pom:g}", rule="pom_matches_birads",
            breast=breast,
        )
    return Answer(birads=birads, malignant=malignant, pom=float(pom))
