"""`train run | eval | predict`: a thin shell over config, loop and evaluate."""

from __future__ import annotations

import sys

import click

from rankgen.errors import RankgenError


def _one_line(exc: Exception) -> str:
    """The error's own message, also when a DataLoader worker raised it: torch re-raises it in the
    parent with the worker's whole traceback as its message, ending with the original line."""
    text = str(exc)
    if "\nOriginal Traceback" not in text:
        return text
    last = text.rstrip().splitlines()[-1]
    name, _, message = last.partition(": ")
    return message if message and name.endswith(type(exc).__name__) else last


def _guard(fn):
    """User errors print one line and exit 2; anything else is a bug and keeps its traceback."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except RankgenError as exc:
            click.echo(f"error: {_one_line(exc)}", err=True)
            sys.exit(2)
        except ModuleNotFoundError as exc:
            if exc.name != "torch":
                raise
            click.echo("error: train needs PyTorch: pip install 'rankgen[train]' (CPU: pip install torch==2.13.0)",
                       err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            command = click.get_current_context().info_name
            hint = {"run": "`train run --resume` continues from the last finished epoch",
                    "active": "`train active --resume` continues from the last finished cycle"}.get(command, "")
            click.echo("interrupted" + (f"; {hint}" if hint else ""), err=True)
            sys.exit(130)

    return wrapper


@click.group()
def main():
    """Train regression networks on rankgen corpora (ranking, multi-task, DCR, counting)."""


@main.command()
@click.option("--recipe", help="YAML in data_recipes/ (name or path). Default: data_recipes/default.yaml, "
                               "a small CPU run on corpora built from the samples.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a dotted recipe field, e.g. --set optim.lr=1e-3 --set data.ranked=waterloo.h5.")
@click.option("--resume", is_flag=True, help="Continue runs/<name>/ from its last finished epoch.")
@_guard
def run(recipe, overrides, resume):
    """Train; writes runs/<name>/ (config.yaml, metrics.csv, curves.png, last.pt, best.pt).

    \b
    Examples:
      train run
      train run --recipe rankiqa_tid2013 --set data.ranked=waterloo.h5 --set data.labeled=tid2013.h5
      torchrun --nproc-per-node 8 -m train run --recipe dcr_tid2013_4ann
    """
    from .config import load_config
    from .loop import run as run_training

    cfg = load_config(recipe, list(overrides))
    res = run_training(cfg, resume=resume)
    _print_metrics(res)


def _print_metrics(res: dict) -> None:
    shown = {k: v for k, v in res.items() if k not in ("epoch", "lr", "seconds", "run_dir") and not k.startswith("loss_")}
    if "run_dir" in res:
        click.echo(f"run folder: {res['run_dir']}")
    for k, v in shown.items():
        click.echo(f"{k}: {v:.4f}" if isinstance(v, float) else f"{k}: {v}")


@main.command("eval")
@click.option("--checkpoint", required=True, type=click.Path(dir_okay=False), help="best.pt or last.pt of a run.")
@click.option("--data", required=True, type=click.Path(dir_okay=False), help="A corpus: distort (PRA over its groups), "
              "annotate (per-annotator PRA/SROCC/PLCC), density (MAE/RMSE).")
@click.option("--split", default="test", show_default=True, type=click.Choice(["test", "train", "all"]),
              help="Items of a labeled corpus to evaluate.")
@click.option("--crops", type=int, help="Random crops averaged per image (default: the run's data.test_crops).")
@_guard
def eval_(checkpoint, data, split, crops):
    """Evaluate a checkpoint on a corpus and print the metrics."""
    from .evaluate import evaluate_checkpoint

    _print_metrics(evaluate_checkpoint(checkpoint, data, split=split, crops=crops))


@main.command()
@click.option("--checkpoint", required=True, type=click.Path(dir_okay=False))
@click.option("--crops", type=int, help="Random crops averaged per image (default: the run's data.test_crops).")
@click.argument("images", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@_guard
def predict(checkpoint, crops, images):
    """Print `path,score` CSV for image files (higher = better quality, or the count)."""
    from .evaluate import predict_files

    scores = predict_files(checkpoint, images, crops=crops)
    click.echo("path,score")
    for path, score in scores:
        click.echo(f"{path},{score:.6f}")


@main.command()
@click.option("--recipe", help="YAML in data_recipes/ (name or path). Default: data_recipes/active_default.yaml, "
                               "distorted sample photos scored by SSIM, a small CPU run.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a dotted recipe field, e.g. --set active.distortions=[gaussian_blur,jpeg].")
@click.option("--cycles", type=int, help="Active-learning cycles T (active.cycles).")
@click.option("--initial", type=float, help="Labeled fraction of the pool at the start (active.initial).")
@click.option("--add", type=float, help="Fraction of the pool labeled per cycle, S (active.add).")
@click.option("--pairs", type=int, help="Parameter pairs K per unit in Eq. 15 (active.pairs).")
@click.option("--resume", is_flag=True, help="Continue runs/<name>/ after its last finished cycle.")
@_guard
def active(recipe, overrides, cycles, initial, add, pairs, resume):
    """Active learning from rankings (Eq. 15, Algorithm 1) against random selection; writes
    runs/<name>/ (results.csv, active.png, <strategy>/cycle_<t>.json with every selection).

    \b
    Examples:
      train active
      train active --recipe data_recipes/active_tid2013.yaml --cycles 9 --add 0.1 --pairs 100
      train active --recipe active_counting --resume

    One run on a small pool is noisy (about 0.1 LCC from seed to seed); compare strategies over
    seeds with `python benchmarks/active_seeds.py` (docs/active.md).
    """
    from .active import load_config, run_active, table

    flags = {"cycles": cycles, "initial": initial, "add": add, "pairs": pairs}
    extra = [f"active.{k}={v}" for k, v in flags.items() if v is not None]
    cfg = load_config(recipe, [*overrides, *extra])
    res = run_active(cfg, resume=resume)
    click.echo(f"run folder: {res['run_dir']}")
    click.echo(table(res["rows"], cfg))
