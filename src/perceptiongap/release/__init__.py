"""The authors' release (nyukat/perception_comparison, pinned commit): locate or download it with
SHA-256 checks, load its pickles with a restricted unpickler, convert it to Observations + Cases.

- :mod:`~perceptiongap.release.source`: the pinned files and checksums, :func:`locate_release`,
  :func:`verify_release`.
- :mod:`~perceptiongap.release.safe_pickle`: :func:`safe_load_pickle`.
- :mod:`~perceptiongap.release.convert`: :func:`import_release`, :func:`write_release_study`.
"""

from perceptiongap.release.convert import import_release, write_release_study
from perceptiongap.release.safe_pickle import safe_load_pickle
from perceptiongap.release.source import (
    DATA_ENV,
    RELEASE_COMMIT,
    RELEASE_FILES,
    RELEASE_REPOSITORY,
    RELEASE_URL,
    RELEASE_URL_ENV,
    REQUIRED_FILES,
    default_cache_dir,
    download_release,
    locate_release,
    verify_release,
)

__all__ = [
    "DATA_ENV",
    "RELEASE_COMMIT",
    "RELEASE_FILES",
    "RELEASE_REPOSITORY",
    "RELEASE_URL",
    "RELEASE_URL_ENV",
    "REQUIRED_FILES",
    "default_cache_dir",
    "download_release",
    "import_release",
    "locate_release",
    "safe_load_pickle",
    "verify_release",
    "write_release_study",
]
