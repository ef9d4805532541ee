import numpy as np
import pytest
import skimage.data


@pytest.fixture(scope="session")
def photo() -> np.ndarray:
    """A small real photograph (RGB uint8), cheap enough for every test."""
    return np.ascontiguousarray(skimage.data.astronaut()[::4, ::4])
