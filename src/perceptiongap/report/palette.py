"""Colours and markers shared by every figure: one colour per observer group, colour-blind safe.

Observer groups get colours of the Okabe-Ito palette (Okabe & Ito 2008, "Color Universal
Design"). The paper's groups have fixed colours, each clearly distinct from the others (a network
and its partner trained on filtered images are compared side by side, so they must not be two
shades of one hue); other groups take the remaining colours in the order they are given, then
Paul Tol's "muted" set.
"""

from __future__ import annotations

from collections.abc import Iterable

OKABE_ITO = {
    "black": "#000000",
    "orange": "#E69F00",
    "sky_blue": "#56B4E9",
    "bluish_green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "reddish_purple": "#CC79A7",
}

PAPER_GROUP_COLOURS = {
    "radiologists": OKABE_ITO["black"],
    "gmic": OKABE_ITO["blue"],
    "gmic_filtered": OKABE_ITO["bluish_green"],
    "dmv": OKABE_ITO["vermillion"],
    "dmv_filtered": OKABE_ITO["reddish_purple"],
}

#: Colours for groups outside the paper, in order of use (yellow last: it is faint on white).
OTHER_GROUP_COLOURS = (
    OKABE_ITO["orange"],
    OKABE_ITO["sky_blue"],
    "#882255",  # Tol muted: wine
    "#44AA99",  # teal
    "#332288",  # indigo
    "#999933",  # olive
    "#AA4499",  # purple
    "#DDCC77",  # sand
    OKABE_ITO["yellow"],
)

#: Where the filter was applied (annotation study); not observer groups, so a separate key.
SCHEME_STYLES = {
    "entire": {"colour": "#332288", "marker": "o", "linestyle": "-", "label": "entire image filtered"},
    "roi_exterior": {"colour": "#117733", "marker": "s", "linestyle": "--", "label": "ROI exterior filtered"},
    "roi_interior": {"colour": "#AA4499", "marker": "^", "linestyle": ":", "label": "ROI interior filtered"},
}

#: How each inference method (and the model-free observed statistic) is drawn in one group's colour.
INFERENCE_STYLES = {
    "stan-advi": {"marker": "o", "linestyle": "-", "filled": True},
    "advi": {"marker": "^", "linestyle": "-.", "filled": True},
    "nuts": {"marker": "s", "linestyle": "--", "filled": False},
    "observed": {"marker": "D", "linestyle": ":", "filled": False},
}
DEFAULT_INFERENCE_STYLE = {"marker": "v", "linestyle": "-", "filled": True}


def group_colours(groups: Iterable[str]) -> dict[str, str]:
    """A colour (hex) for every group: the paper's fixed ones, then the others in order given."""
    colours: dict[str, str] = {}
    others = iter(OTHER_GROUP_COLOURS)
    for group in dict.fromkeys(groups):
        if group in PAPER_GROUP_COLOURS:
            colours[group] = PAPER_GROUP_COLOURS[group]
    for group in dict.fromkeys(groups):
        if group not in colours:
            colour = next(others, None)
            if colour is None:  # more groups than colours: start again
                others = iter(OTHER_GROUP_COLOURS)
                colour = next(others)
            colours[group] = colour
    return colours


def inference_style(inference: str) -> dict:
    return INFERENCE_STYLES.get(inference, DEFAULT_INFERENCE_STYLE)
