"""Decode any supported file to RGB uint8, or fail with a message that names the file and the fix.

Pillow, not OpenCV, does the decoding: cv2.imread returns a half-grey image for a truncated JPEG
with only a warning, while Pillow raises. Two kinds of damage pass Pillow too, so they are checked
beside it: garbled JPEG entropy data, on which libjpeg only warns and Pillow swallows the warning
(checked by a strict libjpeg-turbo decode through simplejpeg, which stops on any warning), and PNG
chunks whose CRC fails (Pillow does not check the CRC of IDAT chunks).
"""

from __future__ import annotations

import errno
import os
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import BadImage

MIN_SIDE = 32
WIDE_GRAY = ("I;16", "I;16B", "I;16L", "I", "F")
EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def printable(path: str | os.PathLike) -> str:
    """The path as valid UTF-8 text, undecodable bytes of a file name shown as \\xNN.

    Such names reach Python as surrogate escapes, which neither a UTF-8 terminal nor HDF5 accepts.
    """
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _deep_channels(img: Image.Image) -> bool:
    """Whether the file stores 16 bits per colour channel (Pillow keeps only the high byte of RGB;16)."""
    for tile in img.tile:
        rawmode = tile.args if isinstance(tile.args, str) else next((a for a in tile.args or () if isinstance(a, str)), "")
        if ";16" in rawmode:
            return True
    return False


def _exif_transpose(img: Image.Image, name: str, notes: list[str]) -> Image.Image:
    # Damaged EXIF must not cost the pixels: the image itself is fine, only the orientation is unknown.
    try:
        return ImageOps.exif_transpose(img)
    except Exception as exc:  # noqa: BLE001  any parser failure means the same: no usable orientation
        notes.append(f"{name}: EXIF metadata is damaged ({exc}); used without EXIF orientation")
        return img


def _warning_notes(caught, name: str) -> list[str]:
    """Pillow's warnings about a file it decoded anyway (mostly damaged EXIF), as one note each."""
    out = []
    for w in caught:
        if not issubclass(w.category, UserWarning):
            continue
        text = " ".join(str(w.message).split())
        if "exif" in text.lower() or "tag" in text.lower():
            out.append(f"{name}: EXIF metadata is damaged ({text}); its unreadable tags were ignored")
        else:
            out.append(f"{name}: decoded despite a warning ({text})")
    return list(dict.fromkeys(out))


# libjpeg warnings that mean the pixels are wrong (JWRN_* texts of jerror.h); the rest (an unknown
# JFIF revision, odd SOS parameters, a bad ICC marker) leave the pixels whole.
JPEG_DAMAGE = ("Corrupt JPEG data", "Premature end of JPEG file")


def _jpeg_problem(data: bytes) -> str | None:
    """libjpeg's first warning or error on a strict decode of the whole file, None when it has none."""
    import simplejpeg

    colorspace = simplejpeg.decode_jpeg_header(data)[2]
    target = {"GRAY": "GRAY", "CMYK": "CMYK", "YCCK": "CMYK"}.get(colorspace, "RGB")
    try:
        simplejpeg.decode_jpeg(data, colorspace=target, strict=True)
    except ValueError as exc:
        return " ".join(str(exc).split())
    return None


def _png_problem(data: bytes) -> str | None:
    """The first chunk whose CRC fails, as a sentence; None when every chunk up to IEND is sound."""
    pos = 8
    while pos + 12 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        end = pos + 8 + length
        if end + 4 > len(data):
            return None  # truncated: Pillow reports that itself
        if zlib.crc32(data[pos + 4 : end]) != struct.unpack(">I", data[end : end + 4])[0]:
            return f"its {kind.decode('latin-1')} chunk at byte {pos} fails its CRC"
        if kind == b"IEND":
            return None
        pos = end + 4
    return None


def _check_stream(path: Path, fmt: str | None, shown: str, name: str, notes: list[str]) -> None:
    if fmt not in ("JPEG", "MPO", "PNG"):
        return
    data = path.read_bytes()
    if fmt == "PNG":
        problem = _png_problem(data)
        if problem:
            raise BadImage(f"{shown}: damaged PNG ({problem}); re-download or remove it")
        return
    problem = _jpeg_problem(data)
    if problem and problem.startswith(JPEG_DAMAGE) and "ICC" not in problem:
        raise BadImage(f"{shown}: damaged JPEG data ({problem}; libjpeg would fill it with garbage); "
                       "re-download or remove it")
    if problem:
        notes.append(f"{name}: decoded despite a libjpeg warning ({problem})")


def _float_to_8bit(a: np.ndarray, shown: str) -> tuple[np.ndarray, str]:
    """A float image in [0, 1] (the usual convention) or [0, 255], as uint8; any other range has no
    scale one could trust, so it is refused rather than guessed (clipping [0, 1] to 8 bits stored it black)."""
    if not np.isfinite(a).all():
        raise BadImage(f"{shown}: float image with NaN or infinite values; convert it to an 8- or 16-bit image")
    lo, hi = float(a.min()), float(a.max())
    if lo < 0 or hi > 255:
        raise BadImage(f"{shown}: float image with values in [{lo:g}, {hi:g}], neither [0, 1] nor [0, 255]; "
                       "convert it to an 8- or 16-bit image")
    top = 1.0 if hi <= 1.0 else 255.0
    return np.clip(np.rint(a * (255.0 / top)), 0, 255).astype(np.uint8), f"[0, {top:g}]"


def _to_rgb(img: Image.Image, shown: str, name: str, notes: list[str]) -> np.ndarray:
    mode = img.mode
    if mode == "F":
        a, scale = _float_to_8bit(np.asarray(img, dtype=np.float64), shown)
        notes.append(f"{name}: float grayscale in {scale} scaled to 8-bit and replicated to RGB")
        return np.repeat(a[..., None], 3, axis=2)
    if mode in WIDE_GRAY:
        notes.append(f"{name}: {mode} (16-bit or 32-bit integer) grayscale scaled to 8-bit and replicated to RGB")
        a = np.asarray(img, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") or a.max() > 255 else 255.0
        a = np.clip(np.rint(a * (255.0 / top)), 0, 255).astype(np.uint8)
        return np.repeat(a[..., None], 3, axis=2)
    if mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        notes.append(f"{name}: alpha channel composited onto white")
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"))
    if mode in ("L", "1"):
        notes.append(f"{name}: grayscale replicated to RGB")
    elif mode == "P":
        notes.append(f"{name}: palette image expanded to RGB")
    elif mode == "CMYK":
        notes.append(f"{name}: CMYK converted to RGB")
    elif mode not in ("RGB",):
        notes.append(f"{name}: {mode} converted to RGB")
    return np.asarray(img.convert("RGB"))


def load_rgb(path: str | Path, min_side: int = MIN_SIDE) -> tuple[np.ndarray, list[str]]:
    """Return (H x W x 3 uint8 RGB with EXIF orientation applied, notes on conversions)."""
    path = Path(path)
    shown, name = printable(path), printable(path.name)
    notes: list[str] = []
    try:
        if path.is_file() and path.stat().st_size == 0:
            raise BadImage(f"{shown}: empty file (0 bytes), not an image; re-download or remove it")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                deep = _deep_channels(img)
                img.load()
                _check_stream(path, img.format, shown, name, notes)
                img = _exif_transpose(img, name, notes)
                if deep and img.mode not in WIDE_GRAY:
                    notes.append(f"{name}: 16 bits per channel reduced to 8")
                rgb = _to_rgb(img, shown, name, notes)
        notes += _warning_notes(caught, name)
    except FileNotFoundError:
        if path.is_symlink():
            raise BadImage(f"{shown}: broken symbolic link (points to {printable(os.readlink(path))}); fix or remove it") from None
        raise BadImage(f"{shown}: file not found") from None
    except PermissionError:
        raise BadImage(f"{shown}: permission denied; make it readable (chmod +r) or remove it from the input") from None
    except IsADirectoryError:
        raise BadImage(f"{shown}: is a directory, not an image") from None
    except UnidentifiedImageError:
        raise BadImage(f"{shown}: not an image Pillow can read (wrong extension or corrupt); remove or convert it") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise BadImage(f"{shown}: declares an enormous size (possible decompression bomb); check the file") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise BadImage(f"{shown}: symbolic link loop (it leads back to itself); fix or remove it") from None
        raise BadImage(f"{shown}: cannot be decoded ({exc}); the file is probably truncated or damaged, re-download or remove it") from None
    except (SyntaxError, ValueError) as exc:
        raise BadImage(f"{shown}: cannot be decoded ({exc}); the file is probably truncated or damaged, re-download or remove it") from None
    h, w = rgb.shape[:2]
    if min(h, w) < min_side:
        raise BadImage(f"{shown}: {w}x{h} px is smaller than {min_side} px per side; remove it or upscale it")
    return np.ascontiguousarray(rgb), notes
