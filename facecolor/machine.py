"""The machine a figure was measured on: CPU, cores, load, GPU and library versions.

Timings and training speeds mean little without it (a shared machine's load, a CPU without
native bf16), so the bench's header, export sidecars and ``scripts/train_speed.py`` describe
the machine with these.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

import torch

import facecolor


def cpuinfo() -> str:
    """/proc/cpuinfo's text (Linux), else ''."""
    try:
        return Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo, else what ``platform`` knows."""
    for line in cpuinfo().splitlines():
        if line.lower().startswith(("model name", "hardware", "processor\t: ")) and ":" in line:
            value = line.split(":", 1)[1].strip()
            if value and not value.isdigit():
                return value
    return platform.processor() or platform.machine() or "unknown CPU"


def usable_cores() -> int:
    """Cores this process may run on (the affinity mask; containers often restrict it)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def version(module: str) -> str | None:
    """``module.__version__``, or None where it is not installed."""
    try:
        imported = __import__(module)
    except Exception:  # noqa: BLE001 - a broken install is 'not installed' for a header
        return None
    return str(getattr(imported, "__version__", "unknown"))


def gpu_info() -> dict[str, Any] | None:
    """Name, compute capability, memory and CUDA version of the current GPU, or None."""
    if not torch.cuda.is_available():
        return None
    index = torch.cuda.current_device()
    props = torch.cuda.get_device_properties(index)
    return {
        "name": props.name,
        "compute_capability": f"{props.major}.{props.minor}",
        "memory_gib": round(props.total_memory / 2**30, 1),
        "cuda": torch.version.cuda,
        "index": index,
    }


def system_info() -> dict[str, Any]:
    """CPU, cores, load, GPU and library versions, JSON-ready."""
    ort_version = version("onnxruntime")
    providers: list[str] = []
    if ort_version is not None:
        import onnxruntime

        providers = list(onnxruntime.get_available_providers())
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        load = None
    return {
        "cpu": cpu_name(),
        "cores": usable_cores(),
        "load_average": load,  # 1, 5, 15 min: a busy shared machine explains slow, noisy timings
        "torch_threads": torch.get_num_threads(),
        "logical_cpus": os.cpu_count(),
        "gpu": gpu_info(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": {
            "facecolor": facecolor.__version__,
            "torch": torch.__version__,
            "tensorrt": version("tensorrt"),
            "onnxruntime": ort_version,
            "numpy": version("numpy"),
            "opencv": version("cv2"),
            "torchvision": version("torchvision"),
            "triton": version("triton"),
        },
        "onnxruntime_providers": providers,
    }
