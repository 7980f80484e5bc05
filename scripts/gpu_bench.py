"""GPU throughput of facecolor-batch against its codec alone: ``throughput gpu`` of the one harness.

    python scripts/gpu_bench.py --json out/gpu_bench.json   # = python -m facecolor.bench.throughput gpu ...
"""

from facecolor.bench.throughput import gpu

if __name__ == "__main__":
    gpu(prog_name="gpu_bench")
