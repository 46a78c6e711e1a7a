"""The authors' release as Observations + Cases, imported by perceptiongap.release.

The raw arrays that the analyses are compared against are read independently in raw_release.py.
"""

from __future__ import annotations

import pandas as pd
import pytest


@pytest.fixture(scope="session")
def release_cases_table(release_study) -> pd.DataFrame:
    return release_study[1]


@pytest.fixture(scope="session")
def release_observations_table(release_study) -> pd.DataFrame:
    return release_study[0]
