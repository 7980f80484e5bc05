"""The bench's one error: it cannot run as asked (bad engine, no reference, no images, an
unknown ``--compare`` name); the message says how to fix it. ``facecolor.bench.cli`` turns it
into ``click.ClickException`` (exit 1), or ``BadParameter`` (exit 2) for ``--compare``. A failed
gate is not an error: the bench finishes, names the failing gates, and the CLI exits 1.
"""

from facecolor.errors import FacecolorError


class BenchError(FacecolorError):
    """The bench cannot run as asked."""
