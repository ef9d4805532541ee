"""Distortions: DISTORTIONS registry of f(image, param, rng) -> image, and the recipes that map levels
to parameters. Importing the package registers every type."""

from . import blur, colour, compression, kadid, noise, noisy_coding, sampling, shaped_noise, spatial, transmission  # noqa: F401  (registration side effects)
from .base import DISTORTIONS, distort, pixel_versions
from .convenience import corrupt, distort_recorded
from .metrics import METRICS, metric
from .recipes import Recipe, load_recipe

__all__ = ["DISTORTIONS", "METRICS", "Recipe", "corrupt", "distort", "distort_recorded", "load_recipe", "metric", "pixel_versions"]
