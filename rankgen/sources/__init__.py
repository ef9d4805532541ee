"""Where images and labels come from: one registry, one module per family.

A source is registered as `f(root, **options) -> list[SourceItem]` with info `kind`
("images": unlabeled photos, "crowd": images with head points, "scores": labeled IQA/affect sets)
and a one-line `help`. Listing is cheap; decoding happens in the workers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..registry import Registry

SOURCES = Registry("source")


@dataclass(frozen=True)
class SourceItem:
    id: str      # stable key: seeds and resume depend on it, so it must not depend on listing order
    path: str    # a file path, or "skimage:<name>" for a bundled sample
    meta: dict = field(default_factory=dict, compare=False)


def read_image(item: SourceItem):
    """(RGB uint8 image, notes) for any SourceItem; raises BadImage with a clear message."""
    from .photos import read_photo

    return read_photo(item.path)


# Importing the families registers them.
from . import crowd, labeled, photos  # noqa: E402,F401
