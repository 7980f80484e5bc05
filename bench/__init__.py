"""facecolor.bench: how fast is an engine here, and does it give the colors of its PyTorch model?

    bench --engine models/gpsagd.onnx --data ../shared/data/faces/ffhq_dev --json out/bench.json

Modules, one job each: ``targets`` (backend names -> the runtime's backends, the reference),
``latency`` (the backend alone per batch size: the one timer), ``measure`` (every throughput
figure: folder pipeline, codec alone, Ray scaling), ``parity`` (scores vs truth and agreement
with the reference), ``gates`` (pass/fail limits), ``report`` (header, table, JSON), ``run``
(one run end to end), ``cli``; ``throughput`` holds the harness's commands (rounds, ray, gpu).
"""

from facecolor.bench.errors import BenchError

__all__ = ["BenchError"]
