"""The bench's report: a header naming the machine, rows keyed by backend name, a table for
people and JSON for machines.

Each row carries a status ('ok', 'unavailable: why', 'error: what'), so one backend that
cannot run (TensorRT missing, no GPU) or that fails halfway never hides the others
(ultralytics' benchmark does the same). The JSON holds everything the table shows and more
(standard deviations, colorfulness, per-gate records, skipped files, every setting).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from facecolor.files import utc_now
from facecolor.table import format_table

FORMAT = "facecolor-bench"
FORMAT_VERSION = 1


# --------------------------------------------------------------------------- the report


@dataclass
class Row:

    name: str
    status: str = "ok"  # 'ok', 'unavailable: ...', 'error: ...'
    precision: str | None = None
    device: str | None = None
    backend: str | None = None  # the runtime backend's own name, e.g. 'onnxruntime-cpu'
    artifact: str | None = None  # the file it ran
    latency: list[dict[str, Any]] = field(default_factory=list)
    pipeline: dict[str, Any] | None = None
    parity: dict[str, Any] | None = None
    gates: list[dict[str, Any]] = field(default_factory=list)

    def failed_gates(self) -> list[dict[str, Any]]:
        return [gate for gate in self.gates if gate.get("passed") is False]


@dataclass
class BenchReport:

    system: dict[str, Any]
    settings: dict[str, Any]
    engine: dict[str, Any]
    reference: dict[str, Any]
    created: str = field(default_factory=utc_now)
    data: dict[str, Any] = field(default_factory=dict)
    codec: dict[str, Any] | None = None
    reference_scores: dict[str, Any] | None = None
    fid_note: str = ""
    notes: list[str] = field(default_factory=list)
    rows: dict[str, Row] = field(default_factory=dict)

    @property
    def failures(self) -> list[str]:
        """One line per failed gate ('ort-cpu: max |Δab| = 7.3 > 1 ...') and per backend that
        failed while running ('trt: error: ...'). Unavailable backends are not failures."""
        lines = []
        for name, row in self.rows.items():
            if row.status.startswith("error"):
                lines.append(f"{name}: {row.status}")
            if (row.pipeline or {}).get("status", "").startswith("error"):
                lines.append(f"{name}: pipeline {row.pipeline['status']}")
            lines += [f"{name}: {gate['message']}" for gate in row.failed_gates()]
        return lines

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        return _json_safe({"format": FORMAT, "format_version": FORMAT_VERSION, **asdict(self),
                           "passed": self.passed, "failures": self.failures})


def _json_safe(value: Any) -> Any:
    """NaN/inf -> None (JSON has neither), Paths -> str."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


# --------------------------------------------------------------------------- the table


def _num(value: Any, digits: int = 2, signed: bool = False) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and not math.isfinite(value):
        return "inf"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def _header(report: BenchReport) -> list[str]:
    system = report.system
    versions = system["versions"]
    gpu, load = system.get("gpu"), system.get("load_average")
    gpu_text = (
        f"GPU: {gpu['name']} (sm {gpu['compute_capability']}, {gpu['memory_gib']} GiB, CUDA {gpu['cuda']})"
        if gpu else "GPU: none"
    )
    libs = ", ".join(
        f"{name} {versions[key] or 'not installed'}"
        for name, key in (("torch", "torch"), ("TensorRT", "tensorrt"), ("ONNX Runtime", "onnxruntime"))
    )
    engine, reference, data = report.engine, report.reference, report.data
    lines = [
        f"facecolor bench: {engine['path']} vs reference {reference['path']} ({reference['how']}, "
        f"PyTorch fp32 on {reference['device']})",
        f"CPU: {system['cpu']}, {system['cores']} cores{f' (load {load[0]:.1f} at the start)' if load else ''} "
        f"| {gpu_text}",
        f"{libs} | facecolor {versions['facecolor']}",
    ]
    if data:
        truth = "with ground truth" if data.get("has_truth") else "no ground truth: agreement only"
        lines.append(f"images: {data['source']} ({data['images']} images, {truth}; render {data['render_size']} px)")
    return lines


# Columns of the tables: (header, key in the row's record, digits); digits None shows the value as text.
BACKEND_COLUMNS = (("precision", "precision", None), ("device", "device", None), ("runs as", "backend", None),
                   ("file", "artifact", None), ("status", "status", None))
LATENCY_COLUMNS = (("batch", "batch_size", None), ("runs", "runs", None), ("p50 ms", "p50_ms", 2),
                   ("p90 ms", "p90_ms", 2), ("p99 ms", "p99_ms", 2), ("img/s", "images_per_s", 1),
                   ("status", "status", None))
PIPELINE_COLUMNS = (("images", "images", None), ("batch", "batch_size", None), ("pipeline img/s", "images_per_s", 1),
                    ("codec img/s", "codec_images_per_s", 1), ("pipeline/codec", "ratio", 2), ("status", "status", None))
# (header, part of the parity record, key, digits); the deltas are signed.
PARITY_COLUMNS = (("PSNR", "scores", "psnr", 2), ("ΔPSNR", "delta", "psnr", 3), ("Hist", "scores", "hist", 4),
                  ("ΔHist", "delta", "hist", 4), ("CIEDE2000", "scores", "ciede2000", 2),
                  ("ΔCIEDE", "delta", "ciede2000", 3), ("FID", "scores", "fid", 2),
                  ("max|Δab|", "agreement", "max_dab", 3), ("mean|Δab|", "agreement", "mean_dab", 4),
                  ("PSNR vs ref", "agreement", "psnr", 1))


def _table(columns: tuple, records: list[tuple[str, dict[str, Any]]], right: list[bool] | None = None) -> str:
    rows = [[name, *(str(record.get(key) or "-") if digits is None else _num(record.get(key), digits)
                     for _, key, digits in columns)] for name, record in records]
    return format_table(["backend", *(header for header, _, _ in columns)], rows, right)


def _ran(report: BenchReport) -> list[tuple[str, Row]]:
    """Backends that opened (the others' reasons are in the backends table)."""
    return [(name, row) for name, row in report.rows.items() if row.backend is not None]


def _gpu_lines(report: BenchReport) -> list[str]:
    """nvJPEG's ceiling, and each CUDA row's figure of merit: pipeline / GPU codec, against its target."""
    cuda = (report.codec or {}).get("cuda") or {}
    lines = []
    for step, rate in (cuda.get("nvjpeg_alone") or {}).items():
        lines.append(f"nvJPEG {step} alone of the {rate['images']} JPEGs in memory (no reads or writes, batch "
                     f"{rate['batch_size']}): {_num(rate['images_per_s'], 1)} img/s")
    for name, row in _ran(report):
        pipeline = row.pipeline or {}
        if pipeline.get("target_ratio") and pipeline.get("ratio") is not None:
            met = "met" if pipeline["ratio"] >= pipeline["target_ratio"] else "NOT met"
            lines.append(f"{name}: pipeline / GPU codec {pipeline['ratio']:.2f}, target >= "
                         f"{pipeline['target_ratio']:.2f} (issue 4): {met}")
    return lines


def _parity_table(report: BenchReport) -> str:
    ref = report.reference_scores or {}
    rows = [["reference", *(_num(ref.get(key), digits) if part == "scores" else "-"
                            for _, part, key, digits in PARITY_COLUMNS), ""]] if ref else []
    for name, row in _ran(report):
        if row.parity is None:
            rows.append([name, *["-"] * len(PARITY_COLUMNS), row.status])
            continue
        failed = row.failed_gates()
        gates = "pass" if not failed else "FAIL: " + ", ".join(g["name"] for g in failed)
        rows.append([name, *(_num((row.parity[part] or {}).get(key), digits, part == "delta")
                             for _, part, key, digits in PARITY_COLUMNS), gates])
    return format_table(["backend", *(header for header, *_ in PARITY_COLUMNS), "gates"], rows)


def format_report(report: BenchReport) -> str:
    settings = report.settings
    backends = _table(BACKEND_COLUMNS, [(name, row.__dict__) for name, row in report.rows.items()], [False] * 6)
    parts = ["\n".join(_header(report)), "", "Backends", backends, ""]
    if not _ran(report):
        parts += ["No backend could run here; see the statuses above.", ""]
        return "\n".join(parts)
    parts += [
        f"Latency of the engine alone (after warm-up; runs fill >= {settings['min_time']} s per batch; "
        "img/s = batch / p50)",
        _table(LATENCY_COLUMNS, [(name, result) for name, row in _ran(report) for result in row.latency]), "",
    ]
    if any(row.pipeline for row in report.rows.values()):
        cpu = (report.codec or {}).get("cpu", {})
        synthetic = " synthetic 1024x1280 gray JPEG" if settings.get("pipeline_images") else ""
        parts += [
            f"Pipeline on a folder (read, decode, engine, encode, write), beside the codec alone (the same "
            f"{cpu.get('images', '?')}{synthetic} files in the same run: CPU rows against the CPU codec in "
            f"{cpu.get('threads', '?')} threads, CUDA rows against nvJPEG)",
            _table(PIPELINE_COLUMNS, [(name, row.pipeline or {"status": "not run"}) for name, row in _ran(report)]),
            *_gpu_lines(report), "",
        ]
    parts += [
        "Parity against the reference (scores vs ground truth; Δ = backend - reference; |Δab| in "
        "CIELAB units; PSNR vs ref between the two RGB outputs)",
        _parity_table(report), "",
    ]
    marks = {True: "pass", False: "FAIL", None: "n/a"}
    gate_lines = [f"  {marks[gate['passed']]:<4}  {name}: {gate['message']}"
                  for name, row in report.rows.items() for gate in row.gates]
    if gate_lines:
        parts += ["Gates:", *gate_lines, ""]
    notes = list(report.notes)
    if report.fid_note:
        notes.append(f"FID not computed: {report.fid_note}")
    if notes:
        parts += ["Notes:", *(f"  - {note}" for note in notes), ""]
    if report.passed:
        parts.append("PASSED: every gate holds")
    else:
        parts += [f"FAILED ({len(report.failures)}):", *(f"  {line}" for line in report.failures)]
    return "\n".join(parts)
