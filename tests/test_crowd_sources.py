"""Crowd readers on tiny fake trees in the published layouts, and the synthetic set."""

import numpy as np
import pytest
import scipy.io
from PIL import Image

from rankgen.errors import BadImage, RankgenError
from rankgen.sources import SOURCES
from rankgen.sources.crowd import list_items, load_points, read_crowd

CROWD = ("shanghaitech-a", "shanghaitech-b", "ucf-cc-50", "ucf-qnrf", "synthetic")


def _jpg(path, w=64, h=48):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((h, w, 3), 128, np.uint8)).save(path)


def _shanghai_mat(path, pts):
    """The real nesting: image_info is a 1x1 cell holding a 1x1 struct with location and number."""
    path.parent.mkdir(parents=True, exist_ok=True)
    st = np.zeros((1, 1), dtype=[("location", "O"), ("number", "O")])
    st[0, 0]["location"] = np.asarray(pts, float)
    st[0, 0]["number"] = np.array([[float(len(pts))]])
    cell = np.empty((1, 1), dtype=object)
    cell[0, 0] = st
    scipy.io.savemat(path, {"image_info": cell})


@pytest.fixture
def shanghaitech(tmp_path):
    base = tmp_path / "part_A" / "train_data"
    for i, pts in [(1, [[1, 2], [10, 20], [63.5, 47.5]]), (2, [[5, 5]]), (10, np.zeros((0, 2)))]:
        _jpg(base / "images" / f"IMG_{i}.jpg")
        _shanghai_mat(base / "ground-truth" / f"GT_IMG_{i}.mat", pts)
    return tmp_path


def test_every_crowd_source_is_registered_as_crowd():
    for name in CROWD:
        assert SOURCES.entry(name).info["kind"] == "crowd"


def test_shanghaitech_layout_nesting_and_natural_order(shanghaitech):
    items, kind = list_items("shanghaitech-a", shanghaitech, "train")
    assert kind == "crowd"
    assert [it.id for it in items] == [f"part_A/train_data/images/IMG_{i}.jpg" for i in (1, 2, 10)]
    image, pts, notes = read_crowd(items[0])
    assert image.shape == (48, 64, 3) and pts.tolist() == [[1, 2], [10, 20], [63.5, 47.5]] and notes == []
    assert read_crowd(items[2])[1].shape == (0, 2)


def test_shanghaitech_errors_name_the_problem(shanghaitech, tmp_path):
    with pytest.raises(RankgenError, match="part_B/test_data/images"):
        list_items("shanghaitech-b", shanghaitech, "test")
    with pytest.raises(RankgenError, match="splits train, test"):
        list_items("shanghaitech-a", shanghaitech, "val")
    with pytest.raises(RankgenError, match="needs --root"):
        list_items("shanghaitech-a", None, "train")


def test_points_outside_the_image_are_dropped_with_a_note(tmp_path):
    _jpg(tmp_path / "1.jpg")
    scipy.io.savemat(tmp_path / "1_ann.mat", {"annPoints": np.array([[3.0, 4.0], [64.0, 10.0], [-1, 5], [30, 47.9]])})
    items, _ = list_items("ucf-cc-50", tmp_path, None)
    _, pts, notes = read_crowd(items[0])
    assert pts.tolist() == [[3, 4], [30, 47.9]]
    assert len(notes) == 1 and "1_ann.mat" in notes[0] and "2 head point(s)" in notes[0]


def test_ucf_qnrf_split_maps_to_folder(tmp_path):
    for split in ("Train", "Test"):
        _jpg(tmp_path / split / "img_0001.jpg")
        scipy.io.savemat(tmp_path / split / "img_0001_ann.mat", {"annPoints": np.array([[1.0, 1.0]] * (2 if split == "Test" else 1))})
    train, _ = list_items("ucf-qnrf", tmp_path, "train")
    test, _ = list_items("ucf-qnrf", tmp_path, "test")
    assert train[0].id == "Train/img_0001.jpg" and len(read_crowd(train[0])[1]) == 1
    assert test[0].id == "Test/img_0001.jpg" and len(read_crowd(test[0])[1]) == 2


def test_bad_annotations_raise_bad_image_naming_the_file(tmp_path):
    scipy.io.savemat(tmp_path / "wrong.mat", {"points": np.zeros((2, 2))})
    with pytest.raises(BadImage, match=r"wrong\.mat: no 'annPoints'.*points"):
        load_points(tmp_path / "wrong.mat", "annPoints")
    with pytest.raises(BadImage, match="annotation file missing"):
        load_points(tmp_path / "absent.mat", "annPoints")
    (tmp_path / "junk.mat").write_bytes(b"not a mat file at all" * 10)
    with pytest.raises(BadImage, match=r"junk\.mat"):
        load_points(tmp_path / "junk.mat", "annPoints")
    scipy.io.savemat(tmp_path / "three.mat", {"annPoints": np.zeros((4, 3))})
    with pytest.raises(BadImage, match="N x 2"):
        load_points(tmp_path / "three.mat", "annPoints")


def test_missing_ground_truth_is_a_bad_image(shanghaitech):
    (shanghaitech / "part_A/train_data/ground-truth/GT_IMG_2.mat").unlink()
    items, _ = list_items("shanghaitech-a", shanghaitech, "train")
    with pytest.raises(BadImage, match="GT_IMG_2.mat: annotation file missing"):
        read_crowd(items[1])


def test_synthetic_is_deterministic_labeled_and_varied():
    items, _ = list_items("synthetic", None, None, n_images=3, height=96, width=128)
    a = [read_crowd(it) for it in items]
    b = [read_crowd(it) for it in items]
    for (ia, pa, _), (ib, pb, _) in zip(a, b):
        assert ia.shape == (96, 128, 3) and ia.dtype == np.uint8
        assert (ia == ib).all() and (pa == pb).all()
        assert ((pa >= 0) & (pa < [128, 96])).all()
    assert len({len(p) for _, p, _ in a}) > 1 or not (a[0][0] == a[1][0]).all()
    other, _ = list_items("synthetic", None, "test", n_images=1, height=96, width=128)
    assert not (read_crowd(other[0])[0] == a[0][0]).all()
    reseeded, _ = list_items("synthetic", None, None, n_images=1, height=96, width=128, seed=5)
    assert not (read_crowd(reseeded[0])[0] == a[0][0]).all()


def test_synthetic_heads_are_denser_towards_the_top():
    items, _ = list_items("synthetic", None, None, n_images=8)
    ys = np.concatenate([read_crowd(it)[1][:, 1] for it in items])
    assert (ys < 384 / 2).mean() > 0.6
