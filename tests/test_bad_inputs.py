"""The bad-input catalog: every malformed input a user is likely to feed rankgen, through the CLI.

Each case builds its input in tmp_path and runs one command with an earlier output already at
-o. The promise checked for every case: no traceback; a message naming the file (or option) and
what to do; and either the run skips the file (or accepts it with a note) and writes a complete
corpus, or it stops with exit status 2 and the earlier output is byte-identical.

docs/bad-inputs.md is rendered from CASES: `python tests/test_bad_inputs.py` rewrites it, and
test_the_doc_matches_the_catalog fails when the two drift apart.
"""

from __future__ import annotations

import functools
import os
import stat
import struct
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import h5py
import numpy as np
import pytest
import scipy.io
from click.testing import CliRunner
from PIL import Image

from rankgen.cli import main
from rankgen.corpus import Corpus

SKIP, ACCEPT, STOP = "skip", "accept", "stop"
DOC = Path(__file__).resolve().parent.parent / "docs" / "bad-inputs.md"


# -- inputs ------------------------------------------------------------------------------------
def pixels(h: int = 40, w: int = 48, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).random((h, w, 3)) * 255).astype(np.uint8)


def encoded(image, fmt: str, **options) -> bytes:
    import io

    buffer = io.BytesIO()
    (Image.fromarray(image) if isinstance(image, np.ndarray) else image).save(buffer, fmt, **options)
    return buffer.getvalue()


def truncated(fmt: str) -> bytes:
    data = encoded(pixels(), fmt)
    return data[: len(data) // 2]


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png16_rgb() -> bytes:
    """48-bit RGB PNG, written by hand: Pillow cannot write one but reads it as 8-bit RGB."""
    a = (np.random.default_rng(1).random((40, 48, 3)) * 65535).astype(">u2")
    raw = b"".join(b"\0" + row.tobytes() for row in a)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", 48, 40, 16, 2, 0, 0, 0))
            + png_chunk(b"IDAT", zlib.compress(raw)) + png_chunk(b"IEND", b""))


def png_bomb() -> bytes:
    """A 100000 x 100000 PNG header in ~60 bytes: decoding would need 30 GB."""
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0))
            + png_chunk(b"IDAT", zlib.compress(b"\0" * 64)) + png_chunk(b"IEND", b""))


def bmp_bomb() -> bytes:
    dib = struct.pack("<IiiHHIIiiII", 40, 100000, 100000, 1, 24, 0, 0, 2835, 2835, 0, 0)
    return struct.pack("<2sIHHI", b"BM", 54, 0, 0, 54) + dib


def png_bad_crc() -> bytes:
    data = bytearray(encoded(pixels(), "PNG"))
    data[29] ^= 0xFF  # last byte of the IHDR chunk's CRC (8 signature + 8 chunk head + 13 IHDR)
    return bytes(data)


def jpeg_bad_exif() -> bytes:
    # An IFD whose Orientation entry claims 100 ASCII bytes at an offset past the end of the block.
    ifd = struct.pack("<H", 1) + struct.pack("<HHII", 0x0112, 2, 100, 0x1000) + b"\0\0\0\0"
    return encoded(pixels(), "JPEG", exif=b"Exif\0\0II*\0\x08\0\0\0" + ifd)


def jpeg_garbled() -> bytes:
    """8 bytes inverted in the middle of the entropy-coded data: libjpeg only warns, Pillow decodes garbage."""
    data = encoded(pixels(), "JPEG")
    sos = data.index(b"\xff\xda")
    start = sos + 2 + int.from_bytes(data[sos + 2 : sos + 4], "big")
    out = bytearray(data)
    mid = (start + len(data) - 2) // 2
    out[mid : mid + 8] = bytes(b ^ 0xFF for b in out[mid : mid + 8])
    return bytes(out)


def png_bad_idat_crc() -> bytes:
    data = bytearray(encoded(pixels(), "PNG"))
    idat = data.index(b"IDAT")
    data[idat + 4 + int.from_bytes(data[idat - 4 : idat], "big")] ^= 0x01  # the IDAT chunk's CRC
    return bytes(data)


def float_tiff(lo: float, hi: float) -> bytes:
    return encoded(Image.fromarray(np.tile(np.linspace(lo, hi, 48, dtype=np.float32), (40, 1))), "TIFF")


def gray16_tiff() -> bytes:
    return encoded(Image.fromarray((np.random.default_rng(2).random((40, 48)) * 65535).astype(np.uint16)), "TIFF")


def palette_with_transparency() -> bytes:
    return encoded(Image.fromarray(pixels()).convert("P"), "PNG", transparency=0)


# -- sources -------------------------------------------------------------------------------------
def photos(tmp: Path, name: str | bytes | None = None, data: bytes | None = None) -> Path:
    """A folder source: one good photo, plus `name` holding `data` when given."""
    root = tmp / "photos"
    root.mkdir(exist_ok=True)
    (root / "good.png").write_bytes(encoded(pixels(seed=3), "PNG"))
    if name is not None:
        with open(os.path.join(os.fsencode(root), os.fsencode(name)), "wb") as f:
            f.write(data)
    return root


def distort(root: Path, *extra) -> list:
    return ["distort", "--dataset", "folder", "--root", root, "--distortions", "gaussian_blur", "--levels", 2, *extra]


def distort_only(root: Path, distortions: str) -> list:
    return ["distort", "--dataset", "folder", "--root", root, "--distortions", distortions, "--levels", 2]


def image_case(name: str, data: Callable[[], bytes]):
    return lambda tmp: distort(photos(tmp, name, data()))


def symlink_loop(tmp: Path) -> list:
    root = photos(tmp)
    (root / "loop.jpg").symlink_to("loop.jpg")
    (root / "again").symlink_to(root, target_is_directory=True)  # a folder loop must not hang the listing
    return distort(root)


def broken_link(tmp: Path) -> list:
    root = photos(tmp)
    (root / "gone.png").symlink_to(tmp / "deleted.png")
    return distort(root)


def unreadable(tmp: Path) -> list:
    if os.geteuid() == 0:
        pytest.skip("running as root, where chmod 000 does not stop reads")
    root = photos(tmp, "locked.png", encoded(pixels(), "PNG"))
    (root / "locked.png").chmod(0)
    return distort(root)


def unreadable_folder(tmp: Path) -> list:
    if os.geteuid() == 0:
        pytest.skip("running as root, where chmod 000 does not stop listing a folder")
    root = photos(tmp)
    (root / "locked").mkdir()
    (root / "locked" / "inside.png").write_bytes(encoded(pixels(), "PNG"))
    (root / "locked").chmod(0)
    return distort(root)


def non_utf8_name(tmp: Path) -> list:
    try:
        root = photos(tmp, b"caf\xe9.png", encoded(pixels(), "PNG"))
    except OSError:
        pytest.skip("this file system refuses file names that are not UTF-8")
    return distort(root)


def empty_folder(tmp: Path) -> list:
    (tmp / "empty").mkdir()
    return distort(tmp / "empty")


def no_images(tmp: Path) -> list:
    root = tmp / "docs"
    root.mkdir()
    (root / "readme.txt").write_text("no pictures here")
    (root / "x.jpg").mkdir()  # a folder with an image's name is not an image either
    return distort(root)


def only_bad(tmp: Path) -> list:
    root = tmp / "bad"
    root.mkdir()
    (root / "cut.jpg").write_bytes(truncated("JPEG"))
    return distort(root)


def recipe(text: str):
    def build(tmp: Path) -> list:
        (tmp / "bad.yaml").write_text(text)
        return ["distort", "--dataset", "folder", "--root", photos(tmp), "--recipe", tmp / "bad.yaml", "--levels", 2]
    return build


def shanghaitech(mat: Callable[[Path], None]):
    """ShanghaiTech part A with IMG_1 (good labels) and IMG_2, whose .mat file `mat` writes."""
    def build(tmp: Path) -> list:
        base = tmp / "ShanghaiTech" / "part_A" / "train_data"
        (base / "images").mkdir(parents=True)
        (base / "ground-truth").mkdir()
        for i in (1, 2):
            (base / "images" / f"IMG_{i}.jpg").write_bytes(encoded(pixels(64, 64, seed=i), "JPEG"))
        scipy.io.savemat(base / "ground-truth" / "GT_IMG_1.mat", {"image_info": np.array([[10.0, 12.0], [40.0, 30.0]])})
        mat(base / "ground-truth" / "GT_IMG_2.mat")
        return ["crops", "--dataset", "shanghaitech-a", "--root", tmp / "ShanghaiTech", "--k", 2, "--per-image", 1,
                "--size", 32]
    return build


def scores_csv(rows: list[str], images: int = 4, *extra):
    """`rankgen annotate --dataset csv` on img0.png ... with the given CSV lines."""
    def build(tmp: Path) -> list:
        for i in range(images):
            (tmp / f"img{i}.png").write_bytes(encoded(pixels(seed=10 + i), "PNG"))
        (tmp / "scores.csv").write_text("\n".join(rows) + "\n")
        return ["annotate", "--dataset", "csv", "--root", tmp / "scores.csv", "--annotators", 2, *extra]
    return build


GOOD_ROWS = ["path,score,ref", "img0.png,0.9,a", "img1.png,0.5,a", "img2.png,0.7,b", "img3.png,0.2,b"]


def csv_bytes(data: bytes):
    def build(tmp: Path) -> list:
        (tmp / "scores.csv").write_bytes(data)
        return ["annotate", "--dataset", "csv", "--root", tmp / "scores.csv"]
    return build


def csv_listing_folder(tmp: Path) -> list:
    (tmp / "x.jpg").mkdir()
    return scores_csv([*GOOD_ROWS, "x.jpg,0.4,c"])(tmp)


def annotate_truncated(tmp: Path) -> list:
    args = scores_csv(GOOD_ROWS)(tmp)
    (tmp / "img3.png").write_bytes(truncated("PNG"))
    return args


def tid2013_names(tmp: Path) -> list:
    (tmp / "tid" / "distorted_images").mkdir(parents=True)
    (tmp / "tid" / "mos_with_names.txt").write_text("5.1 i01_01_1.bmp\n4.2 flower.bmp\n")
    return ["annotate", "--dataset", "tid2013", "--root", tmp / "tid"]


# -- the catalog ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    id: str
    input: str                          # what the user has, for docs/bad-inputs.md
    build: Callable[[Path], list]       # makes the input under tmp_path, returns the command's arguments
    expect: str | tuple[str, ...]       # fragments of what rankgen says; {tmp} stands for tmp_path
    outcome: str                        # SKIP or ACCEPT (the run succeeds) or STOP (exit status 2)
    output: str = "earlier"             # a key of OUTPUTS: what is at -o before the run, and whether --overwrite is given


CASES = [
    # Image files in a folder source: the bad one is skipped, the good one makes the corpus.
    Case("truncated-jpeg", "JPEG cut in half", image_case("cut.jpg", lambda: truncated("JPEG")),
         "cut.jpg: cannot be decoded (image file is truncated", SKIP),
    Case("truncated-png", "PNG cut in half", image_case("cut.png", lambda: truncated("PNG")),
         "cut.png: cannot be decoded (image file is truncated", SKIP),
    Case("truncated-bmp", "BMP cut in half", image_case("cut.bmp", lambda: truncated("BMP")),
         "cut.bmp: cannot be decoded (image file is truncated", SKIP),
    Case("truncated-webp", "WebP cut in half", image_case("cut.webp", lambda: truncated("WEBP")),
         "cut.webp: cannot be decoded", SKIP),
    Case("zero-bytes", "zero-byte file", image_case("empty.png", lambda: b""),
         "empty.png: empty file (0 bytes), not an image; re-download or remove it", SKIP),
    Case("one-pixel", "1x1 image", image_case("dot.png", lambda: encoded(np.zeros((1, 1, 3), np.uint8), "PNG")),
         "dot.png: 1x1 px is smaller than 32 px per side; remove it or upscale it", SKIP),
    Case("png-16-bit", "16-bit-per-channel RGB PNG", image_case("deep.png", png16_rgb),
         "deep.png: 16 bits per channel reduced to 8", ACCEPT),
    Case("tiff-16-bit-gray", "16-bit grayscale TIFF", image_case("gray16.tif", gray16_tiff),
         "gray16.tif: I;16 (16-bit or 32-bit integer) grayscale scaled to 8-bit", ACCEPT),
    Case("cmyk-jpeg", "CMYK JPEG", image_case("print.jpg", lambda: encoded(Image.fromarray(pixels()).convert("CMYK"), "JPEG")),
         "print.jpg: CMYK converted to RGB", ACCEPT),
    Case("palette-transparency", "palette PNG with a transparent colour", image_case("pal.png", palette_with_transparency),
         "pal.png: alpha channel composited onto white", ACCEPT),
    Case("la-png", "grayscale + alpha (LA) PNG", image_case("la.png", lambda: encoded(Image.fromarray(pixels()).convert("LA"), "PNG")),
         "la.png: alpha channel composited onto white", ACCEPT),
    Case("png-bomb", "PNG header declaring 100000x100000 px in 70 bytes", image_case("bomb.png", png_bomb),
         "bomb.png: declares an enormous size (possible decompression bomb)", SKIP),
    Case("bmp-bomb", "BMP header declaring 100000x100000 px in 54 bytes", image_case("bomb.bmp", bmp_bomb),
         "bomb.bmp: declares an enormous size (possible decompression bomb)", SKIP),
    Case("text-as-jpeg", "text file named .jpg", image_case("notes.jpg", lambda: b"meeting notes, not a photo\n" * 4),
         "notes.jpg: not an image Pillow can read (wrong extension or corrupt); remove or convert it", SKIP),
    Case("png-bad-crc", "PNG whose header chunk fails its CRC", image_case("crc.png", png_bad_crc),
         "crc.png: not an image Pillow can read", SKIP),
    Case("png-bad-idat-crc", "PNG whose pixel-data (IDAT) chunk fails its CRC", image_case("idat.png", png_bad_idat_crc),
         "idat.png: damaged PNG (its IDAT chunk at byte 33 fails its CRC)", SKIP),
    Case("jpeg-garbled", "JPEG with 8 garbled bytes in its entropy-coded data (libjpeg only warns)",
         image_case("garbled.jpg", jpeg_garbled), "garbled.jpg: damaged JPEG data (Corrupt JPEG data", SKIP),
    Case("tiff-float-unit", "float TIFF with values in [0, 1]", image_case("unit.tif", lambda: float_tiff(0, 1)),
         "unit.tif: float grayscale in [0, 1] scaled to 8-bit", ACCEPT),
    Case("tiff-float-range", "float TIFF with values in [-1, 3]", image_case("hdr.tif", lambda: float_tiff(-1, 3)),
         "hdr.tif: float image with values in [-1, 3], neither [0, 1] nor [0, 255]; convert it", SKIP),
    Case("jpeg-bad-exif", "JPEG with a corrupted EXIF block", image_case("exif.jpg", jpeg_bad_exif),
         "exif.jpg: EXIF metadata is damaged", ACCEPT),
    Case("unreadable", "image without read permission", unreadable,
         "locked.png: permission denied; make it readable (chmod +r)", SKIP),
    Case("unreadable-folder", "sub-folder without read permission", unreadable_folder,
         "locked: folder cannot be read (Permission denied); its images are left out", SKIP),
    Case("symlink-loop", "symbolic link loop (and a folder link back to the root)", symlink_loop,
         "loop.jpg: symbolic link loop", SKIP),
    Case("broken-symlink", "symbolic link to a deleted file", broken_link,
         "gone.png: broken symbolic link", SKIP),
    Case("non-utf8-name", "file name that is not UTF-8 (Latin-1 bytes)", non_utf8_name,
         "caf\\xe9.png: file name is not valid UTF-8", SKIP),
    Case("stop-on-error", "truncated JPEG with --on-error stop",
         lambda tmp: distort(photos(tmp, "cut.jpg", truncated("JPEG")), "--on-error", "stop"),
         ("stopped: {tmp}/photos/cut.jpg: cannot be decoded", "(use --on-error skip to keep going)"), STOP),
    # Folders.
    Case("empty-folder", "empty folder as --root", empty_folder,
         "no images (.jpg, .jpeg, .png, .bmp, .tif, .tiff, .webp) under {tmp}/empty", STOP),
    Case("no-images", "folder of text files and a folder named x.jpg", no_images, "no images (.jpg, .jpeg, .png, .bmp, "
         ".tif, .tiff, .webp) under {tmp}/docs", STOP),
    Case("all-bad", "folder whose only image is truncated", only_bad,
         ("no source image could be used; skipped:", "{tmp}/bad/cut.jpg: cannot be decoded"), STOP),
    # Crowd annotations.
    Case("mat-wrong-keys", "ShanghaiTech .mat without image_info",
         shanghaitech(lambda p: scipy.io.savemat(p, {"annPoints": np.array([[1.0, 2.0]])})),
         "GT_IMG_2.mat: no 'image_info' in this .mat file (it has: annPoints); is --dataset right?", SKIP),
    Case("mat-points-outside", "ShanghaiTech .mat with head points outside the image",
         shanghaitech(lambda p: scipy.io.savemat(p, {"image_info": np.array([[5.0, 5.0], [500.0, 20.0], [-3.0, 9.0]])})),
         "GT_IMG_2.mat: 2 head point(s) outside the 64x64 image dropped", ACCEPT),
    Case("mat-missing", "ShanghaiTech image without its .mat file", shanghaitech(lambda p: None),
         "GT_IMG_2.mat: annotation file missing", SKIP),
    Case("mat-garbage", "ShanghaiTech .mat that is not a MATLAB file",
         shanghaitech(lambda p: p.write_bytes(b"MATLAB 5.0 MAT-file, but then nothing")),
         "GT_IMG_2.mat: not a readable .mat file", SKIP),
    # Score tables.
    Case("csv-nan", "CSV with a NaN score", scores_csv([*GOOD_ROWS[:-1], "img3.png,nan,b"]),
         "scores.csv:5: score is nan; every score must be a finite number", STOP),
    Case("csv-blank", "CSV with a blank score", scores_csv([*GOOD_ROWS[:-1], "img3.png,,b"]),
         "scores.csv:5: score '' is not a number", STOP),
    Case("csv-missing-image", "CSV naming an image that does not exist", scores_csv([*GOOD_ROWS, "gone.png,0.1,c"]),
         "1 of 5 images listed in {tmp}/scores.csv are missing, e.g. {tmp}/gone.png; check that --root", STOP),
    Case("csv-lists-folder", "CSV naming a folder x.jpg", csv_listing_folder,
         "{tmp}/x.jpg (listed in {tmp}/scores.csv) is a folder, not an image file; list the image files", STOP),
    Case("csv-not-utf8", "CSV saved as Latin-1", csv_bytes(b"path,score\ncaf\xe9.png,0.5\n"),
         "{tmp}/scores.csv: not UTF-8 text (byte 0xe9 at offset 14); save the CSV as UTF-8", STOP),
    Case("csv-truncated-image", "CSV naming a truncated image", annotate_truncated,
         "img3.png: cannot be decoded", SKIP),
    Case("tid2013-names", "TID2013 listing with a name that does not parse", tid2013_names,
         "mos_with_names.txt:2: image name 'flower.bmp' does not parse as iRR_TT_L.bmp", STOP),
    Case("annotators-over-references", "--annotators 3 --assign reference with 2 references",
         lambda tmp: scores_csv(GOOD_ROWS)(tmp)[:-1] + [3, "--assign", "reference"],
         "--annotators 3 is more than the 2 reference images", STOP),
    Case("range-reversed", "--range 1 0", lambda tmp: scores_csv(GOOD_ROWS)(tmp) + ["--range", 1, 0],
         "--range needs finite LO < HI", STOP),
    # Recipes.
    Case("recipe-unknown-key", "recipe YAML with an unknown top-level key",
         recipe("distortions: {gaussian_blur: {params: [7, 15]}}\nlevels: 5\n"), "recipe 'bad': levels: unknown key", STOP),
    Case("recipe-unknown-table-key", "recipe table with an unknown key",
         recipe("distortions:\n  gaussian_blur: {params: [7, 15], sigma: 3}\n"),
         "recipe 'bad': distortions.gaussian_blur.sigma: unknown key", STOP),
    Case("recipe-unknown-distortion", "recipe naming a distortion that does not exist",
         recipe("distortions:\n  gausian_blur: {params: [7, 15]}\n"), "recipe 'bad': distortions.gausian_blur:", STOP),
    Case("recipe-not-monotone", "recipe table that goes up and down",
         recipe("distortions:\n  gaussian_blur: {params: [7, 15, 9]}\n"), "must be strictly monotone", STOP),
    Case("recipe-not-yaml", "recipe that is not YAML at all", recipe("distortions: [unclosed\n  : : {\n"),
         "recipe 'bad' is not valid YAML", STOP),
    Case("recipe-not-mapping", "recipe that is a YAML list", recipe("- gaussian_blur\n- jpeg\n"),
         "recipe 'bad' must be a mapping with a 'distortions' table", STOP),
    # Output and options.
    Case("output-no-folder", "-o in a folder that does not exist", lambda tmp: distort(photos(tmp)),
         "output folder {tmp}/nowhere does not exist; create it or choose another -o path", STOP, output="no-folder"),
    Case("output-exists", "existing output without --overwrite", lambda tmp: distort(photos(tmp)),
         "{tmp}/out.h5 already exists; pass --overwrite to replace it", STOP, output="exists"),
    Case("output-directory", "-o naming a directory", lambda tmp: distort(photos(tmp)),
         "Invalid value for '-o' / '--output': File '{tmp}/out.h5' is a directory", STOP,
         output="directory"),
    Case("output-not-a-corpus", "-o naming a text file, with --overwrite", lambda tmp: distort(photos(tmp)),
         "{tmp}/out.h5 is not an HDF5 file, so not a rankgen corpus; --overwrite only replaces a corpus", STOP,
         output="text"),
    Case("output-other-hdf5", "-o naming another program's HDF5 file, with --overwrite", lambda tmp: distort(photos(tmp)),
         "{tmp}/out.h5 is an HDF5 file but not a rankgen corpus (no format='rankgen')", STOP, output="other-hdf5"),
    Case("output-fifo", "-o naming a named pipe (FIFO), with --overwrite", lambda tmp: distort(photos(tmp)),
         "{tmp}/out.h5 is a named pipe (FIFO), not a corpus file; --overwrite only replaces a rankgen corpus", STOP,
         output="fifo"),
    Case("output-dev-null", "-o /dev/null --overwrite (as root, os.replace would replace the device)",
         lambda tmp: distort(photos(tmp)), "/dev/null is a character device, not a corpus file", STOP, output="device"),
    Case("partial-of-another-command", "an unfinished out.h5.partial written by another command",
         lambda tmp: distort(photos(tmp)),
         "{tmp}/out.h5.partial cannot be resumed: it was written by another command (other arguments or another "
         "rankgen). Re-run the command that wrote it to finish it, or pass --overwrite to start over", STOP,
         output="foreign-partial"),
    Case("output-sys", "-o in /sys", lambda tmp: distort(photos(tmp)), "cannot create files in /sys (", STOP,
         output="sys"),
    Case("output-proc", "-o in /proc", lambda tmp: distort(photos(tmp)), "cannot create files in /proc (", STOP,
         output="proc"),
    Case("levels-1", "--levels 1", lambda tmp: distort(photos(tmp))[:-1] + [1],
         "--levels 1: need at least 2", STOP),
    Case("shard-3-of-2", "--shard 3/2", lambda tmp: distort(photos(tmp), "--shard", "3/2"),
         "--shard '3/2': need 0 <= I < N", STOP),
    Case("seed-negative", "--seed -1", lambda tmp: distort(photos(tmp), "--seed", -1),
         "Invalid value for '--seed': -1 is not in the range 0<=x<=9223372036854775807", STOP),
    Case("seed-too-large", "--seed 2**70", lambda tmp: distort(photos(tmp), "--seed", 2**70),
         f"Invalid value for '--seed': {2**70} is not in the range 0<=x<=9223372036854775807", STOP),
    Case("limit-negative", "--limit -1", lambda tmp: distort(photos(tmp), "--limit", -1),
         "Invalid value for '--limit': -1 is not in the range x>=1", STOP),
    Case("limit-zero", "--limit 0", lambda tmp: distort(photos(tmp), "--limit", 0),
         "Invalid value for '--limit': 0 is not in the range x>=1", STOP),
    Case("distortions-empty", "--distortions ''", lambda tmp: distort_only(photos(tmp), ""),
         "--distortions '' names no distortion; give names such as gaussian_blur,jpeg, or leave the option out", STOP),
    Case("distortions-empty-name", "--distortions gaussian_blur,,jpeg",
         lambda tmp: distort_only(photos(tmp), "gaussian_blur,,jpeg"),
         "--distortions 'gaussian_blur,,jpeg' has an empty name (a stray comma?)", STOP),
    Case("crops-k-1", "crops --k 1", lambda tmp: ["crops", "--dataset", "folder", "--root", photos(tmp), "--k", 1],
         "--k must be an integer >= 2", STOP),
    Case("crops-s-1.5", "crops --s 1.5", lambda tmp: ["crops", "--dataset", "folder", "--root", photos(tmp), "--s", 1.5],
         "--s must satisfy 0 < s < 1", STOP),
]


# -- damaged or foreign corpora, read by every command that reads one -------------------------------
READERS = ("info", "verify", "preview")  # stop with exit 2 and "<file> is damaged: ...; run `rankgen check`"


def corpus_for_damage(tmp: Path) -> Path:
    """A sound distort corpus (3 references, 2 distortions, 3 levels) and a virtual merge of its 2 shards."""
    root = photos(tmp)
    for i in (1, 2):
        (root / f"more{i}.png").write_bytes(encoded(pixels(64, 80, seed=20 + i), "PNG"))
    base = [*distort(root)[:-2], "--distortions", "gaussian_blur,jpeg", "--levels", 3, "--workers", 1, "--quiet"]
    for out, extra in (("good.h5", []), ("part0.h5", ["--shard", "0/2"]), ("part1.h5", ["--shard", "1/2"])):
        result = CliRunner().invoke(main, [str(a) for a in [*base, *extra, "-o", tmp / out]], catch_exceptions=False)
        assert result.exit_code == 0, result.output
    result = CliRunner().invoke(main, ["merge", str(tmp / "part0.h5"), str(tmp / "part1.h5"), "-o", str(tmp / "virtual.h5"),
                                       "--virtual"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return tmp / "good.h5"


def edited(change: Callable) -> Callable[[Path], Path]:
    def build(good: Path) -> Path:
        import h5py

        out = good.with_name("damaged.h5")
        out.write_bytes(good.read_bytes())
        with h5py.File(out, "r+") as f:
            change(f)
        return out
    return build


def cut_tail(good: Path) -> Path:
    data = good.read_bytes()
    out = good.with_name("damaged.h5")
    out.write_bytes(data[: len(data) * 7 // 10])
    return out


def only_format_attributes(good: Path) -> Path:
    import h5py

    out = good.with_name("damaged.h5")
    with h5py.File(out, "w") as f:
        f.attrs.update({"format": "rankgen", "schema_version": 1, "complete": True})
    return out


def groups_out_of_range(f) -> None:
    groups = f["tables/groups"][...]
    groups[0, 1] = 10**6
    f["tables/groups"][...] = groups


def undecodable_pixels(good: Path) -> Path:
    """0xFF over 256 bytes of the first chunk of the pixels: item 0's PNG stream no longer decodes."""
    import h5py

    with h5py.File(good, "r") as f:
        chunk = f["ragged/image/data"].id.get_chunk_info(0)
    data = bytearray(good.read_bytes())
    data[chunk.byte_offset + 16 : chunk.byte_offset + 272] = b"\xff" * 256
    out = good.with_name("damaged.h5")
    out.write_bytes(data)
    return out


def flip_crc(f) -> None:
    f["ragged/image/crc32"][1] ^= 1  # the pixels are intact; what they are checked against is not


def shard_deleted(good: Path) -> Path:
    (good.parent / "part1.h5").unlink()
    return good.parent / "virtual.h5"


@dataclass(frozen=True)
class CorpusCase:
    id: str
    input: str
    damage: Callable[[Path], Path]      # the sound corpus -> the damaged file
    says: str                           # what info, verify and preview say (after "<file> ")
    check_says: str                     # what `rankgen check` lists among the problems (exit status 1)
    readers: tuple[str, ...] = READERS  # commands that stop: the others do not read what is damaged


CORPUS_CASES = [
    CorpusCase("corpus-tail-cut", "corpus cut at 70% of its size", cut_tail,
               "is damaged: HDF5 cannot open it (Unable to synchronously open file (truncated file",
               "cannot be opened as HDF5"),
    CorpusCase("corpus-only-attributes", "HDF5 file with only the format attributes", only_format_attributes,
               "is damaged: no kind attribute", "no /items group"),
    CorpusCase("corpus-dangling-link", "ragged/ghost a soft link to nothing",
               edited(lambda f: f["ragged"].__setitem__("ghost", h5py.SoftLink("/nowhere"))),
               "is damaged: ragged/ghost is not a group (a dangling link?)", "ragged/ghost is not a group"),
    CorpusCase("corpus-groups-out-of-range", "groups table naming item 1000000 of 15", edited(groups_out_of_range),
               "is damaged: tables/groups holds item indices outside -1..14", "tables/groups has 1 indices outside"),
    CorpusCase("corpus-bogus-kind", "corpus whose kind is 'bogus'", edited(lambda f: f.attrs.__setitem__("kind", "bogus")),
               "is damaged: kind 'bogus' is none of distort, crops, density, annotate", "kind 'bogus' is none of"),
    CorpusCase("corpus-n-items-too-large", "n_items 115 over 15 items of data",
               edited(lambda f: f.attrs.__setitem__("n_items", 115)), "is damaged: items/attempts has 15 rows for 115 items",
               "items/attempts has 15 values for 115 items"),
    CorpusCase("corpus-pixels-undecodable", "pixel bytes whose PNG stream no longer decodes", undecodable_pixels,
               "is damaged: item 0 of ragged/image does not decode",
               "ragged/image: 1 items cannot be decoded (damaged compressed data)"),
    CorpusCase("corpus-crc-mismatch", "item whose stored CRC does not match its pixels", edited(flip_crc),
               "is damaged: item 1 of ragged/image fails its CRC", "ragged/image: 1 items fail their CRC, first at item 1",
               readers=("verify", "preview")),
    CorpusCase("corpus-virtual-shard-deleted", "virtual merge whose shard part1.h5 was deleted", shard_deleted,
               "is damaged: items/attempts reads from the shard part1.h5, which does not exist",
               "reads from part1.h5, which does not exist: a deleted shard"),
]


@pytest.fixture(scope="module")
def sound_corpus(tmp_path_factory) -> Path:
    return corpus_for_damage(tmp_path_factory.mktemp("sound"))


def _damaged_copy(sound: Path, tmp: Path, case: CorpusCase) -> Path:
    import shutil

    for name in ("good.h5", "part0.h5", "part1.h5", "virtual.h5"):
        shutil.copy(sound.parent / name, tmp / name)
    return case.damage(tmp / "good.h5")


@pytest.mark.parametrize("command", [*READERS, "check"])
@pytest.mark.parametrize("case", CORPUS_CASES, ids=[c.id for c in CORPUS_CASES])
def test_damaged_corpus(tmp_path, sound_corpus, case, command):
    path = _damaged_copy(sound_corpus, tmp_path, case)
    extra = {"preview": ["-o", str(tmp_path / "sheet.png")], "verify": ["--workers", "2"]}.get(command, [])
    result = CliRunner().invoke(main, [command, str(path), *extra], catch_exceptions=False)
    said = result.output
    assert "Traceback" not in said
    if command == "check":
        assert result.exit_code == 1 and case.check_says in said, said
    elif command in case.readers:
        assert result.exit_code == 2, said
        assert said.startswith(f"Error: {path} {case.says}") and said.count("\n") == 1, said
        assert f"run `rankgen check {path}`" in said
    else:
        assert result.exit_code == 0, said  # info's spot check (items 0, 2, .., 14) skips damaged item 1


@pytest.mark.parametrize("case", CORPUS_CASES, ids=[c.id for c in CORPUS_CASES])
def test_the_training_reader_refuses_a_damaged_corpus(tmp_path, sound_corpus, case):
    """What train run/eval see: the reader refuses the file on open, or the first read of a damaged item."""
    from rankgen.errors import RankgenError

    path = _damaged_copy(sound_corpus, tmp_path, case)
    with pytest.raises(RankgenError, match=r"is damaged: .*; run `rankgen check"):
        corpus = Corpus(path, kind="distort")
        for i in range(len(corpus)):
            corpus.image(i)


def test_preview_of_a_corpus_without_items(tmp_path):
    from rankgen.corpus import CorpusWriter

    writer = CorpusWriter(tmp_path / "empty.h5", "distort", columns={"ref": "int64"}, ragged={"image": ("uint8", 3)},
                          attrs={}, fingerprint="empty")
    writer.finish(tables={"groups": np.zeros((0, 3), np.int64)})
    result = CliRunner().invoke(main, ["preview", str(tmp_path / "empty.h5"), "-o", str(tmp_path / "sheet.png")],
                                catch_exceptions=False)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.output.startswith(f"Error: {tmp_path}/empty.h5 has no items, so there is nothing to preview")
    assert not (tmp_path / "sheet.png").exists()


def _fragments(case: Case) -> tuple[str, ...]:
    return (case.expect,) if isinstance(case.expect, str) else case.expect


@functools.lru_cache(maxsize=None)
def earlier_corpus() -> bytes:
    """An earlier output at -o: a (tiny) rankgen corpus, the only kind of file --overwrite replaces."""
    import tempfile

    from rankgen.corpus import CorpusWriter

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "earlier.h5"
        CorpusWriter(path, "distort", columns={"ref": "int64"}, ragged={}, attrs={}, fingerprint="earlier").finish()
        return path.read_bytes()


def _other_hdf5(out: Path) -> None:
    import h5py

    with h5py.File(out, "w") as f:
        f["measurements"] = np.arange(10)


# What is at -o before the run: (path under tmp, or an absolute path; how to make it; --overwrite given; how
# it reads in docs/bad-inputs.md). A run that stops must leave it as it was.
OUTPUTS = {
    "earlier": ("out.h5", lambda p: p.write_bytes(earlier_corpus()), True, ""),
    "exists": ("out.h5", lambda p: p.write_bytes(earlier_corpus()), False, "(out.h5 exists)"),
    "no-folder": ("nowhere/out.h5", None, False, "-o nowhere/out.h5"),
    "directory": ("out.h5", Path.mkdir, False, "-o out.h5/ (a folder)"),
    "text": ("out.h5", lambda p: p.write_text("notes that are not a corpus\n"), True, "-o out.h5 --overwrite (a text file)"),
    "other-hdf5": ("out.h5", _other_hdf5, True, "-o out.h5 --overwrite (another program's HDF5)"),
    "fifo": ("out.h5", os.mkfifo, True, "-o out.h5 --overwrite (a named pipe)"),
    # Safe only because the writer refuses a device before touching it; the test checks it still is one.
    "device": ("/dev/null", None, True, "-o /dev/null --overwrite"),
    "foreign-partial": ("out.h5", lambda p: _foreign_partial(p), False, "(out.h5.partial left by another command)"),
    "sys": ("/sys/x.h5", None, False, "-o /sys/x.h5"),
    "proc": ("/proc/x.h5", None, False, "-o /proc/x.h5"),
}


def _foreign_partial(out: Path) -> None:
    from rankgen.corpus import CorpusWriter

    w = CorpusWriter(out, "distort", columns={"i": "int64"}, ragged={}, attrs={}, fingerprint="another command")
    w.append([{"i": 1}])
    w.commit()
    w.close()


def _output(tmp: Path, case: Case) -> tuple[Path, list]:
    where, make, overwrite, _ = OUTPUTS[case.output]
    out = tmp / where
    if make is not None:
        make(out)
    return out, (["--overwrite"] if overwrite else [])


def _state(out: Path):
    """What must not change when a run stops: the bytes of a file, the kind of anything else."""
    if not out.exists():
        return None
    mode = out.stat().st_mode
    return out.read_bytes() if stat.S_ISREG(mode) else stat.S_IFMT(mode)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(tmp_path, case):
    args = case.build(tmp_path)
    out, flags = _output(tmp_path, case)
    before = _state(out)
    argv = [str(a) for a in [*args, "-o", out, *flags, "--workers", 1, "--quiet"]]
    # catch_exceptions=False: an exception that escapes the CLI fails here with its traceback.
    result = CliRunner().invoke(main, argv, catch_exceptions=False)
    said = result.output
    assert "Traceback" not in said
    fragments = [f.replace("{tmp}", str(tmp_path)) for f in _fragments(case)]
    for fragment in fragments:
        assert fragment in said, f"expected {fragment!r} in:\n{said}"
    lines = said.splitlines()
    if case.outcome == STOP:
        assert result.exit_code == 2, said
        assert sum(line.startswith("Error") for line in lines) == 1, f"one clear line:\n{said}"
        assert _state(out) == before, "a failed run must leave what was at -o as it was (bytes, or kind of file)"
        return
    assert result.exit_code == 0, said
    if case.outcome == SKIP:
        skipped = lines[next(i for i, line in enumerate(lines) if line.startswith("skipped")):]
        assert any(fragments[0] in line for line in skipped), f"not listed as skipped:\n{said}"
    else:
        assert any(line.startswith("note:") and fragments[0] in line for line in lines), f"no note:\n{said}"
        assert not any(line.startswith("skipped") for line in lines), f"accepted files are not skipped:\n{said}"
    corpus = Corpus(out)  # refuses anything but a complete corpus
    try:
        assert len(corpus) > 0
    finally:
        corpus.close()


# -- docs/bad-inputs.md -----------------------------------------------------------------------------
def render() -> str:
    what = {SKIP: "skips the file, run succeeds", ACCEPT: "accepts it with a note", STOP: "stops, exit status 2"}
    lines = [
        "# Bad inputs: what rankgen says",
        "",
        "Every row is a case of `tests/test_bad_inputs.py`, which runs the command through the CLI and checks",
        "that the message below appears, that no traceback is printed, and that a run that stops leaves an",
        "earlier output at `-o` byte-identical. A skipped file is listed under `skipped N sources:` in the",
        "summary (and in the corpus's `skipped` attribute); a note is printed as `note: ...`.",
        "Generated from the test's table by `python tests/test_bad_inputs.py`; do not edit by hand.",
        "",
        "| input | command | what rankgen says (fragment) | outcome |",
        "|---|---|---|---|",
    ]
    for case in CASES:
        command = f"`rankgen {_command(case)}`"
        message = " … ".join(f"`{f.replace('{tmp}/', '')}`" for f in _fragments(case)).replace("|", "\\|")
        lines.append(f"| {case.input} | {command} | {message} | {what[case.outcome]} |")
    lines += [
        "",
        "## Damaged or foreign corpora",
        "",
        "Every row is a case of `test_damaged_corpus`: the damaged file is given to `rankgen info`, `verify`,",
        "`preview` and `check`, and to the reader that `train run` and `train eval` use. A command that reads",
        "the damaged part stops with exit status 2 and one line, `<file> <message>; run \\`rankgen check <file>\\``;",
        "`rankgen check` lists the problem and exits with status 1. The reader checks the layout when it opens a",
        "file (kinds, lengths, group indices, virtual sources: no pixels read) and each item's CRC when it reads it.",
        "`rankgen info` reads 8 stored items of each ragged array (the first, the last, evenly spaced between), so",
        "it stops on damage there and not elsewhere (item 1's CRC here).",
        "`rankgen preview` of a corpus without items says so (`<file> has no items, so there is nothing to preview`).",
        "",
        "| input | stops | what they say (after the file name) | what `rankgen check` lists |",
        "|---|---|---|---|",
    ]
    for case in CORPUS_CASES:
        stops = ", ".join(f"`{c}`" for c in [*case.readers, "Corpus"])
        lines.append(f"| {case.input} | {stops} | `{case.says}` | `{case.check_says}` |")
    return "\n".join(lines) + "\n"


def _command(case: Case) -> str:
    """The case's command with tmp paths reduced to their names, for the doc."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        try:
            args = case.build(Path(tmp))
        except pytest.skip.Exception:
            args = _UNBUILT.get(case.id, [])
        import shlex

        words = [shlex.quote(Path(a).name if isinstance(a, Path) else str(a)) for a in args]
        return " ".join(words + [OUTPUTS[case.output][3]]).strip()


# Cases that skip themselves while building (root, odd file systems) still need a row in the doc.
_UNBUILT = {"unreadable-folder": ["distort", "--dataset", "folder", "--root", "photos", "--distortions",
                                  "gaussian_blur", "--levels", "2"],
            "unreadable": ["distort", "--dataset", "folder", "--root", "photos", "--distortions", "gaussian_blur",
                           "--levels", "2"],
            "non-utf8-name": ["distort", "--dataset", "folder", "--root", "photos", "--distortions", "gaussian_blur",
                              "--levels", "2"]}


def test_the_doc_matches_the_catalog():
    assert DOC.read_text(encoding="utf-8") == render(), "run `python tests/test_bad_inputs.py` to regenerate docs/bad-inputs.md"


def test_the_catalog_is_large_and_covers_both_outcomes():
    assert len(CASES) >= 30 and len({c.id for c in CASES}) == len(CASES)
    assert {c.outcome for c in CASES} == {SKIP, ACCEPT, STOP}


if __name__ == "__main__":
    DOC.write_text(render(), encoding="utf-8")
    print(f"wrote {DOC} ({len(CASES)} cases)", file=sys.stderr)
