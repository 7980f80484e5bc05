"""The one error family: every error facecolor raises on purpose derives from ``FacecolorError``.

The CLIs turn a ``FacecolorError`` into click's "Error: ..." and exit code 1 (DESIGN §5), so a
library function never prints or exits. ``Unavailable`` is the single "this needs something
that is not here" error (a package, a GPU, TensorRT, Ray, a pipeline for a device): its
message names what is missing and how to get it. Specific subclasses exist only where a
caller catches them differently (a backend that cannot open makes ``open_backend`` try the
next one; a fatal error stops a batch run and is written into its report).
"""

from __future__ import annotations


class FacecolorError(Exception):
    """Base of facecolor's own errors; the message says what went wrong and how to fix it."""


class Unavailable(FacecolorError, RuntimeError):
    """A dependency or device this step needs is missing; the message names it and the fix
    (``pip install ...``, ``--device cpu``, ...)."""
