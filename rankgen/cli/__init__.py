"""The `rankgen` command: one click group, one module per command family."""

import importlib

import click

from .. import __version__


class _Group(click.Group):
    def list_commands(self, ctx):
        return list(self.commands)  # keep the order in which the families are registered


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="rankgen")
def main():
    """Turn unlabeled images into ranked training corpora (HDF5).

    \b
    Quick start (no download needed: uses scikit-image's sample photos):
      rankgen distort                      ranked IQA corpus -> corpus.h5
      rankgen info corpus.h5               what is inside
      rankgen preview corpus.h5 -o sheet.png
    Every command has --help with examples.
    """


# Each module adds its commands to `main` when imported.
COMMAND_MODULES = ("distort", "crops", "annotate", "inspect", "verify")

for _name in COMMAND_MODULES:
    importlib.import_module(f"{__name__}.{_name}")
