"""The IDX format of (Fashion-)MNIST, read with numpy and checked before it is trusted.

Layout: two zero bytes, a type code (0x08 = unsigned byte), the number of dimensions d, then d
big-endian uint32 sizes, then the values. Files may be gzip-compressed.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

from lethe.errors import DataError

_UNSIGNED_BYTE = 0x08


def read_idx(path: Path, *, ndim: int) -> np.ndarray:
    """The uint8 array stored in an IDX file (`.gz` or raw), with exactly `ndim` dimensions."""
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except FileNotFoundError as exc:
        raise DataError(f"missing IDX file {path}") from exc
    except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
        raise DataError(f"corrupt IDX file {path}: {exc}") from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise DataError(f"corrupt IDX file {path}: bad magic number")
    if raw[2] != _UNSIGNED_BYTE:
        raise DataError(f"corrupt IDX file {path}: type code {raw[2]:#04x}, expected unsigned bytes")
    if raw[3] != ndim:
        raise DataError(f"corrupt IDX file {path}: {raw[3]} dimensions, expected {ndim}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"corrupt IDX file {path}: truncated header")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    expected = int(np.prod(shape, dtype=np.int64))
    if len(raw) - header != expected:
        raise DataError(f"corrupt IDX file {path}: {len(raw) - header} bytes of data for shape {shape}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def write_idx(path: Path, array: np.ndarray) -> Path:
    """Write a uint8 array as IDX (gzip when the name ends in .gz); for tests and fixtures."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    payload = bytes([0, 0, _UNSIGNED_BYTE, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload += array.tobytes()
    path.write_bytes(gzip.compress(payload) if path.suffix == ".gz" else payload)
    return path
