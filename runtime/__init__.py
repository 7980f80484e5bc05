"""facecolor.runtime: colorize whole directory trees, streaming, on the GPU or the CPU.

    facecolor-batch IN_DIR OUT_DIR            # or: python -m facecolor.runtime IN_DIR OUT_DIR

Stages (DESIGN §7): ``walk`` (jobs) -> reader (bytes) -> ``decode`` -> ``preprocess`` (render
L) -> backend (``backends``) -> postprocess (full-resolution color) -> ``write`` (encode,
atomic rename); ``pipeline`` runs them in threads with bounded queues, ``report`` counts and
writes ``facecolor-report.json``; ``geometry`` places an image in the square render.
"""
