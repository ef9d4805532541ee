"""The benchmark image: a real photograph at the 512x384 size the issues quote."""

import numpy as np
import skimage.data
from PIL import Image


def photo_512x384() -> np.ndarray:
    img = Image.fromarray(skimage.data.astronaut()).resize((512, 384), Image.BICUBIC)
    return np.ascontiguousarray(np.asarray(img))
