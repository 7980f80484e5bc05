"""One bench run: reference, images, then each backend's parity, latency and pipeline rate.

Backends run one after another, each opened, measured and closed before the next (a GPU
holds one engine at a time). A backend that cannot open is an 'unavailable' row; one that
fails halfway is an 'error' row; the run goes on either way.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from facecolor.bench import gates as gates_module
from facecolor.bench import parity as parity_module
from facecolor.bench import BenchError, measure, targets
from facecolor.bench.latency import LatencySettings, measure_latency
from facecolor.bench.report import BenchReport, Row
from facecolor.errors import Unavailable
from facecolor.machine import system_info
from facecolor.runtime.backends import select
from facecolor.runtime.pipeline import failure_reason

Progress = Callable[[str], None]


@dataclass(frozen=True)
class BenchSettings:
    engine: Path
    reference: Path | None = None
    data: Path | None = None
    compare: tuple[str, ...] | None = None  # None: the engine's own backends
    device: str = "auto"
    limit: int | None = None
    fid_weights: Path | None = None
    pipeline: bool = True
    pipeline_images: int | None = None  # None: the parity images
    latency: LatencySettings = field(default_factory=LatencySettings)
    gates: gates_module.GateSettings = field(default_factory=gates_module.GateSettings)


class _Run:
    """State shared by the backends of one run: reference outputs, images, FID, codec rate."""

    def __init__(self, settings: BenchSettings, progress: Progress, workdir: Path) -> None:
        self.settings, self.progress, self.workdir = settings, progress, workdir
        self.engine = targets.check_engine(settings.engine)
        self.device = select.resolve_device(settings.device)
        if self.device == "cuda" and not select.cuda_available():
            raise BenchError("--device cuda, but torch sees no CUDA device; use --device cpu or auto")
        self.names = list(settings.compare or targets.default_targets(self.engine, self.device))
        self.reference = targets.resolve_reference(self.engine, settings.reference)

    def prepare(self, report: BenchReport) -> None:
        self.progress(f"reference: PyTorch fp32 on {self.device} ({self.reference.path})")
        try:
            backend = select.open_kind("torch", self.reference.path, self.device, precision="fp32", max_batch=0)
        except Unavailable as error:
            raise BenchError(f"the reference {self.reference.path} cannot run: {error}") from error
        try:
            self.images = parity_module.load_parity_images(
                self.settings.data, backend.render_size, limit=self.settings.limit
            )
            self.progress(f"images: {len(self.images)} from {self.images.source}")
            with targets.true_fp32():
                self.reference_out = parity_module.predict_parity(backend, self.images)
        finally:
            backend.close()
        self.fid = parity_module.fid_scorer(self.images, self.settings.fid_weights, self.workdir, self.device)
        self.reference_scores = report.reference_scores = parity_module.truth_scores(
            self.reference_out, self.images, self.fid.score("reference", self.reference_out.rgb))
        report.data = {
            "source": self.images.source,
            "images": len(self.images),
            "has_truth": self.images.has_truth,
            "render_size": self.images.render_size,
            "names": self.images.names,
            "skipped": self.images.skipped,
        }
        if self.settings.pipeline:
            self.folder = measure.prepare_folder(self.images, self.workdir, self.settings.pipeline_images)
            self.progress(f"codec alone: decode + encode of {len(self.folder.files)} files on the CPU")
            self.codec = report.codec = {"cpu": measure.codec_rate(self.folder, self.workdir)}

    def run_target(self, name: str) -> Row:
        spec = targets.TARGETS[name]
        row = Row(name=name, device=spec.device or self.device, precision=spec.precision)
        self.progress(f"{name}: opening")
        try:
            backend, artifact, row.precision = targets.open_target(name, self.engine, self.reference.path,
                                                                   self.device, max(self.settings.latency.batch_sizes))
        except Exception as error:  # noqa: BLE001 - every failure becomes the row's status
            unavailable = isinstance(error, Unavailable)
            row.status = f"unavailable: {error}" if unavailable else f"error: {failure_reason(error)}"
            return row
        row.backend, row.artifact = backend.name, str(artifact)
        try:
            self.progress(f"{name}: parity on {len(self.images)} images")
            outputs = parity_module.predict_parity(backend, self.images)
            row.parity = parity_module.parity_record(outputs, self.reference_out, self.images, self.reference_scores,
                                                     self.fid.score(name, outputs.rgb))
            gates = gates_module.check_gates(row.parity, row.precision or "fp16", self.settings.gates)
            row.gates = [gate.to_dict() for gate in gates]
            self.progress(f"{name}: latency at batch sizes {', '.join(map(str, self.settings.latency.batch_sizes))}")
            parity_batch = min(parity_module.PARITY_BATCH, backend.max_batch or parity_module.PARITY_BATCH,
                               len(self.images))
            results = measure_latency(backend, self.settings.latency, already_ran=parity_batch)
            row.latency = [dataclasses.asdict(result) for result in results]
            if self.settings.pipeline:
                row.pipeline = self._pipeline(name, backend)
        except Exception as error:  # noqa: BLE001 - record it, go on with the next backend
            row.status = f"error: {failure_reason(error)}"
        finally:
            backend.close()
        return row

    def _pipeline(self, name: str, backend) -> dict[str, Any]:
        """The folder pipeline's rate; its failure is recorded in its status, not the row's."""
        self.progress(f"{name}: pipeline on {len(self.folder.files)} files")
        try:
            if backend.device not in self.codec:  # the GPU codec, once, for the first CUDA row
                self.progress(f"codec alone: nvJPEG decode + encode of {len(self.folder.files)} files, then in memory")
                self.codec[backend.device] = measure.gpu_codec_rate(self.folder, self.workdir)
            return measure.pipeline_rate(backend, self.folder, self.workdir, self.codec[backend.device])
        except Unavailable as error:
            return {"status": f"unavailable: {error}"}
        except Exception as error:  # noqa: BLE001 - a runtime failure with this backend
            return {"status": f"error: {failure_reason(error)}"}


def run_bench(settings: BenchSettings, progress: Progress | None = None) -> BenchReport:
    """Raises BenchError (bad engine path, no reference, no images, reference cannot run), never
    for one backend's failure."""
    progress = progress or (lambda message: None)
    with tempfile.TemporaryDirectory(prefix="facecolor-bench-") as folder:
        run = _Run(settings, progress, Path(folder))
        report = BenchReport(
            system=system_info(),
            settings={
                "batch_sizes": list(settings.latency.batch_sizes),
                "min_time": settings.latency.min_time,
                "min_runs": settings.latency.min_runs,
                "device": run.device,
                "compare": run.names,
                "limit": settings.limit,
                "pipeline": settings.pipeline,
                "pipeline_images": settings.pipeline_images,
                "gates": {**dataclasses.asdict(settings.gates), "default_max_dab": gates_module.DEFAULT_MAX_DAB},
                "fid_weights": str(settings.fid_weights) if settings.fid_weights else None,
            },
            engine={"path": str(run.engine), "kind": run.engine.suffix.lower().lstrip(".")},
            reference={
                "path": str(run.reference.path),
                "how": run.reference.how,
                "sha256": run.reference.sha256,
                "device": run.device,
                "precision": "fp32",
            },
        )
        if run.reference.warning:
            report.notes.append(run.reference.warning)
        run.prepare(report)
        for name in run.names:
            report.rows[name] = run.run_target(name)
        report.fid_note = run.fid.note
    return report
