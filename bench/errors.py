"""A failed gate is not an error: the bench finishes, names the failing gates, and exits 1."""

from facecolor.errors import FacecolorError


class BenchError(FacecolorError):
    """The bench cannot run as asked; the message says how to fix it."""
