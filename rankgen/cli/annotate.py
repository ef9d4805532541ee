"""`rankgen annotate`: a labeled set re-annotated by K disjoint, biased simulated annotators.

The model (rankgen.annotators) runs once over all listed items; the workers only decode and embed
images, one job per item, so the output is identical for any --workers and after a resume.
The per-annotator histogram preview of `annotate` corpora is registered here, beside the writer.
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass
from pathlib import Path

import click
import numpy as np

from .. import annotators as model
from ..corpus import Corpus, CorpusWriter
from ..corpus import schema as S
from ..corpus.writer import fingerprint
from ..errors import BadImage, RankgenError
from ..fr_metrics import SCORES, open_corpus, score_corpus
from ..pipeline import JobResult, Summary, nothing_usable, run_jobs
from ..sources import SOURCES, SourceItem, read_image
from ..sources import labeled
from . import main
from .common import (command_line, echo_summary, guarded, on_error_option, output_option, overwrite_option,
                     progress_option, resolve_workers, seed_option, workers_option)

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
    from ..generate import generate

    out = folder / "embedded_distort.h5"
    generate(out, dataset="samples", distortions=EMBEDDED_DISTORTIONS, levels=EMBEDDED_LEVELS, seed=seed,
             workers=workers, crop=EMBEDDED_CROP, crops_per_image=EMBEDDED_CROPS, progress=progress,
             command="rankgen annotate (embedded default)")
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


def write_annotated(output, listing: Listing, settings: model.Settings, *, workers: int, overwrite: bool,
                    on_error: str, progress: bool, command: str) -> Summary:
    ann = model.simulate(listing.true, listing.ref.astype(str), settings)
    params = {"source": listing.description, "annotators": settings.annotators, "assign": settings.assign,
              "test_fraction": settings.test_fraction, "shift": settings.shift, "warp": settings.warp,
              "range": [settings.lo, settings.hi], "seed": settings.seed}
    items = hashlib.sha256(listing.true.tobytes() + "\x1f".join(listing.path.tolist()).encode()).hexdigest()
    jobs = [
        AnnotateJob(listing.fetch[i], {
            "true_score": float(listing.true[i]), "score": float(ann.score[i]), "annotator": int(ann.annotator[i]),
            "split": str(ann.split[i]), "ref": str(listing.ref[i]), "path": str(listing.path[i]),
            "distortion": str(listing.distortion[i]), "level": int(listing.level[i])})
        for i in range(len(listing.true))
    ]
    writer = CorpusWriter(output, "annotate", columns=COLUMNS, ragged=RAGGED, overwrite=overwrite,
                          fingerprint=fingerprint({**params, "items": items}),
                          attrs={S.ATTR_COMMAND: command, S.ATTR_SEED: settings.seed, S.ATTR_PARAMS: params})
    with writer:
        summary = run_jobs(jobs, annotate_item, writer, workers=workers, desc="annotate", unit="img",
                           commit_every=64, progress=progress, on_error=on_error)
        if summary.rows == 0:
            raise nothing_usable(summary, "image")
        groups, group_annotator, group_split = build_groups(
            writer.read_column("annotator"), writer.read_column("split"), writer.read_column("score"), settings.annotators)
        writer.finish(
            tables={S.GROUPS: groups, "group_annotator": group_annotator, "group_split": group_split,
                    "annotator_shift": ann.shift, "warp_knots_x": model.KNOTS_X, "warp_knots_y": ann.knots_y},
            attrs={"task": listing.task, "annotator_model": {
                "center": ann.center, "scale": ann.scale, "v_min": ann.v_min, "v_max": ann.v_max,
                "lo": settings.lo, "hi": settings.hi}},
        )
    return summary


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
    lines.append(f"split by reference: {np.sum(split == model.TRAIN)} train / {np.sum(split == model.TEST)} test items, "
                 f"{len(set(c.column('ref')[split == model.TEST].tolist()))} of {len(set(c.column('ref').tolist()))} references in test")
    return lines


@main.command()
@click.option("--dataset", help="Labeled set: " + ", ".join(e.name for e in SOURCES if e.info.get("kind") == "scores")
              + ". See docs/annotators.md for each layout.")
@click.option("--root", type=click.Path(), help="Folder of the dataset (the CSV file for csv and csiq).")
@click.option("--target", type=click.Choice(labeled.AFEW_TARGETS), help="afew-va: which label to rank (default valence).")
@click.option("--from", "from_", type=click.Path(dir_okay=False),
              help="A rankgen distort corpus to score against its own references instead of --dataset.")
@click.option("--score", type=click.Choice(SCORES), default=None,
              help="With --from: the true score (ssim, psnr capped at 100 dB, or minus the level). Default ssim.")
@click.option("--annotators", "k", default=4, show_default=True, type=click.IntRange(min=1), help="Number of annotators K.")
@click.option("--assign", type=click.Choice(model.ASSIGN_MODES), default="random", show_default=True,
              help="random: items dealt out evenly; reference: all versions of one reference go to one annotator.")
@click.option("--test-fraction", default=0.2, show_default=True, type=float,
              help="Fraction of reference images (with all their versions) held out as the test split.")
@click.option("--shift", default=1.0, show_default=True, type=float,
              help="Spread of the annotators' mean shifts b_k, in standard deviations of the true scores.")
@click.option("--warp", default=0.5, show_default=True, type=float,
              help="Strength of each annotator's random monotone warp (0 = none); order within an annotator is kept.")
@click.option("--range", "range_", nargs=2, type=float, default=None,
              help="LO HI of the annotated scores. Default 0 1 (IQA) or -1 1 (affect: afew-va).")
@seed_option
@workers_option
@output_option("annotate.h5")
@overwrite_option
@on_error_option
@progress_option
@guarded
def annotate(dataset, root, target, from_, score, k, assign, test_fraction, shift, warp, range_, seed, workers,
             output, overwrite, on_error, quiet):
    """Re-annotate a scored set with K disjoint, biased annotators (the paper's Fig. 4 setting).

    Each item goes to exactly one annotator. Annotator k reports g_k(true) + b_k: a mean shift and
    a random strictly increasing warp, so its own items keep their true order exactly while items
    of different annotators do not. One affine map puts all scores into --range. Stored: image,
    true score, annotator, annotated score, train/test split by reference, model parameters.
    Without --dataset or --from, a small distort corpus of scikit-image's photos is built and scored
    by SSIM, so this runs anywhere. Model and layouts: docs/annotators.md.

    \b
    Examples:
      rankgen annotate --annotators 4                                   # embedded default, no download
      rankgen annotate --dataset tid2013 --root ~/tid2013 --annotators 4 --seed 0 -o tid2013_4ann.h5
      rankgen annotate --dataset csv --root ~/my_scores.csv --range 0 1 --annotators 3 -o mine.h5
      rankgen annotate --from corpus.h5 --score psnr --annotators 4 -o corpus_4ann.h5
      rankgen preview tid2013_4ann.h5 -o hist.png                       # per-annotator histograms
    """
    if dataset and from_:
        raise RankgenError("give either --dataset or --from, not both")
    if score and not from_ and dataset:
        raise RankgenError("--score applies to --from (a distort corpus); --dataset sets come with their own scores")
    if (root or target) and not dataset:
        raise RankgenError("--root and --target need --dataset")
    workers, progress = resolve_workers(workers), not quiet
    with tempfile.TemporaryDirectory(prefix="rankgen-annotate-") as tmp:
        try:
            listing = _listing(dataset, root, target, from_, score or "ssim", seed, workers, progress, Path(tmp))
            lo, hi = range_ if range_ else RANGES[listing.task]
            settings = model.Settings(annotators=k, assign=assign, test_fraction=test_fraction, shift=shift,
                                      warp=warp, lo=lo, hi=hi, seed=seed)
            summary = write_annotated(output, listing, settings, workers=workers, overwrite=overwrite,
                                         on_error=on_error, progress=progress, command=command_line())
        finally:
            open_corpus.cache_clear()  # close the inputs before the temporary folder goes
    echo_summary(summary, output)
    for line in report(output):
        click.echo(line)


def _listing(dataset, root, target, from_, score, seed, workers, progress, tmp: Path) -> Listing:
    if dataset:
        return list_dataset(dataset, root, target)
    if from_:
        return list_corpus(from_, score, label=str(from_), workers=workers, progress=progress)
    embedded = build_embedded(tmp, seed, workers, progress)
    return list_corpus(embedded, score, label=EMBEDDED, workers=workers, progress=progress)
