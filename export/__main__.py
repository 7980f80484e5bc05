"""``python -m facecolor.export CHECKPOINT ...``: the same command as ``facecolor-export``."""

from facecolor.export.cli import main

main(prog_name="facecolor-export")
