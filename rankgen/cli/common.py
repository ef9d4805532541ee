"""Options and plumbing shared by every generating command."""

from __future__ import annotations

import functools
import sys

import click

from ..errors import RankgenError
from ..jobs.base import replay_command
from ..pipeline import EXECUTOR, Executor, Summary


def seed_option(f):
    # SeedSequence takes no negative seed and the `seed` attribute is an int64.
    return click.option("--seed", default=0, show_default=True, type=click.IntRange(0, 2**63 - 1),
                        help="Master seed. Every item's generator derives from (seed, item key), so the same seed "
                             "gives the same bytes for any --workers and after any interruption.")(f)


def workers_option(f):
    return click.option("--workers", default=None, type=click.IntRange(min=1),
                        help="Worker processes (default: all cores). Does not change the output.")(f)


def output_option(default: str):
    def deco(f):
        return click.option("-o", "--output", default=default, show_default=True, type=click.Path(dir_okay=False),
                            help="HDF5 file to write. Written as <output>.partial and renamed when complete; "
                                 "re-running the same command resumes a partial file.")(f)
    return deco


def overwrite_option(f):
    return click.option("--overwrite", is_flag=True,
                        help="Replace an existing output (the old file stays until the new one is complete).")(f)


def on_error_option(f):
    return click.option("--on-error", type=click.Choice(["skip", "stop"]), default="skip", show_default=True,
                        help="A bad input file: skip it with a warning (listed in the summary) or stop.")(f)


def compression_option(f):
    return click.option("--compression", type=click.Choice(["png", "none"]), default="png", show_default=True,
                        help="How pixels are stored, both lossless: png (about half the raw size, encoded by the "
                             "workers, decoded when read) or none (raw bytes: twice the size, no decoding cost). "
                             "docs/benchmarks.md has the figures.")(f)


def shard_option(f):
    return click.option("--shard", metavar="I/N",
                        help="Do only part I of N (numbered from 0) of the sources, as a self-contained file; "
                             "`rankgen merge` joins the N parts into what one run would have written. "
                             "For Slurm job arrays and Kubernetes indexed jobs (docs/distributed.md).")(f)


def _set_executor(ctx, param, value):
    if param.name == "executor":
        ctx.meta["rankgen_executor"] = value
    else:
        ctx.meta["rankgen_scheduler"] = value
    kind = ctx.meta.get("rankgen_executor", "local")
    scheduler = ctx.meta.get("rankgen_scheduler")
    if scheduler and kind != "dask":
        raise click.BadParameter("--scheduler needs --executor dask")
    # Reset when the command ends: a library caller's next command in this process runs locally again.
    token = EXECUTOR.set(Executor(kind, scheduler))
    ctx.call_on_close(lambda: EXECUTOR.reset(token))
    return value


def executor_options(f):
    f = click.option("--scheduler", metavar="ADDRESS", expose_value=False, callback=_set_executor, is_eager=False,
                     help="Dask scheduler, e.g. tcp://HOST:8786 (default with --executor dask: a local cluster "
                          "of --workers processes).")(f)
    return click.option("--executor", type=click.Choice(["local", "dask"]), default="local", show_default=True,
                        expose_value=False, callback=_set_executor, is_eager=True,
                        help="Where the per-image work runs: a local process pool, or a Dask cluster "
                             "(pip install 'rankgen[dask]'); results stream back to this process, which writes.")(f)


def progress_option(f):
    return click.option("--quiet", is_flag=True, help="No progress bar.")(f)


def command_line() -> str:
    """The command as resolved, for the corpora that merge and verify --drop write (the generating
    commands' lines come from rankgen.jobs, in the same form: jobs.base.replay_command)."""
    ctx = click.get_current_context()
    options = [(max(p.opts, key=len), ctx.params.get(p.name)) for p in ctx.command.params
               if isinstance(p, click.Option) and p.name not in NOT_CONTENT]
    return replay_command(ctx.info_name, options)


def echo_summary(summary: Summary, path) -> None:
    for line in summary.lines(path):
        click.echo(line, err=line.startswith(("skipped", "  ")))


NOT_CONTENT = ("workers", "quiet", "overwrite")


class UserError(click.ClickException):
    exit_code = 2


def guarded(f):
    """Turn RankgenError (and Ctrl-C) into one clear line and exit status 2, without a traceback."""

    @functools.wraps(f)
    def wrapper(*args, **kwargs):
        try:
            return f(*args, **kwargs)
        except RankgenError as exc:
            raise UserError(str(exc)) from None
        except KeyboardInterrupt:
            click.echo("\ninterrupted: committed work is kept; re-run the same command to resume.", err=True)
            sys.exit(130)

    return wrapper


def generation_options(default_output: str, *, compression: bool = False):
    """The options every generating command shares, in one order: limit, seed, workers, output,
    overwrite, on-error[, compression], shard, executor, quiet."""

    def deco(f):
        stack = [click.option("--limit", type=click.IntRange(min=1),
                              help="Use only the first N source images (quick trials)."),
                 seed_option, workers_option, output_option(default_output), overwrite_option, on_error_option,
                 *([compression_option] if compression else []), shard_option, executor_options, progress_option]
        for option in reversed(stack):
            f = option(f)
        return f

    return deco
