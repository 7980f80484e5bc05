"""facecolor.bench: how fast is an engine here, and does it give the colors of its PyTorch model?

    bench --engine models/gpsagd.onnx --data ../shared/data/faces/ffhq_dev --json out/bench.json

Modules: ``targets`` (backend names, the reference), ``latency`` (the one timer of a model),
``measure`` (every throughput figure), ``parity``, ``gates``, ``report``, ``run``, ``cli``;
``throughput`` holds the harness's other commands (rounds, ray).
"""

from facecolor.errors import FacecolorError


class BenchError(FacecolorError):
    """The bench cannot run as asked; the message says how to fix it. A failed gate is not an
    error: the bench finishes, names the failing gates, and exits 1."""
