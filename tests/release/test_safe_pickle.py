"""The restricted unpickler: NumPy arrays and lists of numbers load; anything else is refused, never run."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from perceptiongap.errors import InputError
from perceptiongap.release import REQUIRED_FILES, safe_load_pickle


class CreatesFile:
    """Unpickling this calls ``open(path, 'w')``: a plain ``pickle.load`` creates the file."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


class RunsShell:
    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


def dump(obj, path: Path, protocol: int = pickle.DEFAULT_PROTOCOL) -> Path:
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    return path


@pytest.mark.parametrize("name", [n for n in REQUIRED_FILES if n.endswith(".pkl")])
def test_release_pickles_load_as_plain_pickle_loads_them(release_dir, name):
    with (release_dir / name).open("rb") as stream:
        expected = pickle.load(stream)  # the shared files are trusted: plain pickle is the reference
    loaded = safe_load_pickle(release_dir / name)
    assert type(loaded) is type(expected)
    if isinstance(expected, np.ndarray):
        expected, loaded = (expected,), (loaded,)
    assert len(loaded) == len(expected)
    for ours, theirs in zip(loaded, expected):
        np.testing.assert_array_equal(ours, theirs, strict=True)


def test_pickle_that_would_create_a_file_is_refused_and_creates_nothing(tmp_path):
    target = tmp_path / "created-by-pickle"
    path = dump((np.zeros(3), CreatesFile(target)), tmp_path / "evil.pkl")
    with pytest.raises(InputError) as info:
        safe_load_pickle(path)
    assert str(info.value).startswith(f"{path}: refuses to load {open.__module__}.open")
    assert not target.exists()

    with path.open("rb") as stream:  # the same file really is hostile to an ordinary load
        pickle.load(stream)[1].close()
    assert target.exists()


def test_handwritten_pickle_calling_eval_is_refused(tmp_path):
    target = tmp_path / "created-by-eval"
    path = tmp_path / "eval.pkl"
    path.write_bytes(b"cbuiltins\neval\n(V" + f"open({str(target)!r}, 'w')".encode() + b"\ntR.")
    with pytest.raises(InputError, match=r"refuses to load builtins\.eval: only NumPy arrays"):
        safe_load_pickle(path)
    assert not target.exists()
    with path.open("rb") as stream:
        pickle.load(stream).close()
    assert target.exists()


def test_pickle_that_would_run_a_shell_command_is_refused(tmp_path):
    target = tmp_path / "touched"
    path = dump([1, 2, RunsShell(target)], tmp_path / "evil.pkl", protocol=2)
    with pytest.raises(InputError, match=rf"refuses to load {os.system.__module__}\.system"):
        safe_load_pickle(path)
    assert not target.exists()


@pytest.mark.parametrize(
    ("obj", "refused"),
    [
        (np.array([1, "a"], dtype=object), r"refuses to load numpy\.dtype\('O8'\)"),
        (np.zeros(2, dtype=[("a", "f8")]), r"refuses to load numpy\.dtype\('V8'\)"),
        ({"a": 1}, "refuses a dict"),
        (["text"], "refuses a str"),
        ((np.zeros(2), None), "refuses a NoneType"),
    ],
)
def test_anything_but_numbers_is_refused(tmp_path, obj, refused):
    with pytest.raises(InputError, match=refused):
        safe_load_pickle(dump(obj, tmp_path / "odd.pkl"))


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_numeric_arrays_and_lists_round_trip_in_every_protocol(tmp_path, protocol):
    rng = np.random.default_rng(0)
    obj = (
        rng.random((3, 4)),
        rng.integers(0, 2, (2, 3, 2)).astype(np.int64),
        np.asfortranarray(rng.random((3, 2)).astype(np.float32)),
        np.array([True, False]),
        [1, 2.5, np.int64(7), np.float64(0.25)],
    )
    loaded = safe_load_pickle(dump(obj, tmp_path / "ok.pkl", protocol=protocol))
    for ours, theirs in zip(loaded[:4], obj[:4]):
        np.testing.assert_array_equal(ours, theirs, strict=True)
    assert loaded[4] == obj[4]
    assert [type(x) for x in loaded[4]] == [type(x) for x in obj[4]]


def test_damaged_or_missing_pickle_is_one_line(tmp_path):
    path = tmp_path / "truncated.pkl"
    path.write_bytes(pickle.dumps(np.zeros((10, 10)))[:-20])
    with pytest.raises(InputError, match="not a readable pickle") as info:
        safe_load_pickle(path)
    assert "\n" not in str(info.value)
    with pytest.raises(InputError, match="no such file"):
        safe_load_pickle(tmp_path / "absent.pkl")


def test_ndarray_cannot_be_called_directly(tmp_path):
    # numpy.ndarray(shape, dtype, buffer, offset, strides) could view memory it should not.
    path = tmp_path / "ndarray.pkl"
    path.write_bytes(b"cnumpy\nndarray\n((K\x03tV<f8\ntR.")
    with pytest.raises(InputError, match="refuses to load a direct call of numpy.ndarray"):
        safe_load_pickle(path)
