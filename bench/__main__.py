"""``python -m facecolor.bench``: the same command as ``bench`` and ``facecolor-bench``."""

from facecolor.bench.cli import main

if __name__ == "__main__":
    main(prog_name="python -m facecolor.bench")
