"""A restricted unpickler for the release's pickles: numeric NumPy arrays and lists/tuples of numbers.

A pickle names the callables that rebuild its objects, and loading it calls them: an ordinary
``pickle.load`` of an untrusted file can run any code. Here every callable the pickle asks for
is looked up in a short allow-list of NumPy constructors (wrapped to accept numeric dtypes only);
anything else is refused before it is called.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np

from perceptiongap.errors import InputError

__all__ = ["safe_load_pickle"]


class _Refused(pickle.UnpicklingError):
    def __init__(self, what: str):
        self.what = what
        super().__init__(what)


def _numeric_dtype(spec: Any, align: bool = False, copy: bool = True) -> np.dtype:
    dtype = np.dtype(spec, bool(align), True)  # always a copy: pickles BUILD (mutate) the dtype they get
    if dtype.kind not in "biuf":
        raise _Refused(f"numpy.dtype({spec!r})")
    return dtype


class _NdarrayType:
    """Stands for ``numpy.ndarray`` in a pickle: valid only as the type _reconstruct builds, never called."""

    def __repr__(self) -> str:
        return "numpy.ndarray"

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        raise _Refused("a direct call of numpy.ndarray")


_NDARRAY = _NdarrayType()


# The real NumPy constructors, found from NumPy's own reductions (their module moved in NumPy 2).
_RECONSTRUCT = np.zeros(1).__reduce_ex__(2)[0]
_FROMBUFFER = np.zeros(1).__reduce_ex__(5)[0]
_SCALAR = np.float64(0).__reduce__()[0]


def _reconstruct(subtype: Any, shape: Any, dtype_char: Any) -> np.ndarray:
    if subtype is not _NDARRAY:
        raise _Refused(f"numpy _reconstruct of {subtype!r}")
    return _RECONSTRUCT(np.ndarray, shape, dtype_char)


def _frombuffer(buffer: Any, dtype: np.dtype, shape: Any, order: Any) -> np.ndarray:
    return np.array(_FROMBUFFER(buffer, _numeric_dtype(dtype), shape, order))


def _scalar(dtype: np.dtype, *state: Any) -> Any:
    return _SCALAR(_numeric_dtype(dtype), *state)


def _latin1_bytes(text: Any, encoding: Any) -> bytes:
    # Protocol 2 stores an array's bytes as _codecs.encode(text, "latin1").
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise _Refused(f"_codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


_SAFE_GLOBALS: dict[tuple[str, str], Any] = {
    ("_codecs", "encode"): _latin1_bytes,
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _numeric_dtype,
    **{(f"numpy.{core}.multiarray", "_reconstruct"): _reconstruct for core in ("core", "_core")},
    **{(f"numpy.{core}.multiarray", "scalar"): _scalar for core in ("core", "_core")},
    **{(f"numpy.{core}.numeric", "_frombuffer"): _frombuffer for core in ("core", "_core")},
}


class _NumpyOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return _SAFE_GLOBALS[(module, name)]
        except KeyError:
            raise _Refused(f"{module}.{name}") from None


def _check_plain(obj: Any, path: Path) -> None:
    """Refuse anything but numeric arrays, numbers and lists/tuples of them (iteratively, once per object)."""
    stack, seen = [obj], set()
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, (list, tuple)):
            stack.extend(item)
        elif isinstance(item, np.ndarray):
            if item.dtype.kind not in "biuf" or item.dtype.names is not None:
                raise InputError(f"refuses an array of dtype {item.dtype} (only numeric arrays)", source=path)
        elif not isinstance(item, (int, float, np.number)):
            raise InputError(
                f"refuses a {type(item).__name__} (only NumPy arrays and lists/tuples of numbers)", source=path
            )


def safe_load_pickle(path: str | Path) -> Any:
    """Load a pickle holding only numeric NumPy arrays and lists/tuples of numbers.

    Any other global (a class or function the pickle asks for) is refused with an
    :class:`InputError` naming it before anything is called, so a hostile pickle runs no code.
    """
    path = Path(path)
    try:
        with path.open("rb") as stream:
            obj = _NumpyOnlyUnpickler(stream).load()
    except _Refused as error:
        raise InputError(
            f"refuses to load {error.what}: only NumPy arrays and lists/tuples of numbers are allowed", source=path
        ) from None
    except FileNotFoundError:
        raise InputError("no such file", source=path) from None
    except Exception as error:  # a damaged pickle raises many types; none may escape as a traceback
        detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise InputError(f"not a readable pickle: {detail}", source=path) from None
    _check_plain(obj, path)
    return obj
