"""Pictures of corpora: one registered preview per corpus kind, all reading through Corpus."""

from __future__ import annotations

import importlib

from PIL import Image, ImageDraw

from ..corpus import Corpus
from ..errors import RankgenError
from ..registry import Registry

PREVIEWS = Registry("preview")

# The module that draws each corpus kind; imported on demand so plotting libraries load only when used.
KIND_MODULES = {"distort": "distort", "crops": "crowd", "density": "crowd", "annotate": "annotate"}


def label(img: Image.Image, text: str, xy=(4, 2)) -> None:
    draw = ImageDraw.Draw(img)
    x, y = xy
    box = draw.textbbox((x, y), text)
    draw.rectangle((box[0] - 2, box[1] - 1, box[2] + 2, box[3] + 1), fill=(0, 0, 0))
    draw.text((x, y), text, fill=(255, 255, 255))


def stack(rows: list[Image.Image], gap: int = 4) -> Image.Image:
    """Rows of a sheet one under the other on the dark background, left-aligned."""
    sheet = Image.new("RGB", (max(r.width for r in rows), sum(r.height + gap for r in rows)), (24, 24, 24))
    y = 0
    for r in rows:
        sheet.paste(r, (0, y))
        y += r.height + gap
    return sheet


def render(corpus_path, out_path, **options) -> str:
    corpus = Corpus(corpus_path)
    if len(corpus) == 0:
        raise RankgenError(f"{corpus_path} has no items, so there is nothing to preview; "
                           "regenerate it from sources that yield items (see the skipped sources in `rankgen info`)")
    importlib.import_module(f"{__name__}.{KIND_MODULES[corpus.kind]}")  # registers the kind's preview
    PREVIEWS.get(corpus.kind)(corpus, out_path, **options)
    return str(out_path)
