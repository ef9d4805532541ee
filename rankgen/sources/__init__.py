"""Where images and labels come from: one registry, one module per family.

A source is registered as `f(root, **options) -> list[SourceItem]` with info `kind`
("images": unlabeled photos, "crowd": images with head points, "scores": labeled IQA/affect sets)
and a one-line `help`. Listing is cheap; decoding happens in the workers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import RankgenError
from ..registry import Registry

SOURCES = Registry("source")


@dataclass(frozen=True)
class SourceItem:
    id: str      # stable key: seeds and resume depend on it, so it must not depend on listing order
    path: str    # a file path, or "skimage:<name>" for a bundled sample
    meta: dict = field(default_factory=dict, compare=False)


# Near-duplicate references count as one: a stereo pair's two views show the same scene, so one
# view in training and its twin in validation or test would be a leak (skimage's motorcycle_left/right).
_TWIN = re.compile(r"^(.+?)[_-](left|right)$", re.IGNORECASE)


def scene_of(ref) -> str:
    """The scene a reference shows: its name without a stereo `_left`/`_right` suffix. Every split
    by reference (rankgen annotate's train/test, the trainer's validation and held-out) goes by it."""
    name = str(ref)
    m = _TWIN.match(name)
    return m.group(1) if m else name


# meta key: why an item that was listed cannot be read (a non-UTF-8 name, an unreadable folder); reading
# it raises BadImage with this message, so the run lists it among the skipped sources.
UNUSABLE = "unusable"


def require_dir(root, dataset: str, example: str) -> Path:
    """--root as an existing folder, or an error that shows the flag the dataset needs."""
    if root is None:
        raise RankgenError(f"--dataset {dataset} needs --root, e.g. --root {example}")
    path = Path(root).expanduser()
    if not path.is_dir():
        raise RankgenError(f"--root {path} is not a folder (for --dataset {dataset}, e.g. --root {example})")
    return path


def file_item(id: str, path, **meta) -> SourceItem:
    """A SourceItem for a file on disk.

    A file name that is not valid UTF-8 cannot be stored in HDF5 or printed, so such an item is
    listed under a printable spelling and fails when read: the run skips it and says how to fix it,
    instead of crashing in the writer.
    """
    from .images import printable

    shown_id, shown_path = printable(id), printable(path)
    if shown_id == id and shown_path == str(path):
        return SourceItem(id=id, path=str(path), meta=meta)
    why = (f"{shown_path}: file name is not valid UTF-8 (shown with \\x escapes); rename the file, e.g. "
           "convmv -f latin1 -t utf8 --notest -r <folder>")
    return SourceItem(id=shown_id, path=shown_path, meta={**meta, UNUSABLE: why})


def read_image(item: SourceItem):
    """(RGB uint8 image, notes) for any SourceItem; raises BadImage with a clear message."""
    from ..errors import BadImage
    from .photos import read_photo

    if item.meta.get(UNUSABLE):
        raise BadImage(item.meta[UNUSABLE])
    return read_photo(item.path)


# Importing the families registers them.
from . import crowd, labeled, photos  # noqa: E402,F401
