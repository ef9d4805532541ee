import numpy as np
import pytest
import skimage.data


@pytest.fixture(scope="session")
def photo() -> np.ndarray:
    """A small real photograph (RGB uint8), cheap enough for every test."""
    return np.ascontiguousarray(skimage.data.astronaut()[::4, ::4])


@pytest.fixture
def ctrl_c_at():
    """ctrl_c_at(work, n): `work` with a Ctrl-C in place of its n-th call, to stop a run at a chosen job."""

    def wrap(work, n):
        calls = [0]

        def interrupted(*args, **kwargs):
            calls[0] += 1
            if calls[0] == n:
                raise KeyboardInterrupt
            return work(*args, **kwargs)

        return interrupted

    return wrap


# Property tests draw the same examples on every run: CI's verdict must not depend on luck. Run
# `pytest --hypothesis-profile=explore` to search new examples locally.
from hypothesis import settings  # noqa: E402

settings.register_profile("ci", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile("ci")
