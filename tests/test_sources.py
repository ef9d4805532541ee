"""Image decoding and the unlabeled photo sources, on files the tests write."""

import struct

import numpy as np
import pytest
from PIL import Image

from rankgen.errors import BadImage, RankgenError
from rankgen.sources import SOURCES, read_image
from rankgen.sources.images import load_rgb


def write_bitfield_bmp(path, rgb, bpp):
    """A BI_BITFIELDS BMP (compression 3) as some Waterloo files are: 32-bit 8:8:8 or 16-bit 5:6:5."""
    h, w, _ = rgb.shape
    r, g, b = (rgb[..., i].astype(np.uint32) for i in range(3))
    if bpp == 32:
        masks, px = (0x00FF0000, 0x0000FF00, 0x000000FF), ((r << 16) | (g << 8) | b).astype("<u4")
    else:
        masks, px = (0xF800, 0x07E0, 0x001F), (((r >> 3) << 11) | ((g >> 2) << 5) | (b >> 3)).astype("<u2")
    pad = b"\0" * ((-px[0].nbytes) % 4)
    data = b"".join(px[y].tobytes() + pad for y in range(h - 1, -1, -1))
    dib = struct.pack("<IiiHHIIiiII", 40, w, h, 1, bpp, 3, len(data), 2835, 2835, 0, 0) + struct.pack("<3I", *masks)
    offset = 14 + len(dib)
    path.write_bytes(struct.pack("<2sIHHI", b"BM", offset + len(data), 0, 0, offset) + dib + data)


@pytest.mark.parametrize("bpp", [32, 16])
def test_bitfield_bmp_decodes(tmp_path, photo, bpp):
    rgb = photo[:40, :50]
    path = tmp_path / "00001.bmp"
    write_bitfield_bmp(path, rgb, bpp)
    out, _ = load_rgb(path)
    assert out.shape == rgb.shape and out.dtype == np.uint8
    # 5/6-bit channels lose their low bits; anything beyond that is a decoding error.
    tolerance = 0 if bpp == 32 else 8
    assert np.abs(out.astype(int) - rgb).max() <= tolerance


def test_truncated_jpeg_is_rejected_not_half_grey(tmp_path, photo):
    path = tmp_path / "cut.jpg"
    Image.fromarray(photo).save(path, quality=90)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(BadImage, match="cut.jpg.*truncated"):
        load_rgb(path)


@pytest.mark.parametrize(
    "mode, note",
    [("L", "grayscale"), ("RGBA", "alpha"), ("LA", "alpha"), ("P", "palette"), ("CMYK", "CMYK"), ("I;16", "16-bit")],
)
def test_modes_become_rgb_with_a_note(tmp_path, photo, mode, note):
    img = Image.fromarray(photo)
    if mode == "I;16":
        img = Image.fromarray((np.asarray(img.convert("L")).astype(np.uint16) * 257))
    else:
        img = img.convert(mode)
    path = tmp_path / ("x.tif" if mode == "CMYK" else "x.png")
    img.save(path)
    out, notes = load_rgb(path)
    assert out.shape == photo.shape and out.dtype == np.uint8
    assert any(note in n for n in notes)


def test_sixteen_bit_keeps_the_range(tmp_path):
    ramp = np.tile(np.linspace(0, 65535, 64).astype(np.uint16), (40, 1))
    path = tmp_path / "deep.png"
    Image.fromarray(ramp).save(path)
    out, _ = load_rgb(path)
    assert out[..., 0].min() == 0 and out[..., 0].max() == 255


def test_exif_orientation_applied(tmp_path, photo):
    rgb = photo[:40, :60]
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    path = tmp_path / "rot.jpg"
    Image.fromarray(rgb).save(path, exif=exif, quality=95)
    out, _ = load_rgb(path)
    assert out.shape == (60, 40, 3)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda p: p.write_bytes(b""), "not an image"),
        (lambda p: p.write_text("hello, I am text"), "not an image"),
        (lambda p: Image.new("RGB", (1, 1)).save(p), "smaller than 32"),
        (lambda p: Image.new("RGB", (20, 400)).save(p), "smaller than 32"),
    ],
)
def test_bad_files_name_the_file_and_the_fix(tmp_path, make, match):
    path = tmp_path / "bad.png"
    make(path)
    with pytest.raises(BadImage, match=match) as info:
        load_rgb(path)
    assert "bad.png" in str(info.value)


def test_samples_are_real_rgb_photos():
    items = SOURCES.get("samples")()
    assert len(items) >= 6
    for item in items:
        img, _ = read_image(item)
        assert img.ndim == 3 and img.shape[2] == 3 and img.dtype == np.uint8 and min(img.shape[:2]) >= 256


def test_folder_is_recursive_sorted_and_filtered(tmp_path, photo):
    (tmp_path / "b").mkdir()
    for name in ["b/2.png", "1.jpg", "b/3.webp", "notes.txt", ".hidden.png"]:
        path = tmp_path / name
        if name.endswith(".txt"):
            path.write_text("x")
        else:
            Image.fromarray(photo).save(path)
    items = SOURCES.get("folder")(tmp_path)
    assert [i.id for i in items] == ["1.jpg", "b/2.png", "b/3.webp"]


def test_waterloo_layout(tmp_path, photo):
    pristine = tmp_path / "pristine_images"
    pristine.mkdir()
    for i in (2, 1):
        write_bitfield_bmp(pristine / f"{i:05d}.bmp", photo[:40, :40], 32)
    items = SOURCES.get("waterloo")(tmp_path)
    assert [i.id for i in items] == ["00001", "00002"]
    assert read_image(items[0])[0].shape == (40, 40, 3)
    with pytest.raises(RankgenError, match="pristine_images"):
        SOURCES.get("waterloo")(tmp_path.parent)


def test_unknown_source_suggests():
    with pytest.raises(RankgenError, match="Did you mean waterloo"):
        SOURCES.get("waterlo")


def garble_jpeg_scan(data: bytes, n: int = 8) -> bytes:
    """The JPEG with n bytes in the middle of its entropy-coded data (after the SOS header) inverted."""
    sos = data.index(b"\xff\xda")
    start = sos + 2 + int.from_bytes(data[sos + 2 : sos + 4], "big")
    out = bytearray(data)
    mid = (start + len(data) - 2) // 2
    for k in range(n):
        out[mid + k] ^= 0xFF
    return bytes(out)


def test_garbled_jpeg_passes_pillow_but_is_rejected(tmp_path, photo):
    path = tmp_path / "garbled.jpg"
    Image.fromarray(photo).save(path, quality=90)
    path.write_bytes(garble_jpeg_scan(path.read_bytes()))
    with Image.open(path) as img:
        img.load()  # Pillow swallows libjpeg's warning: the case is one that slipped through
    with pytest.raises(BadImage, match=r"garbled.jpg: damaged JPEG data \(Corrupt JPEG data"):
        load_rgb(path)


@pytest.mark.parametrize("options", [{}, {"progressive": True}, {"subsampling": 0}, {"mode": "L"}, {"mode": "CMYK"}])
def test_sound_jpegs_pass_the_strict_check_without_a_note(tmp_path, photo, options):
    options = dict(options)
    path = tmp_path / "ok.jpg"
    Image.fromarray(photo).convert(options.pop("mode", "RGB")).save(path, quality=90, **options)
    out, notes = load_rgb(path)
    assert out.shape == photo.shape
    assert not any("libjpeg" in n for n in notes)


def test_png_with_a_failing_pixel_data_crc_is_rejected(tmp_path, photo):
    path = tmp_path / "idat.png"
    Image.fromarray(photo).save(path)
    data = bytearray(path.read_bytes())
    idat = data.index(b"IDAT")
    data[idat + 4 + int.from_bytes(data[idat - 4 : idat], "big")] ^= 0x01  # first byte of the IDAT's CRC
    path.write_bytes(data)
    with Image.open(path) as img:
        img.load()  # Pillow does not check it
    with pytest.raises(BadImage, match=r"idat.png: damaged PNG \(its IDAT chunk at byte \d+ fails its CRC\)"):
        load_rgb(path)


@pytest.mark.parametrize("top", [1.0, 255.0])
def test_float_tiff_is_scaled_from_its_range(tmp_path, top):
    ramp = np.tile(np.linspace(0, top, 64, dtype=np.float32), (40, 1))
    path = tmp_path / "float.tif"
    Image.fromarray(ramp).save(path)
    out, notes = load_rgb(path)
    assert out[..., 0].min() == 0 and out[..., 0].max() == 255
    assert np.abs(out[..., 0].astype(float) - ramp * (255 / top)).max() <= 0.5
    assert any(f"float grayscale in [0, {top:g}]" in n for n in notes)


@pytest.mark.parametrize("values, match", [((-1.0, 3.0), r"values in \[-1, 3\], neither"), ((0.0, np.nan), "NaN")])
def test_float_tiff_without_a_known_scale_is_refused(tmp_path, values, match):
    path = tmp_path / "float.tif"
    Image.fromarray(np.tile(np.array(values, dtype=np.float32), (40, 20))).save(path)
    with pytest.raises(BadImage, match=f"float.tif: float image with {match}"):
        load_rgb(path)


def test_unreadable_subfolder_is_listed_and_skipped_with_a_reason(tmp_path, photo, monkeypatch):
    import os

    for name in ["a.png", "locked/b.png", "z.png"]:
        (tmp_path / name).parent.mkdir(exist_ok=True)
        Image.fromarray(photo).save(tmp_path / name)
    real = os.scandir

    def scandir(path):
        if os.fspath(path) == str(tmp_path / "locked"):  # what chmod 000 does to anyone but root
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    items = SOURCES.get("folder")(tmp_path)
    assert [i.id for i in items] == ["a.png", "locked/", "z.png"]
    with pytest.raises(BadImage, match=r"locked: folder cannot be read \(Permission denied\); its images are left out"):
        read_image(items[1])
