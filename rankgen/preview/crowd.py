"""Pictures of crowd corpora: nested crop boxes on their sources, and density maps."""

from __future__ import annotations

import numpy as np

from ..crowd import crops as geometry
from ..corpus import schema as S
from ..errors import BadImage, RankgenError
from ..sources.crowd import list_items, read_crowd
from . import PREVIEWS, label, stack


def _source_images(corpus, sources: list[int]) -> dict[int, tuple[np.ndarray, np.ndarray | None]]:
    """Re-read the sources named in the corpus (for the boxes to be drawn on); absent ones are left out."""
    params = corpus.attrs.get(S.ATTR_PARAMS) or {}
    try:
        items, _ = list_items(params["dataset"], params.get("root"), params.get("split"),
                              n_images=params.get("n_images"), seed=params.get("seed", 0))
    except (RankgenError, KeyError):
        return {}
    by_id = {it.id: it for it in items}
    ids = corpus.table("source_id")
    out = {}
    for src in sources:
        item = by_id.get(str(ids[src]))
        if item is None:
            continue
        try:
            image, points, _ = read_crowd(item)
        except BadImage:
            continue
        out[src] = (image, points)
    return out


def _rank_colours(k: int) -> list[tuple[int, int, int]]:
    import matplotlib

    cmap = matplotlib.colormaps["turbo"]
    return [tuple(int(255 * c) for c in cmap(0.1 + 0.8 * j / max(1, k - 1))[:3]) for j in range(k)]


@PREVIEWS.register("crops")
def crops_preview(corpus, out_path, n_sets: int = 4, height: int = 300, **_) -> None:
    """One row per crop set, from different sources: the source with its anchor region (white), the
    anchor (cross) and the nested integer boxes in rank colours; then the stored patches, largest first."""
    from PIL import Image, ImageDraw

    groups = corpus.groups
    source = corpus.column("source")
    first_of = {}
    for g, row in enumerate(groups):
        first_of.setdefault(int(source[row[0]]), g)
    picks = [first_of[s] for s in sorted(first_of)]
    picks = [picks[i] for i in np.linspace(0, len(picks) - 1, min(n_sets, len(picks))).round().astype(int)]
    sources = _source_images(corpus, [int(source[groups[g, 0]]) for g in picks])
    k = groups.shape[1]
    colours = _rank_colours(k)
    has_count = "count" in corpus.columns()
    params = corpus.attrs.get(S.ATTR_PARAMS) or {}
    rows = []
    for g in picks:
        members = groups[g]
        src = int(source[members[0]])
        ib = np.stack([corpus.column(c)[members] for c in ("ibox_x0", "ibox_y0", "ibox_x1", "ibox_y1")], axis=1)
        anchor = (float(corpus.column("anchor_x")[members[0]]), float(corpus.column("anchor_y")[members[0]]))
        if src in sources:
            image, points = sources[src]
        else:  # the source moved or is gone: boxes on grey, so the geometry still shows
            image, points = np.full((int(ib[0, 3]) + 8, int(ib[0, 2]) + 8, 3), 90, np.uint8), None
        h, w = image.shape[:2]
        scale = height / h
        left = Image.fromarray(image).resize((max(1, round(w * scale)), height), Image.BILINEAR)
        draw = ImageDraw.Draw(left)
        if points is not None:
            for x, y in points * scale:
                draw.point((x, y), fill=(255, 255, 0))
        if "r" in params:
            region = geometry.anchor_region(w, h, float(params["r"]))
            draw.rectangle([v * scale for v in region], outline=(255, 255, 255))
        for j in range(k):
            x0, y0, x1, y1 = (v * scale for v in ib[j])
            draw.rectangle((x0, y0, x1 - 1, y1 - 1), outline=colours[j], width=2)
        ax, ay = anchor[0] * scale, anchor[1] * scale
        draw.line((ax - 5, ay, ax + 5, ay), fill=(255, 255, 255), width=2)
        draw.line((ax, ay - 5, ax, ay + 5), fill=(255, 255, 255), width=2)
        label(left, f"{corpus.table('source_id')[src]}  set {int(corpus.column('set')[members[0]])}")
        lines = 2 if k > 3 else 1
        per_line = -(-k // lines)
        tile = height // lines - 6
        row = Image.new("RGB", (left.width + per_line * (tile + 6) + 6, height), (24, 24, 24))
        row.paste(left, (0, 0))
        for j, idx in enumerate(members):
            patch = Image.fromarray(corpus.image(idx)).resize((tile, tile), Image.BILINEAR)
            n = int(ib[j, 2] - ib[j, 0])
            text = f"r{j} {n}px" + (f" n={int(corpus.column('count')[idx])}" if has_count else "")
            label(patch, text)
            x = left.width + 6 + (j % per_line) * (tile + 6)
            y = (j // per_line) * (tile + 6)
            ImageDraw.Draw(row).rectangle((x - 3, y, x + tile + 2, y + tile + 5), fill=colours[j])
            row.paste(patch, (x, y + 3))
        rows.append(row)
    stack(rows).save(out_path)


@PREVIEWS.register("density")
def density_preview(corpus, out_path, n_images: int = 4, height: int = 256, **_) -> None:
    """One row per image: the image, then its density map over a darkened copy (colour = people per
    pixel, scaled per image), labeled with the head count and the map's sum."""
    import cv2
    import matplotlib
    from PIL import Image

    cmap = matplotlib.colormaps["inferno"]
    count = corpus.column("count")
    picks = np.linspace(0, len(corpus) - 1, min(n_images, len(corpus))).round().astype(int)
    rows = []
    for i in picks:
        image = corpus.image(i)
        d = corpus.ragged("density", i).astype(np.float64)
        h, w = image.shape[:2]
        up = cv2.resize(d, (d.shape[1] * -(-w // d.shape[1]), d.shape[0] * -(-h // d.shape[0])),
                        interpolation=cv2.INTER_NEAREST)[:h, :w]
        heat = cmap(up / up.max() if up.max() > 0 else up)[..., :3] * 255
        alpha = np.clip(up / (up.max() or 1.0) * 3, 0, 1)[..., None]
        overlay = (image * 0.35 * (1 - alpha) + heat * alpha).astype(np.uint8)
        pair = Image.fromarray(np.concatenate([image, np.full((h, 4, 3), 24, np.uint8), overlay], axis=1))
        pair = pair.resize((max(1, round(pair.width * height / h)), height), Image.BILINEAR)
        label(pair, f"{corpus.table('source_id')[corpus.column('source')[i]]}: {count[i]:g} heads, "
                    f"map sum {d.sum():.3f}, map {d.shape[1]}x{d.shape[0]}")
        rows.append(pair)
    stack(rows).save(out_path)
