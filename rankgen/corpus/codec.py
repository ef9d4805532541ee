"""How one ragged item is stored (schema version 2): encoded where it is made, decoded where it is read.

Encoding runs in the worker processes (rankgen.pipeline), so the single writing process only
stores bytes. PNG is lossless and predicts each pixel from its neighbours, so it stores photographs
in about half their raw size (docs/benchmarks.md); the files are standard PNGs in RGB order that
any decoder reads. Arrays PNG cannot hold (float density maps) are stored raw.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import cv2
import numpy as np

from . import schema as S

# Level 1 with the Paeth filter and run-length matching: within 2 % of the smallest PNG level on
# distorted photographs at a third of its encoding time (benchmarks/distort_throughput.py).
PNG_PARAMS = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE,
              cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_PAETH]
_TO_PNG = {3: cv2.COLOR_RGB2BGR, 4: cv2.COLOR_RGBA2BGRA}
_FROM_PNG = {3: cv2.COLOR_BGR2RGB, 4: cv2.COLOR_BGRA2RGBA}


@dataclass(frozen=True)
class Encoded:
    """One item as stored: its encoded bytes, the shape it decodes to and the crc32 of its raw bytes.

    stored=False: the bytes are left out (a compact corpus regenerates the item when it is read);
    shape and crc still describe it, so the regenerated item is checked against them."""

    data: bytes
    shape: tuple[int, ...]
    crc: int
    stored: bool = True


def absent(array: np.ndarray) -> Encoded:
    """An item whose pixels a compact corpus does not store: only its shape and CRC."""
    return Encoded(b"", tuple(int(s) for s in array.shape), crc32(array), stored=False)


def crc32(array: np.ndarray) -> int:
    return zlib.crc32(np.ascontiguousarray(array).view(np.uint8).data) & 0xFFFFFFFF


def encoding_for(requested: str, dtype: np.dtype, ndim: int) -> str:
    """The encoding a ragged array gets: PNG where it can hold the array, else raw."""
    if requested not in S.ENCODINGS:
        raise ValueError(f"unknown encoding {requested!r}; choose one of {', '.join(S.ENCODINGS)}")
    if requested == S.PNG and np.dtype(dtype) == np.uint8 and ndim in (2, 3):
        return S.PNG
    return S.NONE


def encode(array: np.ndarray, encoding: str) -> Encoded:
    array = np.ascontiguousarray(array)
    if encoding == S.PNG:
        channels = array.shape[2] if array.ndim == 3 else 0
        if channels not in (0, 1, 3, 4) or array.size == 0:
            raise ValueError(f"PNG stores 2-D or H x W x 1/3/4 uint8 arrays, not shape {array.shape}")
        pixels = cv2.cvtColor(array, _TO_PNG[channels]) if channels in _TO_PNG else array
        ok, buf = cv2.imencode(".png", pixels, PNG_PARAMS)
        if not ok:
            raise ValueError(f"OpenCV could not PNG-encode an array of shape {array.shape}")
        data = buf.tobytes()
    else:
        data = array.tobytes()
    return Encoded(data, tuple(int(s) for s in array.shape), crc32(array))


def decode(buf: np.ndarray, shape: tuple[int, ...], dtype, encoding: str) -> np.ndarray:
    """The array stored in `buf` (uint8 bytes as read from ragged/<name>/data)."""
    if encoding == S.PNG:
        pixels = cv2.imdecode(np.asarray(buf, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
        channels = shape[2] if len(shape) == 3 else 0
        if pixels is None or pixels.shape[:2] != tuple(shape[:2]) or (pixels.shape[2:3] or (1,))[0] != max(channels, 1):
            raise ValueError(f"PNG data does not decode to shape {tuple(shape)}")
        array = cv2.cvtColor(pixels, _FROM_PNG[channels]) if channels in _FROM_PNG else pixels
        return array.reshape(shape)
    return np.ascontiguousarray(buf, dtype=np.uint8).view(np.dtype(dtype)).reshape(shape)
