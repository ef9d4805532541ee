"""Transmission errors on JPEG and JPEG 2000 codestreams (TID2013 #12, #13).

Both follow one model: encode at a high rate, lose whole independently decodable units of the
entropy-coded data (JPEG restart intervals, JPEG 2000 tiles' later packets), never a header, and
keep what a real decoder recovers. Damaged units are spread by jittered stratified sampling (one at a random place in each stratum
of N / k units): the damaged share is then exactly k / N and spread evenly,
so two levels drawn with independent generators rank by k rather than by where the damage fell.
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import cv2
import glymur
import numpy as np
from PIL import Image

from .base import DISTORTIONS, require
from .spatial import TID_AREA

# A decode that fails is retried with new positions from the same generator; the attempt count
# is deterministic for a given seed, so a retried item still replays exactly.
MAX_ATTEMPTS = 8

JPEG_QUALITY = 90
# JPEG 2000 base rate: 4 bits per pixel (ratio 6), near-lossless, so the lost packets, not the
# coding, make the damage; one quality layer, 3 resolutions, resolution-major order (RLCP).
J2K_RATIO, J2K_RESOLUTIONS = 6, 3
# Tile side: 32 px on 512x384 and scaled with sqrt(area), never below 16, so any image has about
# 48 or more tiles and a share of them is a meaningful count.
J2K_TILE, J2K_MIN_TILE = 32, 16
SOI, SOS, EOI = b"\xff\xd8", 0xDA, b"\xff\xd9"
SOT, SOD, PLT = b"\xff\x90", b"\xff\x93", b"\xff\x58"


class Undecodable(Exception):
    """The damaged codestream could not be decoded at all."""


def stratified(rng: np.random.Generator, share: float, count: int) -> np.ndarray:
    """ceil(share * count) of `count` units in raster order, one at a random place in each equal stratum.

    Each stratum draws its own place: one phase shared by all would line the hits up in one column
    of the image whenever the stride is a multiple of the row length.
    """
    hits = min(count, max(1, int(np.ceil(share * count))))
    return np.floor((np.arange(hits) + rng.random(hits)) * count / hits).astype(np.int64)


def with_retries(attempt, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """Run attempt(rng) until it decodes; returns the image and the number of attempts used."""
    for tries in range(1, MAX_ATTEMPTS + 1):
        try:
            return attempt(rng), tries
        except Undecodable:
            continue
    raise RuntimeError(f"no decodable damaged codestream in {MAX_ATTEMPTS} attempts")


# -- JPEG ------------------------------------------------------------------------------------


def jpeg_with_restarts(image: np.ndarray) -> bytes:
    """Baseline JPEG, 4:2:0, one restart marker after every MCU (16x16 pixels)."""
    params = [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY, cv2.IMWRITE_JPEG_RST_INTERVAL, 1,
              cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444]
    ok, encoded = cv2.imencode(".jpg", np.ascontiguousarray(image[:, :, ::-1]), params)
    if not ok:
        raise RuntimeError(f"OpenCV could not JPEG-encode a {image.shape} image")
    return encoded.tobytes()


def restart_intervals(stream: bytes) -> list[tuple[int, int]]:
    """[start, end) of each restart interval's entropy-coded bytes (markers excluded)."""
    if not stream.startswith(SOI):
        raise ValueError("not a JPEG stream")
    pos = 2
    while stream[pos + 1] != SOS:
        pos += 2 + int.from_bytes(stream[pos + 2 : pos + 4], "big")
    start = pos + 2 + int.from_bytes(stream[pos + 2 : pos + 4], "big")
    end = stream.rindex(EOI)
    intervals, begin, pos = [], start, start
    while (pos := stream.find(b"\xff", pos, end)) >= 0:
        # 0xFF00 is a stuffed data byte; 0xFFD0..D7 are restart markers.
        if 0xD0 <= stream[pos + 1] <= 0xD7:
            intervals.append((begin, pos))
            begin = pos + 2
        pos += 2
    intervals.append((begin, end))
    return intervals


def decode_jpeg(stream: bytes) -> np.ndarray:
    # Pillow, not OpenCV: libjpeg's "corrupt data" warnings would go to the user's terminal.
    try:
        with Image.open(io.BytesIO(stream)) as picture:
            return np.asarray(picture.convert("RGB"), dtype=np.uint8).copy()
    except (OSError, ValueError) as error:
        raise Undecodable(str(error)) from None


def lose_restart_intervals(stream: bytes, share: float, rng: np.random.Generator) -> bytes:
    """Delete the entropy-coded bytes of a share of the restart intervals; markers stay."""
    intervals = restart_intervals(stream)
    damaged = bytearray(stream)
    for index in sorted(stratified(rng, share, len(intervals)).tolist(), reverse=True):
        begin, end = intervals[index]
        del damaged[begin:end]
    return bytes(damaged)


@DISTORTIONS.register(
    "jpeg_transmission_errors", aliases=("tid12",), tid=12, family="compression", metric="psnr", random=True
)
def jpeg_transmission_errors(image: np.ndarray, param: float, rng: np.random.Generator) -> np.ndarray:
    """JPEG (quality 90, a restart marker per MCU) with a share `param` of restart intervals lost.

    A decoder that meets a restart marker early fills the rest of the interval with zero
    coefficients and resynchronises: each lost interval shows as a flat grey 16x16 block.
    """
    out, _ = jpeg_transmission_errors_attempts(image, param, rng)
    return out


def jpeg_transmission_errors_attempts(image: np.ndarray, share: float, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """The distorted image and how many damage draws it took to get a decodable stream."""
    require(0 < share <= 1, "jpeg_transmission_errors", f"share of lost restart intervals must be in (0, 1], got {share}")
    stream = jpeg_with_restarts(image)
    return with_retries(lambda r: decode_jpeg(lose_restart_intervals(stream, share, r)), rng)


# -- JPEG 2000 -------------------------------------------------------------------------------


def j2k_tile_side(shape: tuple[int, ...]) -> int:
    side = J2K_TILE * np.sqrt(shape[0] * shape[1] / TID_AREA)
    return max(J2K_MIN_TILE, int(round(side / J2K_MIN_TILE)) * J2K_MIN_TILE)


def _plt_lengths(segment: bytes) -> list[int]:
    """Packet lengths of a PLT marker segment (7 bits per byte, high bit = more bytes follow)."""
    lengths, value = [], 0
    for byte in segment:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            lengths.append(value)
            value = 0
    return lengths


def tile_parts(stream: bytes) -> list[tuple[int, int, list[int]]]:
    """(data start, data end, packet lengths) of every tile-part of a raw JPEG 2000 codestream."""
    parts = []
    pos = stream.index(SOT)
    while stream[pos : pos + 2] == SOT:
        end = pos + int.from_bytes(stream[pos + 6 : pos + 10], "big")
        marker, lengths = pos + 12, []
        while stream[marker : marker + 2] != SOD:
            size = int.from_bytes(stream[marker + 2 : marker + 4], "big")
            if stream[marker : marker + 2] == PLT:
                lengths += _plt_lengths(stream[marker + 5 : marker + 2 + size])
            marker += 2 + size
        parts.append((marker + 2, end, lengths))
        pos = end
    return parts


def lose_tile_packets(stream: bytes, share: float, rng: np.random.Generator) -> bytes:
    """In a share of the tiles keep only the first packet (luma, lowest resolution); zero the rest.

    A zero byte is an empty packet header, so the decoder reads every later packet of the tile as
    empty: exactly what it recovers when they are lost. Main and tile-part headers are untouched.
    """
    parts = tile_parts(stream)
    damaged = bytearray(stream)
    for index in stratified(rng, share, len(parts)).tolist():
        begin, end, lengths = parts[index]
        cut = begin + (lengths[0] if lengths else 0)
        damaged[cut:end] = bytes(end - cut)
    return bytes(damaged)


@DISTORTIONS.register(
    "jpeg2000_transmission_errors", aliases=("tid13",), tid=13, family="compression", metric="psnr", random=True
)
def jpeg2000_transmission_errors(image: np.ndarray, param: float, rng: np.random.Generator) -> np.ndarray:
    """JPEG 2000 (4 bpp, tiles of 32 px at 512x384) with all but the first packet lost in a share `param` of tiles.

    A damaged tile keeps only its luma at quarter resolution: a blurred, colourless patch.
    """
    out, _ = jpeg2000_transmission_errors_attempts(image, param, rng)
    return out


def jpeg2000_transmission_errors_attempts(image: np.ndarray, share: float, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """The distorted image and how many damage draws it took to get a decodable codestream."""
    require(0 < share <= 1, "jpeg2000_transmission_errors", f"share of damaged tiles must be in (0, 1], got {share}")
    with tempfile.TemporaryDirectory(prefix="rankgen-j2k-") as folder:
        clean, broken = Path(folder) / "clean.j2k", Path(folder) / "damaged.j2k"
        side = j2k_tile_side(image.shape)
        glymur.Jp2k(str(clean), data=image, cratios=[J2K_RATIO], irreversible=True, tilesize=(side, side),
                    numres=J2K_RESOLUTIONS, prog="RLCP", plt=True)
        stream = clean.read_bytes()

        def attempt(r: np.random.Generator) -> np.ndarray:
            broken.write_bytes(lose_tile_packets(stream, share, r))
            try:
                decoded = glymur.Jp2k(str(broken))[:]
            except (OSError, RuntimeError, ValueError) as error:
                raise Undecodable(str(error)) from None
            if decoded.shape != image.shape:
                raise Undecodable(f"decoded shape {decoded.shape}")
            return np.ascontiguousarray(decoded, dtype=np.uint8)

        return with_retries(attempt, rng)


# Types whose damage can make a codestream undecodable: name -> f(image, param, rng) -> (image,
# attempts), so corpora can record how many draws each item needed (rankgen.distortions.distort_recorded).
RETRYING = {
    "jpeg_transmission_errors": jpeg_transmission_errors_attempts,
    "jpeg2000_transmission_errors": jpeg2000_transmission_errors_attempts,
}
