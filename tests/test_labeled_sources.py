"""Readers of labeled sets, on small fake trees written in each dataset's published layout."""

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from rankgen.errors import RankgenError
from rankgen.sources import SOURCES
from rankgen.sources import labeled as L


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# Each builder writes a tree where the image "better" is published as better quality than "worse",
# and returns (root, {item id: expected score}).
def tid2013_tree(tmp: Path):
    lines = {"i01_01_1.bmp": 6.0, "i01_01_5.bmp": 2.5, "i02_08_2.bmp": 4.25, "I25_24_5.bmp": 1.0}
    write(tmp / "mos_with_names.txt", "".join(f"{v} {k}\n" for k, v in lines.items()))
    for name in lines:
        touch(tmp / "distorted_images" / name.lower())  # the archive's names differ in case from the list
    return tmp, {k.lower(): v for k, v in lines.items()}


def kadid10k_tree(tmp: Path):
    rows = {"I01_01_01.png": 4.57, "I01_01_05.png": 2.03, "I02_25_03.png": 3.1}
    write(tmp / "dmos.csv", "dist_img,ref_img,dmos,var\n" + "".join(f"{k},{k[:3]}.png,{v},0.5\n" for k, v in rows.items()))
    for name in rows:
        touch(tmp / "images" / name)
    return tmp, rows


def live_tree(tmp: Path):
    total = sum(n for _, n in L.LIVE_FOLDERS)
    dmos = np.linspace(0, 90, total)
    orgs = np.zeros(total)
    orgs[[0, 227, total - 1]] = 1
    names = np.empty((1, total), dtype=object)
    names[0, :] = [f"ref{i % 29}.bmp" for i in range(total)]
    scipy.io.savemat(tmp / "dmos.mat", {"dmos": dmos[None, :], "orgs": orgs[None, :]})
    scipy.io.savemat(tmp / "refnames_all.mat", {"refnames_all": names})
    expected, index = {}, 0
    for folder, count in L.LIVE_FOLDERS:
        for number in range(1, count + 1):
            touch(tmp / folder / f"img{number}.bmp")
            if not orgs[index]:
                expected[f"{folder}/img{number}.bmp"] = L.LIVE_TOP - dmos[index]
            index += 1
    return tmp, expected


def csiq_tree(tmp: Path):
    rows = [("1600", 1, "noise", 1, 0.06), ("1600", 1, "noise", 5, 0.52), ("aerial_city", 3, "jpeg 2000", 2, 0.2),
            ("aerial_city", 4, "blur", 3, 0.3)]
    write(tmp / "csiq.csv", "image,dst_idx,dst_type,dst_lev,dmos\n" + "".join(",".join(map(str, r)) + "\n" for r in rows))
    touch(tmp / "dst_imgs/awgn/1600.AWGN.1.png")
    touch(tmp / "dst_imgs/awgn/1600.AWGN.5.png")
    touch(tmp / "dst_imgs/jpeg2000/aerial_city.jpeg2000.2.png")
    touch(tmp / "dst_imgs/blur/aerial_city.BLUR.3.png")
    return tmp / "csiq.csv", {"awgn/1600.awgn.1.png": 0.94, "awgn/1600.awgn.5.png": 0.48,
                              "jpeg2000/aerial_city.jpeg2000.2.png": 0.8, "blur/aerial_city.blur.3.png": 0.7}


def afew_va_tree(tmp: Path):
    clips = {"001": {"00000": 5.0, "00001": -2.0}, "017": {"00000": 0.0}}
    for clip, frames in clips.items():
        write(tmp / clip / f"{clip}.json", json.dumps(
            {"actor": "x", "frames": {f: {"valence": v, "arousal": -v, "landmarks": []} for f, v in frames.items()}}))
        for f in frames:
            touch(tmp / clip / f"{f}.png")
    return tmp, {f"{c}/{f}": v for c, frames in clips.items() for f, v in frames.items()}


def csv_tree(tmp: Path):
    touch(tmp / "imgs/a.png")
    touch(tmp / "b.png")
    return write(tmp / "scores.csv", "imgs/a.png,0.9\nb.png,0.1\n"), {"imgs/a.png": 0.9, "b.png": 0.1}


TREES = {"tid2013": tid2013_tree, "kadid10k": kadid10k_tree, "live": live_tree, "csiq": csiq_tree,
         "afew-va": afew_va_tree, "csv": csv_tree}
LABELED = [e.name for e in SOURCES if e.info.get("kind") == "scores"]


def test_every_labeled_source_has_a_fake_tree():
    assert sorted(LABELED) == sorted(TREES)


@pytest.mark.parametrize("name", LABELED)
def test_reader_scores_are_higher_is_better_and_paths_exist(name, tmp_path):
    root, expected = TREES[name](tmp_path)
    items = SOURCES.get(name)(root)
    got = {it.id.lower(): it.meta["score"] for it in items}
    assert got.keys() == {k.lower() for k in expected}
    for key, value in expected.items():
        assert got[key.lower()] == pytest.approx(value)
    for it in items:
        assert Path(it.path).is_file()
        assert set(it.meta) == {"score", "published", "ref", "distortion", "level"}
    assert SOURCES.entry(name).info["task"] in (L.IQA, L.AFFECT)


@pytest.mark.parametrize("name", LABELED)
def test_a_missing_image_is_named(name, tmp_path):
    root, _ = TREES[name](tmp_path)
    victim = Path(SOURCES.get(name)(root)[-1].path)
    victim.unlink()
    with pytest.raises(RankgenError, match=f"1 of .* missing, e.g. .*{victim.name}"):
        SOURCES.get(name)(root)


@pytest.mark.parametrize("name", LABELED)
def test_missing_root_is_explained(name, tmp_path):
    with pytest.raises(RankgenError, match="--root"):
        SOURCES.get(name)(None)
    with pytest.raises(RankgenError, match="not found|not a folder|no clip folders"):
        SOURCES.get(name)(tmp_path / "nowhere" if name not in ("afew-va",) else tmp_path)


def test_tid2013_fields(tmp_path):
    root, _ = tid2013_tree(tmp_path)
    item = {it.id: it for it in L.tid2013(root)}["i02_08_2.bmp"]
    assert item.meta["ref"] == "I02" and item.meta["distortion"] == "gaussian_blur" and item.meta["level"] == 2


@pytest.mark.parametrize("line, message", [
    ("5.1 i01_1_1.bmp", "mos_with_names.txt:2: image name 'i01_1_1.bmp' does not parse"),
    ("5.1 i01_25_1.bmp", "mos_with_names.txt:2: .*distortion type TT in 01-24"),
    ("nan i01_01_2.bmp", "mos_with_names.txt:2: score is nan"),
    ("five i01_01_2.bmp", "mos_with_names.txt:2: score 'five' is not a number"),
    ("5.1", "mos_with_names.txt:2: expected 'score name'"),
])
def test_tid2013_bad_lines_are_named(tmp_path, line, message):
    write(tmp_path / "mos_with_names.txt", f"6.0 i01_01_1.bmp\n{line}\n")
    touch(tmp_path / "distorted_images/i01_01_1.bmp")
    with pytest.raises(RankgenError, match=message):
        L.tid2013(tmp_path)


def test_kadid_keeps_its_rating_direction_and_parses_names(tmp_path):
    root, _ = kadid10k_tree(tmp_path)
    items = {it.id: it.meta for it in L.kadid10k(root)}
    assert items["I01_01_01.png"]["score"] > items["I01_01_05.png"]["score"]  # level 1 is the mildest
    assert items["I02_25_03.png"] == {"score": 3.1, "published": 3.1, "ref": "I02", "distortion": "contrast_change", "level": 3}
    write(tmp_path / "dmos.csv", "dist_img,ref_img,dmos,var\nfoo.png,I01.png,3,0.1\n")
    with pytest.raises(RankgenError, match=r"dmos.csv:2: image name 'foo.png'"):
        L.kadid10k(root)
    write(tmp_path / "dmos.csv", "dist_img,dmos\n")
    with pytest.raises(RankgenError, match="missing ref_img"):
        L.kadid10k(root)


def test_live_skips_originals_and_checks_lengths(tmp_path):
    root, expected = live_tree(tmp_path)
    items = {it.id: it.meta for it in L.live(root)}
    assert len(items) == 982 - 3 and "jpeg/img1.bmp" not in items and "jpeg/img2.bmp" in items
    assert items["jpeg/img2.bmp"]["distortion"] == "jpeg" and items["jpeg/img2.bmp"]["ref"] == "ref25"
    assert items["jpeg/img2.bmp"]["published"] == pytest.approx(L.LIVE_TOP - expected["jpeg/img2.bmp"])
    scipy.io.savemat(tmp_path / "dmos.mat", {"dmos": np.ones((1, 10)), "orgs": np.zeros((1, 10))})
    with pytest.raises(RankgenError, match="dmos has 10 entries; LIVE release 2 has 982"):
        L.live(root)
    scipy.io.savemat(tmp_path / "dmos.mat", {"dmos": np.ones((1, 982))})
    with pytest.raises(RankgenError, match="no variable 'orgs'"):
        L.live(root)
    (tmp_path / "dmos.mat").write_text("not a mat file")
    with pytest.raises(RankgenError, match="not a readable MATLAB file"):
        L.live(root)


def test_csiq_accepts_its_folder_and_names_bad_rows(tmp_path):
    csv_path, expected = csiq_tree(tmp_path)
    assert len(L.csiq(tmp_path)) == len(expected)
    meta = {it.id: it.meta for it in L.csiq(csv_path)}["awgn/1600.awgn.5.png"]
    assert meta["ref"] == "1600" and meta["level"] == 5 and meta["distortion"] == "awgn"
    write(csv_path, "image,dst_idx,dst_type,dst_lev,dmos\n1600,1,noise,x,0.1\n")
    with pytest.raises(RankgenError, match="csiq.csv:2: dst_lev 'x'"):
        L.csiq(csv_path)
    write(tmp_path / "other.csv", "")
    with pytest.raises(RankgenError, match="exactly one .csv"):
        L.csiq(tmp_path)


def test_afew_va_targets_and_bad_json(tmp_path):
    root, expected = afew_va_tree(tmp_path)
    arousal = {it.id: it.meta for it in L.afew_va(root, target="arousal")}
    assert arousal["001/00000"]["score"] == -5.0 and arousal["001/00000"]["ref"] == "001"
    with pytest.raises(RankgenError, match="--target must be one of valence, arousal"):
        L.afew_va(root, target="dominance")
    write(root / "017/017.json", json.dumps({"frames": {"00000": {"arousal": 1}}}))
    with pytest.raises(RankgenError, match="017.json: frame 00000 valence: score None is not a number"):
        L.afew_va(root)
    write(root / "017/017.json", "[1, 2]")
    with pytest.raises(RankgenError, match="017.json: expected JSON with a \"frames\" object"):
        L.afew_va(root)
    (root / "017/017.json").unlink()
    with pytest.raises(RankgenError, match="017.json not found"):
        L.afew_va(root)


def test_csv_header_optional_columns_and_errors(tmp_path):
    touch(tmp_path / "a.png")
    touch(tmp_path / "b.png")
    table = write(tmp_path / "s.csv", "path,score,ref,distortion,level\na.png,1,r1,blur,2\nb.png,0.5,r1,,\n")
    items = L.csv_scores(table)
    assert items[0].meta == {"score": 1.0, "published": 1.0, "ref": "r1", "distortion": "blur", "level": 2}
    assert items[1].meta["level"] == -1 and items[1].path == str(tmp_path / "b.png")
    write(table, "a.png,0.3\nb.png,NaN\n")
    with pytest.raises(RankgenError, match="s.csv:2: score is nan"):
        L.csv_scores(table)
    write(table, "file,score\na.png,1\n")
    with pytest.raises(RankgenError, match="header lacks path"):
        L.csv_scores(table)
    write(table, "a.png\n")
    with pytest.raises(RankgenError, match="s.csv:1: expected path,score"):
        L.csv_scores(table)
    write(table, "\n")
    with pytest.raises(RankgenError, match="lists no images"):
        L.csv_scores(table)
