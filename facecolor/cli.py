"""The ``facecolor`` command: one click group holding every stage's command."""

from __future__ import annotations

import importlib

import click

#: subcommand name -> module whose ``main`` is that stage's click command.
STAGE_COMMANDS = {
    "train": "facecolor.train.cli",
    "export": "facecolor.export.cli",
    "batch": "facecolor.runtime.cli",
    "bench": "facecolor.bench.cli",
}


class StageGroup(click.Group):
    """Imports a stage only when its command runs, so ``facecolor --help`` stays fast."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(STAGE_COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        module = STAGE_COMMANDS.get(name)
        if module is None:
            return None
        return importlib.import_module(module).main


@click.group(cls=StageGroup)
@click.version_option(package_name="facecolor")
def main() -> None:
    """Colorize black-and-white portraits: train, export, batch-colorize, benchmark.

    Example: facecolor batch ./yearbook ./out
    """
