"""The console scripts `rankgen` and `train`.

Importing a command-line module pulls in click, numpy and friends, which takes a noticeable moment;
a Ctrl-C in that moment would otherwise end in a traceback, before the commands' own handlers
(which exit 130 with a line) exist. Nothing has started then, so there is nothing to resume.
"""

import importlib
import sys


def _run(module: str) -> None:
    try:
        main = importlib.import_module(module).main
    except KeyboardInterrupt:
        sys.stderr.write("\ninterrupted while starting: nothing was done\n")
        sys.exit(130)
    main()


def rankgen() -> None:
    _run("rankgen.cli")


def train() -> None:
    _run("train.cli")
