"""GPU throughput of facecolor-batch against nvJPEG alone: ``facecolor.bench.throughput_gpu``.

    python scripts/gpu_bench.py --json out/gpu_bench.json   # = python -m facecolor.bench.throughput gpu ...
"""

import sys

from facecolor.bench.throughput_gpu import gpu_main

if __name__ == "__main__":
    sys.exit(gpu_main())
