"""`corrupt`, the single-call API: level 0 untouched, grayscale and tiny images, every type."""

import numpy as np
import pytest

from rankgen.distortions import corrupt, load_recipe
from rankgen.errors import RankgenError

NAMES = load_recipe("tid2013").names


@pytest.mark.parametrize("name", NAMES)
def test_level_zero_is_untouched_and_level_one_is_not(photo, name):
    img = photo[:48, :56]
    assert corrupt(img, name, 0).tobytes() == img.tobytes()
    out = corrupt(img, name, 4)
    assert out.shape == img.shape and out.dtype == np.uint8 and not np.array_equal(out, img)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("shape", [(8, 8), (1, 1), (20, 40, 3), (30, 30, 1)])
def test_small_and_grayscale_images_keep_their_shape(photo, name, shape):
    img = photo[: shape[0], : shape[1], 0] if len(shape) == 2 else photo[: shape[0], : shape[1], : shape[2]]
    out = corrupt(np.ascontiguousarray(img), name, 3)
    assert out.shape == img.shape and out.dtype == np.uint8


def test_seeded_and_checked(photo):
    a = corrupt(photo, "gaussian_noise", 2, seed=1)
    assert a.tobytes() == corrupt(photo, "gaussian_noise", 2, seed=1).tobytes()
    assert a.tobytes() != corrupt(photo, "gaussian_noise", 2, seed=2).tobytes()
    with pytest.raises(RankgenError, match="outside 0..4"):
        corrupt(photo, "jpeg", 5)
    with pytest.raises(RankgenError, match="uint8"):
        corrupt(photo.astype(np.float32), "jpeg", 1)
