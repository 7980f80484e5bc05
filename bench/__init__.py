"""facecolor.bench: how fast is an engine here, and does it give the colors of its PyTorch model?

    bench --engine models/gpsagd.onnx --data ../shared/data/faces/ffhq_dev --json out/bench.json

Modules, one job each: ``targets`` (backend names -> the runtime's backends, the reference),
``latency`` (engine alone per batch size), ``measure`` (every throughput figure: folder
pipeline, codec alone, model alone, Ray scaling), ``parity`` (scores vs truth and agreement
with the reference), ``gates`` (pass/fail limits), ``report`` (header, table, JSON), ``run``
(one run end to end), ``cli``; ``throughput`` and ``throughput_gpu`` are the harness's
commands (``python -m facecolor.bench.throughput``).
"""

from facecolor.bench.errors import BenchError, DataError, EngineError, ReferenceNotFound, UnknownTarget

__all__ = ["BenchError", "DataError", "EngineError", "ReferenceNotFound", "UnknownTarget"]
