"""``python -m facecolor.runtime IN_DIR OUT_DIR``: the same as ``facecolor-batch``."""

from facecolor.runtime.cli import main

if __name__ == "__main__":
    main(prog_name="facecolor-batch")
