"""Who reads which exam, at which severity, in which order: the design of a reader study.

Perturbation mode (METHOD §3): every reader reads every study exam once, at one severity.

``design="release"``
    as the paper did: each reader's severity of each exam drawn uniformly from the severities.
``design="balanced"`` (default)
    a Latin-square style assignment. Exam ``e`` gets an offset ``o[e]`` and reader ``r`` a shift
    ``h[r]`` (both in ``0 .. S-1``); the reader sees the exam at severity ``(o[e] + h[r]) mod S``.
    The shifts go round the severities in a seeded random order of readers, so each exam is seen
    at each severity by as equal a number of readers as possible (counts differ by at most one).
    The offsets are chosen so that, for every reader, each severity gets as equal a number of
    exams as possible (differing by at most one) and, within each subgroup, as equal a number of
    breasts as possible: a seeded greedy start, then single-exam moves and two-exam swaps while
    they lower ``W * sum_k n[k]^2 + sum_(g,k) n[g, k]^2`` (``n[k]``: exams at offset ``k``;
    ``n[g, k]``: breasts of subgroup ``g`` at offset ``k``; ``W`` large enough that the exam counts
    come first). A reader's counts are these counts shifted by ``h[r]``, so they hold for every
    reader at once. An exam whose two breasts are in different subgroups ties those subgroups
    together, so a spread of one breast per subgroup is not always possible; :class:`Balance`
    reports what was achieved.

Annotation mode: every reader reads every study exam, unperturbed.

``practice`` exams are drawn (seeded) from the exams and read first by every reader, in their own
shuffled order, at a uniformly drawn severity (unperturbed in annotation mode); they are not study
exams, and their answers are never exported as observations. Each reader's order of the study
exams is a seeded shuffle. Random streams: ``numpy.random.SeedSequence(seed).spawn(4)`` gives,
in order, the practice-exam choice, the severities, the practice severities and the reading
orders, each driving a ``numpy.random.Generator(PCG64)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from perceptiongap.errors import InputError

__all__ = [
    "DESIGNS",
    "GENERATOR",
    "MODES",
    "Balance",
    "Design",
    "balance",
    "balanced_offsets",
    "make_design",
]

MODES: tuple[str, ...] = ("perturbation", "annotation")
DESIGNS: tuple[str, ...] = ("balanced", "release")
#: How the design's random numbers are made, as recorded in ``study.json``.
GENERATOR = (
    "numpy.random.Generator(PCG64) per stream of numpy.random.SeedSequence(seed).spawn(4): "
    "practice exams, severities, practice severities, reading orders"
)


@dataclass(frozen=True)
class Balance:
    """How evenly severities are spread (spread = largest count minus smallest count).

    ``per_exam``: over exams, the largest spread of the number of readers per severity;
    ``per_reader``: over readers, the largest spread of the number of exams per severity;
    ``per_subgroup``: subgroup -> over readers, the largest spread of the number of that
    subgroup's breasts per severity; ``ideal_subgroup``: the smallest spread that subgroup's
    breast count allows (0 if it divides by the number of severities, else 1).
    """

    per_exam: int
    per_reader: int
    per_subgroup: dict[str, int]
    ideal_subgroup: dict[str, int]

    def as_dict(self) -> dict[str, object]:
        return {
            "per_exam": self.per_exam,
            "per_reader": self.per_reader,
            "per_subgroup": dict(self.per_subgroup),
            "ideal_subgroup": dict(self.ideal_subgroup),
        }

    def lines(self) -> list[str]:
        """Human-readable summary, one line per measure."""
        out = [
            f"readers per severity, per exam: counts differ by at most {self.per_exam}",
            f"exams per severity, per reader: counts differ by at most {self.per_reader}",
        ]
        for group, spread in self.per_subgroup.items():
            out.append(
                f"breasts of {group} per severity, per reader: counts differ by at most {spread} "
                f"(lower bound {self.ideal_subgroup[group]})"
            )
        return out


@dataclass(frozen=True)
class Design:
    """A study's design. Exams are ids; severities are indices into the study's cut-off list.

    ``order[r]``: reader ``r``'s exams in reading order, practice exams first;
    ``severity[r][exam]``: the severity index reader ``r`` sees ``exam`` at.
    """

    mode: str
    design: str
    seed: int
    readers: tuple[str, ...]
    study_exams: tuple[str, ...]
    practice_exams: tuple[str, ...]
    n_severities: int
    order: tuple[tuple[str, ...], ...]
    severity: tuple[dict[str, int], ...]
    balance: Balance | None


def balance(severity: np.ndarray, breast_subgroups: np.ndarray, n_severities: int) -> Balance:
    """Measure a design: ``severity`` (readers, exams) of indices, ``breast_subgroups`` (exams, 2)."""
    severity = np.asarray(severity)
    n_readers, _ = severity.shape
    one_hot = severity[..., None] == np.arange(n_severities)  # (R, E, S)
    per_exam = one_hot.sum(axis=0)  # (E, S)
    per_reader = one_hot.sum(axis=1)  # (R, S)
    groups = sorted(set(np.asarray(breast_subgroups).ravel().tolist()))
    per_subgroup, ideal = {}, {}
    for group in groups:
        breasts = (np.asarray(breast_subgroups) == group).sum(axis=1)  # (E,) 0, 1 or 2
        counts = np.einsum("res,e->rs", one_hot, breasts)
        per_subgroup[group] = int((counts.max(axis=1) - counts.min(axis=1)).max()) if n_readers else 0
        ideal[group] = int(breasts.sum() % n_severities != 0)
    return Balance(
        per_exam=int((per_exam.max(axis=1) - per_exam.min(axis=1)).max()) if per_exam.size else 0,
        per_reader=int((per_reader.max(axis=1) - per_reader.min(axis=1)).max()) if per_reader.size else 0,
        per_subgroup=per_subgroup,
        ideal_subgroup=ideal,
    )


def balanced_offsets(
    breast_subgroups: np.ndarray, n_severities: int, rng: np.random.Generator, *, max_sweeps: int = 50
) -> np.ndarray:
    """Exam offsets (exams,) in ``0 .. S-1`` balancing exams and each subgroup's breasts per offset.

    See the module docstring for the objective. Deterministic given ``rng``.
    """
    subgroups = np.asarray(breast_subgroups)
    n_exams = subgroups.shape[0]
    groups = np.unique(subgroups)
    members = (subgroups[:, :, None] == groups).sum(axis=1).astype(np.int64)  # (E, G) breasts per group
    weight = 4 * (2 * n_exams + 2) + 1  # exceeds any change one move can make to the subgroup term
    offsets = np.zeros(n_exams, dtype=np.int64)
    exam_counts = np.zeros(n_severities, dtype=np.int64)
    group_counts = np.zeros((len(groups), n_severities), dtype=np.int64)

    def move_cost(exam: int, current: int | None) -> np.ndarray:
        """Change of the objective if ``exam`` moved to each offset (from ``current`` or unplaced)."""
        m = members[exam][:, None]
        cost = weight * (2 * exam_counts + 1) + (2 * m * group_counts + m * m).sum(axis=0)
        if current is not None:
            here = m[:, 0]
            cost -= weight * (2 * exam_counts[current] - 1) + (2 * here * group_counts[:, current] - here**2).sum()
            cost[current] = 0
        return cost

    def place(exam: int, offset: int, sign: int) -> None:
        exam_counts[offset] += sign
        group_counts[:, offset] += sign * members[exam]

    for exam in rng.permutation(n_exams):
        cost = move_cost(exam, None)
        best = np.flatnonzero(cost == cost.min())
        offsets[exam] = rng.choice(best)
        place(exam, offsets[exam], +1)

    for _ in range(max_sweeps):
        improved = False
        for exam in rng.permutation(n_exams):
            current = int(offsets[exam])
            cost = move_cost(exam, current)
            target = int(np.argmin(cost))
            if cost[target] < 0:
                place(exam, current, -1)
                place(exam, target, +1)
                offsets[exam] = target
                improved = True
        for exam in rng.permutation(n_exams):
            # Swap offsets with another exam: exam counts stay; the subgroup term changes by
            # sum_g 2 d (n[g, b] - n[g, a]) + 2 d^2 with d = members[exam] - members[other].
            a = int(offsets[exam])
            d = members[exam][None, :] - members  # (E, G)
            gain = (2 * d * (group_counts[:, offsets].T - group_counts[:, a][None, :]) + 2 * d * d).sum(axis=1)
            gain[offsets == a] = 0
            other = int(np.argmin(gain))
            if gain[other] < 0:
                b = int(offsets[other])
                place(exam, a, -1)
                place(other, b, -1)
                offsets[exam], offsets[other] = b, a
                place(exam, b, +1)
                place(other, a, +1)
                improved = True
        if not improved:
            break
    return offsets


def _choose_practice(exams: Sequence[str], practice: int, rng: np.random.Generator) -> tuple[str, ...]:
    if practice < 0:
        raise InputError(f"must be >= 0, got {practice}", source="--practice")
    if practice >= len(exams):
        raise InputError(
            f"{practice} practice exams leave no study exams (there are {len(exams)} exams)", source="--practice"
        )
    chosen = np.sort(rng.choice(len(exams), size=practice, replace=False)) if practice else np.array([], int)
    return tuple(exams[i] for i in chosen)


def make_design(
    exams: Sequence[str],
    breast_subgroups: np.ndarray,
    readers: Sequence[str],
    n_severities: int,
    *,
    mode: str = "perturbation",
    design: str = "balanced",
    seed: int = 0,
    practice: int = 0,
) -> Design:
    """The design of a study (see the module docstring).

    ``exams`` (E,) ids; ``breast_subgroups`` (E, 2) the subgroup of each exam's (L, R) breast;
    ``readers`` (R,) ids; ``n_severities`` the number of cut-offs (1 in annotation mode).
    """
    if mode not in MODES:
        raise InputError(f"must be one of {', '.join(MODES)}, got {mode!r}", source="--mode")
    if design not in DESIGNS:
        raise InputError(f"must be one of {', '.join(DESIGNS)}, got {design!r}", source="--design")
    if not readers:
        raise InputError("a study needs at least one reader", source="readers")
    if n_severities < 1:
        raise InputError("a study needs at least one severity", source="--cutoffs-per-mm")
    exams = tuple(exams)
    breast_subgroups = np.asarray(breast_subgroups, dtype=object)
    if breast_subgroups.shape != (len(exams), 2):
        raise ValueError(f"breast_subgroups must be ({len(exams)}, 2), got {breast_subgroups.shape}")
    streams = [np.random.Generator(np.random.PCG64(s)) for s in np.random.SeedSequence(seed).spawn(4)]
    practice_rng, severity_rng, practice_severity_rng, order_rng = streams

    practice_exams = _choose_practice(exams, practice, practice_rng)
    in_practice = set(practice_exams)
    study_index = np.array([i for i, exam in enumerate(exams) if exam not in in_practice], dtype=int)
    study_exams = tuple(exams[i] for i in study_index)
    n_readers, n_study = len(readers), len(study_exams)
    if mode == "annotation":
        severities = np.zeros((n_readers, n_study), dtype=np.int64)
        practice_severities = np.zeros((n_readers, len(practice_exams)), dtype=np.int64)
    else:
        if design == "release":
            severities = severity_rng.integers(n_severities, size=(n_readers, n_study))
        else:
            offsets = balanced_offsets(breast_subgroups[study_index], n_severities, severity_rng)
            shifts = np.empty(n_readers, dtype=np.int64)
            shifts[severity_rng.permutation(n_readers)] = np.arange(n_readers) % n_severities
            severities = (offsets[None, :] + shifts[:, None]) % n_severities
        practice_severities = practice_severity_rng.integers(n_severities, size=(n_readers, len(practice_exams)))

    order, severity = [], []
    for r in range(n_readers):
        practice_order = [practice_exams[i] for i in order_rng.permutation(len(practice_exams))]
        study_order = [study_exams[i] for i in order_rng.permutation(n_study)]
        order.append(tuple(practice_order + study_order))
        levels = dict(zip(study_exams, severities[r].tolist()))
        levels.update(zip(practice_exams, practice_severities[r].tolist()))
        severity.append(levels)
    measured = (
        balance(severities, breast_subgroups[study_index], n_severities) if mode == "perturbation" else None
    )
    return Design(
        mode=mode,
        design=design,
        seed=seed,
        readers=tuple(readers),
        study_exams=study_exams,
        practice_exams=practice_exams,
        n_severities=n_severities,
        order=tuple(order),
        severity=tuple(severity),
        balance=measured,
    )
