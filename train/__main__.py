"""``python -m facecolor.train``: the same command as ``facecolor-train`` (and what torchrun runs)."""

from facecolor.train.cli import main

if __name__ == "__main__":
    main(prog_name="facecolor-train")
