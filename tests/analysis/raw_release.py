"""The release's raw arrays, read with plain pickle: the independent reference for the analyses.

Only for tests, and only on the checksummed shared release (trusted files).
"""

from __future__ import annotations

import pickle
from pathlib import Path

NETWORK_GROUPS = {
    "gmic": ("gmic", "unperturbed"),
    "gmic_filtered": ("gmic", "filtered"),
    "dmv": ("dmv", "unperturbed"),
    "dmv_filtered": ("dmv", "filtered"),
}


def load_pickle(path: Path):
    with open(path, "rb") as file:
        return pickle.load(file)  # trusted: the checksummed shared release, in tests only
