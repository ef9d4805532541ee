"""How one ragged item is stored (schema version 2): encoded where it is made, decoded where it is read.

Encoding runs in the worker processes (rankgen.pipeline), so the single writing process only
stores bytes. PNG is lossless and predicts each pixel from its neighbours, so it stores photographs
in about half their raw size (docs/benchmarks.md); the files are standard PNGs in RGB order that
any decoder reads. Arrays PNG cannot hold (float density maps) are stored raw.

The PNGs are assembled here rather than by OpenCV's libpng: every row takes PNG's Up filter (one
vectorised subtraction) and the rows are deflated by ISA-L at level 1. OpenCV's libpng with its
Paeth filter and zlib at level 1, the encoder until 2026-12-06, took four times as long per image
for a file 3 % smaller and decodes 1.5x slower, and that encoding was most of what a run spent
beyond its distortion kernels (benchmarks/codecs.py).

Reading takes the same shortcut: a PNG laid out exactly as png_bytes writes it (one IDAT, Up in
every row) is inflated by ISA-L and un-filtered row by row here, in half the time of OpenCV's
libpng (benchmarks/codecs.py); any other PNG, such as those of files written before 2026-12-06, is
decoded by OpenCV, and so is a PNG that fails one of the shortcut's checks, so errors read the same.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import cv2
import numpy as np
from isal import isal_zlib

from . import schema as S

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_COLOUR_TYPE = {1: 0, 3: 2, 4: 6}  # channels -> grey, RGB, RGBA
_PNG_UP = 2
# ISA-L's levels 2 and 3 store within 0.5 % of level 1 and take longer (benchmarks/codecs.py).
PNG_DEFLATE_LEVEL = 1
_FROM_PNG = {3: cv2.COLOR_BGR2RGB, 4: cv2.COLOR_BGRA2RGBA}
_IDAT_AT = 8 + 25  # the signature, then IHDR's 13 bytes in a chunk of 12
# Undoing Up is a running sum down each column: numpy's cumsum down axis 0 strides through memory,
# so from rows of about 320 bytes one add per row is faster (a photograph's rows are thousands of
# bytes), and below it cumsum is (a tall narrow image would cost a Python call per row).
_ROW_LOOP_FROM = 320
_IEND = struct.pack(">I", 0) + b"IEND" + struct.pack(">I", isal_zlib.crc32(b"IEND"))


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
    """zlib's CRC-32 of the raw bytes (ISA-L computes the same values, an order of magnitude faster)."""
    return isal_zlib.crc32(np.ascontiguousarray(array).view(np.uint8).data) & 0xFFFFFFFF


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", isal_zlib.crc32(data, isal_zlib.crc32(kind)))


def _png_header(shape: tuple[int, ...]) -> bytes:
    """The signature and IHDR chunk of an 8-bit PNG of an array of this shape."""
    channels = shape[2] if len(shape) == 3 else 1
    ihdr = struct.pack(">IIBBBBB", shape[1], shape[0], 8, _PNG_COLOUR_TYPE[channels], 0, 0, 0)
    return _PNG_SIGNATURE + _png_chunk(b"IHDR", ihdr)


def png_bytes(array: np.ndarray) -> bytes:
    """A standard 8-bit PNG of an H x W (x 1, 3 or 4) uint8 array, channels in the array's order."""
    h = array.shape[0]
    rows = np.ascontiguousarray(array).reshape(h, -1)
    filtered = np.empty((h, 1 + rows.shape[1]), np.uint8)
    filtered[:, 0] = _PNG_UP
    filtered[0, 1:] = rows[0]
    np.subtract(rows[1:], rows[:-1], out=filtered[1:, 1:])  # modulo 256, as PNG's filters are
    return _png_header(array.shape) + _png_chunk(b"IDAT", isal_zlib.compress(filtered, PNG_DEFLATE_LEVEL)) + _IEND


def _own_png_pixels(buf: np.ndarray, shape: tuple[int, ...]) -> np.ndarray | None:
    """The pixels of a PNG that png_bytes wrote for an array of `shape`, or None for any other PNG
    (another layout, another encoder, or damage: each is left to OpenCV)."""
    # PNG's sides are 1 .. 2**31 - 1: a damaged shape outside them must reach OpenCV's ValueError.
    if len(shape) not in (2, 3) or (len(shape) == 3 and shape[2] not in _PNG_COLOUR_TYPE) or not all(
            0 < s < 2**31 for s in shape):
        return None
    head = _png_header(shape)
    if (len(buf) < _IDAT_AT + 12 + len(_IEND) or bytes(buf[:_IDAT_AT]) != head
            or bytes(buf[_IDAT_AT + 4:_IDAT_AT + 8]) != b"IDAT"):
        return None
    size = int.from_bytes(bytes(buf[_IDAT_AT:_IDAT_AT + 4]), "big")
    end = _IDAT_AT + 8 + size
    if len(buf) != end + 4 + len(_IEND) or bytes(buf[end + 4:]) != _IEND:
        return None
    data = buf[_IDAT_AT + 8:end]
    if isal_zlib.crc32(data, isal_zlib.crc32(b"IDAT")) != int.from_bytes(bytes(buf[end:end + 4]), "big"):
        return None
    # A zlib stream's window is at most 32 KB (CINFO 7): libpng refuses a larger one, which ISA-L inflates.
    if size < 2 or int(data[0]) >> 4 > 7:
        return None
    h = shape[0]
    row = int(np.prod(shape[1:]))
    stream = isal_zlib.decompressobj()
    try:
        # One byte more than the image may inflate to: a stream that would expand further stops there.
        filtered = np.frombuffer(stream.decompress(data, h * (1 + row) + 1), np.uint8)
    except (isal_zlib.error, OverflowError):  # OverflowError: sides whose product no buffer can hold
        return None
    if not stream.eof or filtered.size != h * (1 + row):
        return None
    filtered = filtered.reshape(h, 1 + row)
    if not (filtered[:, 0] == _PNG_UP).all():
        return None
    if row < _ROW_LOOP_FROM:
        return np.cumsum(filtered[:, 1:], axis=0, dtype=np.uint8).reshape(shape)
    pixels = np.empty((h, row), np.uint8)
    pixels[0] = filtered[0, 1:]
    for y in range(1, h):
        np.add(pixels[y - 1], filtered[y, 1:], out=pixels[y])
    return pixels.reshape(shape)


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
        data = png_bytes(array)
    else:
        data = array.tobytes()
    return Encoded(data, tuple(int(s) for s in array.shape), crc32(array))


def decode(buf: np.ndarray, shape: tuple[int, ...], dtype, encoding: str) -> np.ndarray:
    """The array stored in `buf` (uint8 bytes as read from ragged/<name>/data)."""
    if encoding == S.PNG:
        shape = tuple(int(s) for s in shape)
        buf = np.ascontiguousarray(buf, dtype=np.uint8)  # ISA-L reads contiguous buffers only
        own = _own_png_pixels(buf, shape)
        if own is not None:
            return own
        try:
            pixels = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
        except cv2.error:  # an empty buffer, for one: the same error as any other undecodable item
            pixels = None
        channels = shape[2] if len(shape) == 3 else 0
        if pixels is None or pixels.shape[:2] != tuple(shape[:2]) or (pixels.shape[2:3] or (1,))[0] != max(channels, 1):
            raise ValueError(f"PNG data does not decode to shape {tuple(shape)}")
        array = cv2.cvtColor(pixels, _FROM_PNG[channels]) if channels in _FROM_PNG else pixels
        return array.reshape(shape)
    return np.ascontiguousarray(buf, dtype=np.uint8).view(np.dtype(dtype)).reshape(shape)
