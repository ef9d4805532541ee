"""JPEG and JPEG 2000 round trips (TID2013 #10, #11): the decoded image is the distorted one."""

from __future__ import annotations

import tempfile
from pathlib import Path

import cv2
import glymur
import numpy as np
import simplejpeg

from .base import DISTORTIONS, require

# TID2013 rates JPEG 2000 in bits per pixel of a 24-bit RGB image: compression ratio = 24 / bpp.
BITS_PER_RGB_PIXEL = 24


@DISTORTIONS.register("jpeg", aliases=("tid10",), tid=10, family="compression", metric="psnr", random=False)
def jpeg(image: np.ndarray, param: float, rng: np.random.Generator) -> np.ndarray:
    """Encode with libjpeg(-turbo) at quality `param` (4:2:0 chroma, OpenCV's default), decode once.

    Decoded by libjpeg-turbo through simplejpeg, straight to RGB: the pixels of OpenCV's decoder
    (same library, accurate DCT, fancy upsampling; tests/test_kernels.py) in 0.76x its time. The
    encoder stays OpenCV's: simplejpeg's writes other coefficients, and is no faster.
    """
    quality = int(round(param))
    require(1 <= quality <= 100, "jpeg", f"quality must be in 1..100, got {param}")
    # cvtColor rather than [..., ::-1] + a contiguous copy: same bytes, and it halves the call.
    ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError(f"OpenCV could not JPEG-encode a {image.shape} image")
    return simplejpeg.decode_jpeg(encoded, colorspace="RGB", fastdct=False, fastupsample=False)


# The official rates are for TID2013's 512x384 images. A codestream cannot shrink below ~250 bytes
# of headers and DC, which 128x96 at ratio 150 already undercuts, so smaller images are mirrored out
# to this canvas, coded at the same bits per pixel and cut back: the rate then means what it did.
CANVAS = (384, 512)


def _mirrored_canvas(image: np.ndarray) -> np.ndarray:
    grow = [max(0, side - have) for side, have in zip(CANVAS, image.shape[:2])]
    return np.pad(image, ((0, grow[0]), (0, grow[1]), (0, 0)), mode="symmetric")


@DISTORTIONS.register(
    "jpeg2000", aliases=("tid11",), tid=11, family="compression", metric="psnr", random=False
)
def jpeg2000(image: np.ndarray, param: float, rng: np.random.Generator) -> np.ndarray:
    """OpenJPEG at `param` bits per pixel, i.e. compression ratio 24 / param.

    Irreversible 9/7 wavelet with the RGB->YCC transform, as MATLAB's lossy imwrite 'jp2', and
    OpenJPEG's default 6 resolutions. glymur only writes to files, so the codestream lives in a
    private temporary directory.
    """
    require(0 < param < BITS_PER_RGB_PIXEL, "jpeg2000", f"bits per pixel must be in (0, 24), got {param}")
    with tempfile.TemporaryDirectory(prefix="rankgen-jp2-") as folder:
        path = Path(folder) / "image.jp2"
        glymur.Jp2k(
            str(path), data=_mirrored_canvas(image), cratios=[BITS_PER_RGB_PIXEL / param], irreversible=True
        )
        decoded = glymur.Jp2k(str(path))[:]
    return np.ascontiguousarray(decoded[: image.shape[0], : image.shape[1]], dtype=np.uint8)
