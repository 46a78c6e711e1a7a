"""How numbers are written for people: p-values in tables, figures and verdicts; plain values in messages.

One definition each, so that a p-value reads the same in ``tables/conclusions.csv``, the
report's tables and the figures' annotations, and no message shows a NumPy repr such as
``np.float64(nan)`` (NumPy 2 prints scalars that way).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["format_p_relation", "format_p_value", "plain"]


def format_p_value(p: float | None, *, compact: bool = False, missing: str = "") -> str:
    """A p-value for people: ``0.004`` and ``<0.001``; ``compact`` gives ``.004``, ``.18``, ``<.001``, ``1``.

    ``missing`` is returned for None, NaN and infinities (severity 0 has no drop test).
    """
    if p is None:
        return missing
    value = float(p)
    if not math.isfinite(value):
        return missing
    if compact:
        if value < 0.001:
            return "<.001"
        if value >= 0.995:
            return "1"
        return f"{value:.2g}".lstrip("0")
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def format_p_relation(p: float | None, *, missing: str = "n/a") -> str:
    """A p-value after its name in a sentence: ``= 0.004`` or ``< 0.001`` (never ``=<0.001``); ``missing`` as is."""
    text = format_p_value(p)
    if not text:
        return missing
    return f"< {text[1:]}" if text.startswith("<") else f"= {text}"


def plain(value: object) -> object:
    """``value`` as a plain Python object for a message: NumPy scalars become int, float, str or bool.

    ``f"{plain(x)!r}"`` shows ``nan``, ``0.0`` or ``'e1'`` where NumPy 2 would show
    ``np.float64(nan)``, ``np.float64(0.0)`` or ``np.str_('e1')``.
    """
    if isinstance(value, np.generic):
        return value.item()
    return value
