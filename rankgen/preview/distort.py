"""The contact sheet of a distort corpus."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from ..corpus import Corpus
from ..errors import RankgenError
from . import PREVIEWS, label


def busiest_window(image: np.ndarray, tile: int) -> tuple[int, int]:
    """Top-left corner of the tile x tile window with the most gradient energy (on a coarse grid)."""
    h, w = image.shape[:2]
    grey = image.astype(np.float32).mean(axis=2)
    energy = np.abs(np.diff(grey, axis=0))[:, :-1] + np.abs(np.diff(grey, axis=1))[:-1, :]
    best, corner = -1.0, (max(0, (h - tile) // 2), max(0, (w - tile) // 2))
    for y in np.linspace(0, max(0, h - tile), 6).astype(int):
        for x in np.linspace(0, max(0, w - tile), 6).astype(int):
            score = float(energy[y : y + tile, x : x + tile].sum())
            if score > best:
                best, corner = score, (int(y), int(x))
    return corner


@PREVIEWS.register("distort")
def contact_sheet(corpus: Corpus, out_path, ref: str | None = None, tile: int = 160, **_) -> None:
    """One row per distortion, one column per level, on one reference.

    Tiles are native-resolution crops, not downscaled images: downscaling would hide the very
    artefacts (noise, blocking, ringing) that the sheet exists to show. The same window serves every
    tile: the most detailed one of the reference, where those artefacts are easiest to see.
    """
    ref_ids = list(corpus.table("ref_id"))
    groups = corpus.groups
    refs = corpus.column("ref")
    present = sorted(set(refs[groups[:, 0]].tolist()))
    if ref is None:
        r = present[0]
    elif ref in ref_ids:
        r = ref_ids.index(ref)
    else:
        raise RankgenError(f"--ref {ref!r} is not in {corpus.path}; references: {', '.join(ref_ids[i] for i in present[:20])}")
    crop = corpus.column("crop")
    rows = [g for g in groups if refs[g[0]] == r and crop[g[0]] == 0]
    if not rows:
        raise RankgenError(f"reference {ref_ids[r]!r} has no complete series in {corpus.path}")
    dist = corpus.column("distortion")
    param = corpus.column("param")
    n_levels = groups.shape[1]
    head = 18
    name_w = 150
    sheet = Image.new("RGB", (name_w + n_levels * tile, head + len(rows) * tile), (24, 24, 24))
    draw = ImageDraw.Draw(sheet)
    for j in range(n_levels):
        draw.text((name_w + j * tile + 4, 3), f"level {j}", fill=(230, 230, 230))
    y0, x0 = busiest_window(corpus.image(rows[0][0]), tile)
    for i, g in enumerate(rows):
        draw.text((4, head + i * tile + tile // 2 - 6), str(dist[g[1]]), fill=(230, 230, 230))
        for j, idx in enumerate(g):
            img = corpus.image(idx)
            thumb = Image.fromarray(np.ascontiguousarray(img[y0 : y0 + tile, x0 : x0 + tile]))
            if j:
                label(thumb, f"{param[idx]:g}")
            sheet.paste(thumb, (name_w + j * tile, head + i * tile))
    sheet.save(out_path)
