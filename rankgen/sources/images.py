"""Decode any supported file to RGB uint8, or fail with a message that names the file and the fix.

Pillow, not OpenCV, does the decoding: cv2.imread returns a half-grey image for a truncated JPEG
with only a warning, while Pillow raises, so a damaged file can never enter a corpus silently.
"""

from __future__ import annotations

import errno
import os
import warnings
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


def _to_rgb(img: Image.Image, name: str, notes: list[str]) -> np.ndarray:
    mode = img.mode
    if mode in WIDE_GRAY:
        notes.append(f"{name}: {mode} (16-bit or float) grayscale scaled to 8-bit and replicated to RGB")
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
                img = _exif_transpose(img, name, notes)
                if deep and img.mode not in WIDE_GRAY:
                    notes.append(f"{name}: 16 bits per channel reduced to 8")
                rgb = _to_rgb(img, name, notes)
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
