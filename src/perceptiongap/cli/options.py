"""Parsers for option values shared by several commands (one-line InputError on bad text)."""

from __future__ import annotations

from perceptiongap.errors import InputError

PAPER_CUTOFFS = "6,4.5,3,2,1.5,1,0.5,0.25"


def parse_cutoffs(text: str, option: str = "--cutoffs-per-mm", *, allow_empty: bool = False) -> list[float]:
    """``6,4.5,inf`` -> cut-offs in cycles/mm (``inf`` = unperturbed); ``allow_empty`` admits ``""``."""
    values = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        try:
            values.append(float(item))
        except ValueError:
            raise InputError(f"{item!r} is not a number of cycles/mm (inf = unperturbed)", source=option) from None
    if not values and not allow_empty:
        raise InputError("no cut-offs given", source=option)
    return values


def parse_pixel_mm(text: str | None, option: str = "--pixel-mm") -> float | tuple[float, float] | None:
    """``0.07`` (square) or ``0.07x0.065`` (row x column) in mm; None stays None."""
    if text is None:
        return None
    from perceptiongap.predict.jobs import parse_pixel_mm as parse

    try:
        return parse(text)
    except ValueError as error:
        raise InputError(str(error), source=option) from None
