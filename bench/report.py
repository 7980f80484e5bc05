"""The bench's report: a header naming the machine, rows keyed by backend name, a table for
people and JSON for machines.

Each row carries a status ('ok', 'unavailable: why', 'error: what'), so one backend that
cannot run (TensorRT missing, no GPU) or that fails halfway never hides the others
(ultralytics' benchmark does the same). The JSON holds everything the table shows and more
(standard deviations, colorfulness, per-gate records, skipped files, every setting).
"""

from __future__ import annotations

import datetime as _dt
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from facecolor.files import write_json
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
    created: str = field(
        default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()
    )
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
        document = {field.name: getattr(self, field.name) for field in fields(self)}
        document["rows"] = {name: row.__dict__ for name, row in self.rows.items()}
        return _json_safe({"format": FORMAT, "format_version": FORMAT_VERSION, **document,
                           "passed": self.passed, "failures": self.failures})

    def write_json(self, path: Path) -> Path:
        return write_json(path, self.to_dict())


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


def _load(system: dict[str, Any]) -> str:
    load = system.get("load_average")
    return f" (load {load[0]:.1f} at the start)" if load else ""


def _header(report: BenchReport) -> list[str]:
    system = report.system
    versions = system["versions"]
    gpu = system.get("gpu")
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
        f"CPU: {system['cpu']}, {system['cores']} cores{_load(system)} | {gpu_text}",
        f"{libs} | facecolor {versions['facecolor']}",
    ]
    if data:
        truth = "with ground truth" if data.get("has_truth") else "no ground truth: agreement only"
        lines.append(f"images: {data['source']} ({data['images']} images, {truth}; render {data['render_size']} px)")
    return lines


def _backends_table(report: BenchReport) -> str:
    rows = [
        [name, row.precision or "-", row.device or "-", row.backend or "-", row.artifact or "-", row.status]
        for name, row in report.rows.items()
    ]
    return format_table(["backend", "precision", "device", "runs as", "file", "status"], rows, [False] * 6)


def _ran(report: BenchReport) -> list[tuple[str, Row]]:
    """Backends that opened (the others' reasons are in the backends table)."""
    return [(name, row) for name, row in report.rows.items() if row.backend is not None]


def _latency_table(report: BenchReport) -> str:
    rows = []
    for name, row in _ran(report):
        for result in row.latency:
            rows.append([
                name, str(result["batch_size"]), str(result["runs"] or "-"), _num(result["p50_ms"]),
                _num(result["p90_ms"]), _num(result["p99_ms"]), _num(result["images_per_s"], 1), result["status"],
            ])
    headers = ["backend", "batch", "runs", "p50 ms", "p90 ms", "p99 ms", "img/s", "status"]
    return format_table(headers, rows)


def _pipeline_table(report: BenchReport) -> str:
    rows = []
    for name, row in _ran(report):
        pipeline = row.pipeline or {}
        rows.append([
            name, str(pipeline.get("images") or "-"), str(pipeline.get("batch_size") or "-"),
            _num(pipeline.get("images_per_s"), 1), _num(pipeline.get("codec_images_per_s"), 1),
            _num(pipeline.get("ratio"), 2), pipeline.get("status", "not run"),
        ])
    headers = ["backend", "images", "batch", "pipeline img/s", "codec img/s", "pipeline/codec", "status"]
    return format_table(headers, rows)


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
    rows = []
    ref = report.reference_scores or {}
    if ref:
        rows.append(["reference", _num(ref.get("psnr")), "-", _num(ref.get("hist"), 4), "-",
                     _num(ref.get("ciede2000")), "-", _num(ref.get("fid")), "-", "-", "-", ""])
    for name, row in _ran(report):
        parity = row.parity
        if parity is None:
            rows.append([name, *["-"] * 10, row.status])
            continue
        scores, delta, agree = parity.get("scores") or {}, parity["delta"], parity["agreement"]
        failed = row.failed_gates()
        gates = "pass" if not failed else "FAIL: " + ", ".join(g["name"] for g in failed)
        rows.append([
            name, _num(scores.get("psnr")), _num(delta.get("psnr"), 3, True), _num(scores.get("hist"), 4),
            _num(delta.get("hist"), 4, True), _num(scores.get("ciede2000")), _num(delta.get("ciede2000"), 3, True),
            _num(scores.get("fid")), _num(agree["max_dab"], 3), _num(agree["mean_dab"], 4),
            _num(agree["psnr"], 1), gates,
        ])
    headers = ["backend", "PSNR", "ΔPSNR", "Hist", "ΔHist", "CIEDE2000", "ΔCIEDE", "FID",
               "max|Δab|", "mean|Δab|", "PSNR vs ref", "gates"]
    return format_table(headers, rows)


def format_report(report: BenchReport) -> str:
    settings = report.settings
    parts = ["\n".join(_header(report)), "", "Backends", _backends_table(report), ""]
    if not _ran(report):
        parts += ["No backend could run here; see the statuses above.", ""]
        return "\n".join(parts)
    parts += [
        f"Latency of the engine alone (after warm-up; runs fill >= {settings['min_time']} s per batch; "
        "img/s = batch / p50)",
        _latency_table(report), "",
    ]
    if any(row.pipeline for row in report.rows.values()):
        cpu = (report.codec or {}).get("cpu", {})
        synthetic = " synthetic 1024x1280 gray JPEG" if settings.get("pipeline_images") else ""
        parts += [
            f"Pipeline on a folder (read, decode, engine, encode, write), beside the codec alone (the same "
            f"{cpu.get('images', '?')}{synthetic} files in the same run: CPU rows against the CPU codec in "
            f"{cpu.get('threads', '?')} threads, CUDA rows against nvJPEG)",
            _pipeline_table(report), *_gpu_lines(report), "",
        ]
    parts += [
        "Parity against the reference (scores vs ground truth; Δ = backend - reference; |Δab| in "
        "CIELAB units; PSNR vs ref between the two RGB outputs)",
        _parity_table(report), "",
    ]
    gate_lines = []
    for name, row in report.rows.items():
        for gate in row.gates:
            mark = {True: "pass", False: "FAIL", None: "n/a"}[gate["passed"]]
            gate_lines.append(f"  {mark:<4}  {name}: {gate['message']}")
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
