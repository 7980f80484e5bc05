"""facecolor.runtime: colorize whole directory trees, streaming, on the GPU or the CPU.

    facecolor-batch IN_DIR OUT_DIR            # or: python -m facecolor.runtime IN_DIR OUT_DIR

One run (``run.run_batch``) for every kind of IN and OUT and every executor; the modules'
tour, one image at a time, is docs/architecture.md.
"""
