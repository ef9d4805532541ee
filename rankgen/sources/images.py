"""Decode any supported file to RGB uint8, or fail with a message that names the file and the fix.

Pillow, not OpenCV, does the decoding: cv2.imread returns a half-grey image for a truncated JPEG
with only a warning, while Pillow raises, so a damaged file can never enter a corpus silently.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import BadImage

MIN_SIDE = 32
EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def _to_rgb(img: Image.Image, name: str, notes: list[str]) -> np.ndarray:
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
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
    notes: list[str] = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                img.load()
                img = ImageOps.exif_transpose(img)
                rgb = _to_rgb(img, path.name, notes)
    except FileNotFoundError:
        raise BadImage(f"{path}: file not found") from None
    except PermissionError:
        raise BadImage(f"{path}: permission denied; make it readable (chmod +r) or remove it from the input") from None
    except IsADirectoryError:
        raise BadImage(f"{path}: is a directory, not an image") from None
    except UnidentifiedImageError:
        raise BadImage(f"{path}: not an image Pillow can read (wrong extension or corrupt); remove or convert it") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise BadImage(f"{path}: declares an enormous size (possible decompression bomb); check the file") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise BadImage(f"{path}: cannot be decoded ({exc}); the file is probably truncated or damaged, re-download or remove it") from None
    h, w = rgb.shape[:2]
    if min(h, w) < min_side:
        raise BadImage(f"{path}: {w}x{h} px is smaller than {min_side} px per side; remove it or upscale it")
    return np.ascontiguousarray(rgb), notes
