"""`rankgen annotate` as a library call: a labeled set re-annotated by K disjoint, biased simulated
annotators (kind `annotate`).

The model (rankgen.annotators) runs once over all listed items; the workers only decode and embed
images, one job per item, so the output is identical for any worker count and after a resume.
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import annotators as model
from ..corpus import Corpus, open_corpus
from ..corpus import schema as S
from ..errors import BadImage, RankgenError
from ..fr_metrics import score_corpus
from ..sources import SOURCES, SourceItem, read_image
from ..sources import labeled
from .base import JobResult, Summary, replay_command, resolve_workers, write_corpus
from .distort import distort

COLUMNS = {"true_score": "float64", "score": "float64", "annotator": "int64", "split": "str", "ref": "str",
           "path": "str", "distortion": "str", "level": "int64"}
RAGGED = {"image": ("uint8", 3)}
RANGES = {labeled.IQA: (0.0, 1.0), labeled.AFFECT: (-1.0, 1.0)}
EMBEDDED = "embedded:samples"
# The embedded default: a small distort corpus of scikit-image's photos (two 128 px crops each),
# enough references for an 80/20 split and for four annotators with --assign reference.
EMBEDDED_DISTORTIONS = ("gaussian_blur", "gaussian_noise", "jpeg", "jpeg2000", "contrast_decrease", "mean_shift",
                        "color_saturation", "impulse_noise")
EMBEDDED_CROP, EMBEDDED_CROPS, EMBEDDED_LEVELS = 128, 2, 5


@dataclass(frozen=True)
class Listing:
    """The scored items, before any image is decoded."""

    true: np.ndarray         # float64, higher = better
    ref: np.ndarray          # str: unit of the split and of --assign reference
    path: np.ndarray         # str: where the item comes from
    distortion: np.ndarray   # str
    level: np.ndarray        # int64
    fetch: tuple             # per item: a SourceItem, or (corpus path, index) into a distort corpus
    task: str
    description: str         # what was listed, for the fingerprint and the attributes


@dataclass(frozen=True)
class AnnotateJob:
    fetch: object
    row: dict


def annotate_item(job: AnnotateJob) -> JobResult:
    if isinstance(job.fetch, SourceItem):
        try:
            image, notes = read_image(job.fetch)
        except BadImage as exc:
            return JobResult(skipped=str(exc))
    else:
        path, index = job.fetch
        image, notes = open_corpus(path).image(index), []
    return JobResult(rows=[{**job.row, "image": np.ascontiguousarray(image)}], notes=notes)


def list_dataset(dataset: str, root, target: str | None) -> Listing:
    entry = SOURCES.entry(dataset)
    if entry.info.get("kind") != "scores":
        scored = ", ".join(e.name for e in SOURCES if e.info.get("kind") == "scores")
        raise RankgenError(f"--dataset {entry.name} has no scores ({entry.info.get('kind')}); annotate needs one of {scored}, "
                           "or --from a distort corpus")
    if target is not None and entry.name != "afew-va":
        raise RankgenError(f"--target applies to --dataset afew-va only, not {entry.name}")
    items = entry.obj(root, target=target) if target is not None else entry.obj(root)
    meta = [it.meta for it in items]
    return Listing(
        true=np.array([m["score"] for m in meta], dtype=np.float64),
        ref=np.array([m["ref"] for m in meta], dtype=object),
        path=np.array([it.path for it in items], dtype=object),
        distortion=np.array([m["distortion"] for m in meta], dtype=object),
        level=np.array([m["level"] for m in meta], dtype=np.int64),
        fetch=tuple(items),
        task=entry.info["task"],
        description=f"{entry.name}:{Path(root).expanduser().resolve() if root else ''}:{target or ''}",
    )


def list_corpus(path, score: str, *, label: str, workers: int, progress: bool) -> Listing:
    corpus = Corpus(path, kind="distort")
    true = score_corpus(corpus, score, workers=workers, progress=progress)
    ref_id = corpus.table("ref_id")
    n = len(corpus)
    return Listing(
        true=true,
        ref=ref_id[corpus.column("ref")].astype(object),
        path=np.array([f"{label}#{i}" for i in range(n)], dtype=object),
        distortion=corpus.column("distortion").astype(object),
        level=corpus.column("level").astype(np.int64),
        fetch=tuple((str(path), i) for i in range(n)),
        task=labeled.IQA,
        description=f"{label}:{corpus.attrs.get(S.ATTR_FINGERPRINT)}:{score}",
    )


def build_embedded(folder: Path, seed: int, workers: int, progress: bool) -> Path:
    out = folder / "embedded_distort.h5"
    distort(out, dataset="samples", distortions=EMBEDDED_DISTORTIONS, levels=EMBEDDED_LEVELS, seed=seed,
            workers=workers, crop=EMBEDDED_CROP, crops_per_image=EMBEDDED_CROPS, progress=progress)
    return out


def build_groups(annotator, split, score, k: int):
    """One row per (split, annotator): its items by annotated score, best first; -1 pads."""
    rows, keys = [], []
    for part in (model.TRAIN, model.TEST):
        for j in range(k):
            mine = np.flatnonzero((annotator == j) & (split == part))
            if len(mine):
                rows.append(mine[np.argsort(-score[mine], kind="stable")])
                keys.append((j, part))
    width = max((len(r) for r in rows), default=0)
    groups = np.full((len(rows), width), -1, dtype=np.int64)
    for g, r in zip(groups, rows):
        g[: len(r)] = r
    return groups, np.array([j for j, _ in keys], dtype=np.int64), np.array([p for _, p in keys], dtype=object)


def write_annotated(output, listing: Listing, settings: model.Settings, *, command: str, workers: int | None,
                    overwrite: bool, on_error: str, progress: bool) -> Summary:
    ann = model.simulate(listing.true, listing.ref.astype(str), settings)
    params = {"source": listing.description, "annotators": settings.annotators, "assign": settings.assign,
              "test_fraction": settings.test_fraction, "shift": settings.shift, "warp": settings.warp,
              "range": [settings.lo, settings.hi], "seed": settings.seed,
              # The split's unit since issue #15: a partial file split by plain reference is not resumed.
              "split_unit": "scene"}
    items = hashlib.sha256(listing.true.tobytes() + "\x1f".join(listing.path.tolist()).encode()).hexdigest()
    jobs = [
        AnnotateJob(listing.fetch[i], {
            "true_score": float(listing.true[i]), "score": float(ann.score[i]), "annotator": int(ann.annotator[i]),
            "split": str(ann.split[i]), "ref": str(listing.ref[i]), "path": str(listing.path[i]),
            "distortion": str(listing.distortion[i]), "level": int(listing.level[i])})
        for i in range(len(listing.true))
    ]

    def finish(writer, summary):
        groups, group_annotator, group_split = build_groups(
            writer.read_column("annotator"), writer.read_column("split"), writer.read_column("score"), settings.annotators)
        return (
            {S.GROUPS: groups, "group_annotator": group_annotator, "group_split": group_split,
             "annotator_shift": ann.shift, "warp_knots_x": model.KNOTS_X, "warp_knots_y": ann.knots_y},
            {"task": listing.task, "annotator_model": {
                "center": ann.center, "scale": ann.scale, "v_min": ann.v_min, "v_max": ann.v_max,
                "lo": settings.lo, "hi": settings.hi}},
        )

    return write_corpus(output, "annotate", jobs, annotate_item, columns=COLUMNS, ragged=RAGGED, command=command,
                        content={**params, "items": items}, attrs={S.ATTR_SEED: settings.seed, S.ATTR_PARAMS: params},
                        finish=finish, commit_every=64, overwrite=overwrite, workers=workers, progress=progress,
                        on_error=on_error, what="image")


def report(path) -> list[str]:
    """Per annotator: count, mean, std, Kendall tau within; overall: the cross-annotator contradiction rate."""
    c = Corpus(path, kind="annotate")
    true, score, annotator = c.column("true_score"), c.column("score"), c.column("annotator")
    k = len(c.table("annotator_shift"))
    lines = [f"{'annotator':>9} {'count':>7} {'mean':>8} {'std':>8} {'shift b_k':>9}  Kendall tau (annotated vs true, within)"]
    for row, b in zip(model.per_annotator(true, score, annotator, k), c.table("annotator_shift")):
        lines.append(f"{row['annotator']:>9} {row['count']:>7} {row['mean']:>8.4f} {row['std']:>8.4f} {b:>+9.3f}  {row['tau']:.6f}")
    rate, pairs = model.cross_contradiction(true, score, annotator)
    lines.append(f"cross-annotator pairs whose annotated order contradicts the true order: {100 * rate:.1f}% "
                 f"of {pairs:,} pairs with different true scores")
    split = c.column("split")
    lines.append(f"split by scene: {np.sum(split == model.TRAIN)} train / {np.sum(split == model.TEST)} test items, "
                 f"{len(set(c.column('ref')[split == model.TEST].tolist()))} of {len(set(c.column('ref').tolist()))} references in test")
    return lines


def annotate(
    output: str | Path = "annotate.h5",
    *,
    dataset: str | None = None,
    root: str | None = None,
    target: str | None = None,
    from_corpus: str | Path | None = None,
    score: str | None = None,
    annotators: int = 4,
    assign: str = "random",
    test_fraction: float = 0.2,
    shift: float = 1.0,
    warp: float = 0.5,
    score_range: tuple[float, float] | None = None,
    seed: int = 0,
    workers: int | None = None,
    overwrite: bool = False,
    on_error: str = "skip",
    progress: bool = True,
) -> Summary:
    """Re-annotate a scored set with `annotators` disjoint, biased annotators; `rankgen annotate`.

    dataset/root[/target]: a labeled set (tid2013, kadid10k, live, csiq, afew-va, csv); or
    from_corpus: a distort corpus scored against its own references by `score` (ssim, psnr, level);
    neither: the embedded default (sample photos scored by SSIM). score_range: (lo, hi) of the
    annotated scores, default (0, 1) for IQA and (-1, 1) for affect. `report(output)` gives the
    per-annotator statistics that the command prints. Returns the run's Summary.

    >>> rankgen.annotate("tid2013_4ann.h5", dataset="tid2013", root="tid2013", annotators=4)
    """
    if dataset and from_corpus:
        raise RankgenError("give either --dataset or --from, not both")
    if score and not from_corpus and dataset:
        raise RankgenError("--score applies to --from (a distort corpus); --dataset sets come with their own scores")
    if (root or target) and not dataset:
        raise RankgenError("--root and --target need --dataset")
    if annotators < 1:
        raise RankgenError(f"--annotators {annotators}: need at least 1 annotator")
    if assign not in model.ASSIGN_MODES:
        raise RankgenError(f"--assign {assign!r}: choose {' or '.join(model.ASSIGN_MODES)}")
    workers = resolve_workers(workers)
    command = replay_command("annotate", [
        ("--dataset", dataset), ("--root", root), ("--target", target), ("--from", from_corpus), ("--score", score),
        ("--annotators", annotators), ("--assign", assign), ("--test-fraction", test_fraction), ("--shift", shift),
        ("--warp", warp), ("--range", tuple(score_range) if score_range else None), ("--seed", seed), ("--on-error", on_error)])
    with tempfile.TemporaryDirectory(prefix="rankgen-annotate-") as tmp:
        try:
            listing = _listing(dataset, root, target, from_corpus, score or "ssim", seed, workers, progress, Path(tmp))
            lo, hi = score_range if score_range else RANGES[listing.task]
            settings = model.Settings(annotators=annotators, assign=assign, test_fraction=test_fraction, shift=shift,
                                      warp=warp, lo=lo, hi=hi, seed=seed)
            return write_annotated(output, listing, settings, command=command, workers=workers, overwrite=overwrite,
                                   on_error=on_error, progress=progress)
        finally:
            open_corpus.cache_clear()  # close the inputs before the temporary folder goes


def _listing(dataset, root, target, from_, score, seed, workers, progress, tmp: Path) -> Listing:
    if dataset:
        return list_dataset(dataset, root, target)
    if from_:
        return list_corpus(from_, score, label=str(from_), workers=workers, progress=progress)
    embedded = build_embedded(tmp, seed, workers, progress)
    return list_corpus(embedded, score, label=EMBEDDED, workers=workers, progress=progress)
