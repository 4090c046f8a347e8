""".npy arrays read header first: the dtype and shape are checked before any data is read, so a file
of strings, a structured or complex array, or a 100-byte file whose header asks for a terabyte is refused
with its name instead of crashing (or exhausting memory) later."""

from __future__ import annotations

import os

import numpy as np

from polymodal.data.io import MediaError, check_file

NUMERIC_KINDS = "biuf"  # bool, signed and unsigned integers, floats


def _size(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.3g} {unit}"
        n /= 1024
    return f"{n:.3g} PiB"


def read_npy_header(path: str | os.PathLike) -> tuple[tuple[int, ...], np.dtype, bool, int]:
    """(shape, dtype, fortran_order, data offset) from a .npy header; raises MediaError for a file that
    is not a .npy array."""
    p = check_file(path, "array file")
    try:
        with p.open("rb") as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            elif version in ((2, 0), (3, 0)):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                raise ValueError(f"unsupported .npy format version {version}")
            offset = f.tell()
    except (ValueError, OSError, SyntaxError, EOFError) as e:
        raise MediaError(f"cannot read the header of {p}: {e}; expected an array saved with numpy.save") from e
    return tuple(int(s) for s in shape), dtype, bool(fortran), offset


def read_npy(path: str | os.PathLike, *, max_bytes: int | None = None, limit_name: str = "the size limit") -> np.ndarray:
    """A numeric .npy array, checked from its header before it is read.

    Refused (MediaError): dtypes that are not numbers (strings, objects, dates), structured and complex
    arrays (nothing is silently dropped), a shape whose data would need more bytes than the file holds
    (a damaged or hand-made header), and arrays over ``max_bytes`` (``limit_name`` names the option).
    """
    p = check_file(path, "array file")
    shape, dtype, _, offset = read_npy_header(p)
    if dtype.names is not None or dtype.subdtype is not None:
        raise MediaError(f"array {p} has a structured dtype {dtype}; expected plain numbers (save one column per channel "
                         "as a float array)")
    if dtype.kind == "c":
        raise MediaError(f"array {p} holds complex numbers ({dtype}); save the real and imaginary parts (or the magnitude) "
                         "as float channels: the imaginary part is never silently dropped")
    if dtype.kind not in NUMERIC_KINDS:
        raise MediaError(f"array {p} has dtype {dtype} ({'strings' if dtype.kind in 'US' else 'not numbers'}); "
                         "expected numbers (int, float or bool)")
    need = int(np.prod(shape, dtype=object)) * dtype.itemsize
    have = p.stat().st_size - offset
    if need > have:
        raise MediaError(f"array {p}: its header asks for shape {shape} of {dtype} ({_size(need)}) but the file holds "
                         f"{_size(have)} of data; the file is damaged or truncated")
    if max_bytes is not None and need > max_bytes:
        raise MediaError(f"array {p} is {_size(need)} (shape {shape}), over {limit_name} of {_size(max_bytes)}; "
                         "raise it if the file is meant to be that large")
    try:
        return np.load(p, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise MediaError(f"cannot read array {p}: {e}") from e
