"""facecolor.runtime: colorize whole directory trees, streaming, on the GPU or the CPU.

    facecolor-batch IN_DIR OUT_DIR            # or: python -m facecolor.runtime IN_DIR OUT_DIR

One run (``run.run_batch``) for every kind of IN and OUT (``storage``: local folders and
object-storage URLs) and every executor (``executor.ThreadExecutor`` here, or
``distributed.ray_job.RayExecutor`` on Ray); ``batch.colorize_tree`` sets one up from plain
options. Stages (DESIGN §7): ``walk``/``jobs`` (jobs) -> reader (bytes) -> ``decode`` ->
``render`` (L* and the square render; ``geometry`` places it) -> backend (``backends``,
``predict_ab``) -> ``render.colorize_image`` (full-resolution color) -> ``write`` (encode,
atomic rename); ``pipeline`` runs them in threads with bounded queues, ``report`` counts and
writes ``facecolor-report.json``. A tour: docs/architecture.md.
"""
