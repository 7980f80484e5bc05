"""``facecolor-batch IN OUT --ray [ADDRESS]``: the runtime's pipeline on a Ray cluster.

    from facecolor.runtime.distributed import colorize_with_ray
    report = colorize_with_ray("s3://archive/scans", "s3://archive/color", address="auto")

The driver (this process) lists the jobs (the runtime's walk for a local IN, one fsspec
listing for a URL IN), skips existing outputs, and hands the rest to Ray Data as rows of
paths. ``map_batches`` sends blocks of ``files_per_task`` rows to a fixed pool of actors
(``ActorPoolStrategy``), each holding one backend opened once: one GPU per actor when the
cluster has GPUs, ``cpus_per_actor`` CPUs otherwise. An actor runs the runtime's own stages
over its block (``ChunkRunner``: read from IN, decode, infer, encode, atomic write, upload to
a URL OUT), so reading, decoding and inference overlap inside every actor while all actors read
in parallel. It returns one row per input (status, reason, bytes written); the driver streams
them into the same ``facecolor-report.json`` and the same exit codes as a single-machine run.

Nothing is lost when a worker dies: actors restart (``max_restarts``) and the block they held
is retried on the new one (``max_task_retries``); outputs it had already written are written
again (atomically, so never half a file), and the result rows come from the attempt that
finished. A rerun skips every output that exists.

The model travels with the job: the driver reads the file once into Ray's object store and
each node writes it into its facecolor cache (keyed by SHA-256), so workers need the package,
not the model file.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path, PurePath
from typing import Any

from facecolor.runtime.distributed.chunk import ChunkRunner, add_stats
from facecolor.runtime.distributed.jobs import job_row, list_jobs, row_job
from facecolor.runtime.distributed.storage import Storage, open_storage
from facecolor.runtime.distributed.storage_run import (
    backend_info,
    check_locations,
    output_lock,
    write_report,
)
from facecolor.runtime.pipeline import DONE, FatalError, Item, Settings, StageStats, failure_reason, finishing
from facecolor.runtime.report import Report
from facecolor.runtime.walk import FAILED, display

#: Test hook: each actor's first life exits (as if killed) after writing this many files ...
FAULT_EXIT_AFTER_ENV = "FACECOLOR_RAY_FAULT_EXIT_AFTER"
#: ... and, when this names a file, only the first actor to get there, once per run.
FAULT_MARKER_ENV = "FACECOLOR_RAY_FAULT_MARKER"
DEFAULT_BATCH = {"cpu": 8, "cuda": 64}
#: Files per Ray task, in inference batches: large enough that the stages inside an actor
#: overlap for most of a task, small enough that a retried task redoes little.
BATCHES_PER_TASK = 8
DEFAULT_MAX_RESTARTS = 4


class RayUnavailable(FatalError):
    """Ray (or Ray Data) is not installed, or the cluster cannot be reached or used."""


class ClusterTooSmall(RayUnavailable):
    """The cluster has fewer CPUs or GPUs than the requested actors need."""


def _import_ray():
    try:
        import ray
        import ray.data  # noqa: F401 - Ray Data is the part we need
    except ImportError as error:
        raise RayUnavailable("--ray needs Ray Data: pip install 'facecolor[ray]' (ray[data], fsspec, s3fs)") from error
    return ray


# --------------------------------------------------------------------------- the model


@dataclass(frozen=True)
class ModelShipment:
    """A model file in Ray's object store; ``materialize`` puts it on the worker's disk.

    The reference sits inside a list so Ray does not resolve it when the actor is built: the
    constructor arguments stay small, and the driver keeps the object alive for restarts.
    """

    name: str
    sha256: str
    ref: list

    def materialize(self) -> Path:
        from facecolor.export.cache import cache_root
        # write_atomically: a unique temporary name, since actors on one node race for it
        from facecolor.files import sha256_file, write_atomically

        target = cache_root() / "ray-models" / self.sha256[:16] / self.name
        if target.is_file() and sha256_file(target) == self.sha256:
            return target
        import ray

        data = ray.get(self.ref[0])
        write_atomically(target, lambda tmp: tmp.write_bytes(data))
        return target


def ship_model(path: Path) -> ModelShipment:
    import ray

    from facecolor.files import sha256_file

    return ModelShipment(path.name, sha256_file(path), [ray.put(path.read_bytes())])


# --------------------------------------------------------------------------- the actor


def _limit_threads(backend, threads: int):
    """Keep a CPU backend to the actor's own CPUs (two actors on two cores must not each
    start a pool as wide as the machine). ONNX Runtime's pool is fixed when its session is
    built, so the session is rebuilt with the same file, size and model info."""
    if backend.device != "cpu":
        return backend
    if backend.name == "onnxruntime-cpu":
        from facecolor.runtime.backends.onnxruntime import OnnxRuntimeBackend

        limited = OnnxRuntimeBackend(backend.path, device="cpu", render_size=backend.render_size,
                                     threads=threads, model=backend.model)
        backend.close()
        return limited
    import torch

    torch.set_num_threads(threads)
    return backend


class ColorizeActor:
    """One Ray Data actor: a backend opened once, the runtime's stages run per block of jobs."""

    def __init__(
        self,
        *,
        model: ModelShipment,
        device: str,
        batch_size: int,
        render_size: int | None,
        threads: int,
        settings: Settings,
        in_store: Storage,
        out_store: Storage,
        fault_exit_after: int | None = None,
        fault_marker: str | None = None,
    ) -> None:
        import ray

        from facecolor.runtime.backends import open_backend

        context = ray.get_runtime_context()
        with warnings.catch_warnings():  # Ray 2.6x warns about an attribute it reads inside
            warnings.simplefilter("ignore", DeprecationWarning)
            restarted = bool(context.was_current_actor_reconstructed)
        backend, reason = open_backend(model.materialize(), device, batch_size=batch_size, render_size=render_size)
        self.backend = _limit_threads(backend, threads)
        self.info = {**backend_info(self.backend, reason), "model": self.backend.model.as_dict(),
                     "actor": context.get_actor_id()[:12], "node": context.get_node_id()[:12],
                     "restarted": restarted,
                     "ready_at": round(time.time(), 3)}  # epoch seconds: when this actor could start
        self._written = 0
        self._fault_after = None if restarted else fault_exit_after
        self._fault_marker = fault_marker
        after = self._count_and_maybe_die if self._fault_after else None
        self.runner = ChunkRunner(settings, self.backend, in_store, out_store, after_item=after)
        self._in_store, self._out_store = in_store, out_store

    def _count_and_maybe_die(self, item: Item) -> None:
        """Fault injection (tests): exit hard, mid-block, like a killed worker."""
        if item.status not in (None, DONE):
            return
        self._written += 1
        if self._written < self._fault_after:
            return
        if self._fault_marker:
            try:
                os.close(os.open(self._fault_marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                return  # another actor already died for this run
        os._exit(77)

    def __call__(self, batch: Mapping[str, Any]) -> dict[str, list]:
        jobs = [row_job(relative, output, fmt, self._in_store, self._out_store)
                for relative, output, fmt in zip(batch["relative"], batch["output"], batch["out_format"])]
        out: dict[str, list] = {"relative": [], "status": [], "reason": [], "stage": [], "size": [], "meta": []}
        cpu_start = time.process_time()  # this actor's CPU time, all its threads
        for item in self.runner.run(jobs):
            out["relative"].append(os.fsencode(str(item.job.relative)))
            out["status"].append(item.status or DONE)
            out["reason"].append(item.reason)
            out["stage"].append(item.stage)
            out["size"].append(int(item.size))
            out["meta"].append("")
        if out["meta"]:  # this block's stage timings and the actor's backend ride on one row
            stats = {name: asdict(s) for name, s in self.runner.last_stats.items()}
            out["meta"][0] = json.dumps({"backend": self.info, "stats": stats,
                                         "cpu_s": round(time.process_time() - cpu_start, 3)})
        return out

    def __del__(self) -> None:
        runner = getattr(self, "runner", None)
        if runner is not None:
            runner.close()


# --------------------------------------------------------------------------- the driver


@dataclass(frozen=True)
class ActorPlan:
    """How many actors, and what each one reserves."""

    num_actors: int
    num_cpus: float
    num_gpus: float
    device: str  # what each actor's backend runs on: 'cuda' or 'cpu'

    def describe(self) -> str:
        cpus = f"{self.num_cpus:g} CPU{'s' if self.num_cpus != 1 else ''}"
        each = f"1 GPU + {cpus}" if self.num_gpus else cpus
        kind = "GPU" if self.num_gpus else "CPU"
        return f"{self.num_actors} {kind} actor{'s' if self.num_actors != 1 else ''} ({each} each)"


def plan_actors(
    resources: Mapping[str, float], device: str, num_actors: int | None, cpus_per_actor: float | None
) -> ActorPlan:
    """Actors for a cluster with ``resources`` (``ray.cluster_resources()``).

    GPUs present (and ``device`` auto or cuda): one actor per GPU by default, each with
    ``cpus_per_actor`` CPUs for its decode and encode threads (default: the cluster's CPUs
    per GPU, less one for Ray Data, at most 8). No GPUs or ``device`` cpu: CPU actors of
    ``cpus_per_actor`` CPUs (default 1), as many as fit.
    """
    cpus, gpus = float(resources.get("CPU", 0)), float(resources.get("GPU", 0))
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda, not {device!r}")
    if device == "cuda" and gpus < 1:
        raise ClusterTooSmall("--device cuda, but the Ray cluster has no GPUs: use --device auto or cpu, "
                              "or add GPU nodes")
    if num_actors is not None and num_actors < 1:
        raise ValueError("num_actors must be at least 1")
    if device != "cpu" and gpus >= 1:
        per_cpu = cpus_per_actor or max(1, min(8, int(cpus // gpus) - 1))
        plan = ActorPlan(num_actors or int(gpus), per_cpu, 1, "cuda")
        if plan.num_actors > gpus:
            raise ClusterTooSmall(f"{plan.num_actors} GPU actors need {plan.num_actors} GPUs; the cluster has "
                                  f"{gpus:g}: pass --num-actors {int(gpus)} or add GPU nodes")
    else:
        per_cpu = cpus_per_actor or 1
        plan = ActorPlan(num_actors or max(1, int(cpus // per_cpu)), per_cpu, 0, "cpu")
    if plan.num_actors * plan.num_cpus > cpus:
        raise ClusterTooSmall(
            f"{plan.describe()} need {plan.num_actors * plan.num_cpus:g} CPUs; the cluster has {cpus:g}: "
            f"lower --num-actors or --cpus-per-actor, or add nodes"
        )
    return plan


def _connect(address: str | None):
    """``ray.init`` unless this process is already connected; returns (ray, started_here)."""
    ray = _import_ray()
    if ray.is_initialized():
        return ray, False
    options: dict[str, Any] = {"logging_level": "WARNING"}
    if address is None and not os.environ.get("RAY_ADDRESS"):
        options["include_dashboard"] = False  # a private local instance; clusters keep their own
    try:
        ray.init(address=address, **options)
    except Exception as error:  # ConnectionError, RuntimeError, ...
        raise RayUnavailable(f"cannot connect to Ray at {address or 'a new local instance'}: {error}; "
                             "check the address (ray status on the head node) or omit it for a local run") from error
    return ray, True


def _map_with_actors(dataset, plan: ActorPlan, files_per_task: int, constructor: dict, max_restarts: int):
    """``map_batches`` onto a fixed pool of ColorizeActors that restart and retry their task."""
    from ray.data import ActorPoolStrategy

    options = dict(batch_size=files_per_task, batch_format="numpy", compute=ActorPoolStrategy(size=plan.num_actors),
                   num_cpus=plan.num_cpus, num_gpus=plan.num_gpus or None, fn_constructor_kwargs=constructor)
    retries = dict(max_restarts=max_restarts, max_task_retries=max_restarts)
    with warnings.catch_warnings():
        # Ray 2.5x-2.6x mark remote args passed as keywords deprecated, yet they are the only way
        # to bound restarts and retries in map_batches. A Ray that no longer takes them runs
        # with Ray Data's own default for actor pools: restart and retry without limit.
        warnings.filterwarnings("ignore", message=".*ray_remote_args.*deprecated")
        try:
            return dataset.map_batches(ColorizeActor, **options, **retries)
        except TypeError as error:
            if "max_restarts" not in str(error) and "max_task_retries" not in str(error):
                raise
            return dataset.map_batches(ColorizeActor, **options)


#: Jobs turned into Ray blocks at a time: the driver never holds more than this many rows as
#: dicts; the blocks themselves live in the object store (which spills to disk).
ROWS_PER_CHUNK = 65536


def _dataset(ray, rows: list[tuple], files_per_task: int):
    """Blocks of ``files_per_task`` rows (one Ray task each), built chunk by chunk; ``rows`` is
    emptied on the way."""
    chunk = max(files_per_task, ROWS_PER_CHUNK // files_per_task * files_per_task)
    parts = []
    for start in range(0, len(rows), chunk):
        items = [{"relative": r, "output": o, "out_format": f} for r, o, f in rows[start:start + chunk]]
        parts.append(ray.data.from_items(items, override_num_blocks=math.ceil(len(items) / files_per_task)))
    rows.clear()
    return parts[0] if len(parts) == 1 else parts[0].union(*parts[1:])


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _ray_failure(error: BaseException) -> BaseException:
    """The error to report for a failed Ray Data run: our own fatal error when an actor raised
    one, else a FatalError whose message names the real cause, not Ray's wrappers."""
    chain, seen = [], set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        chain.append(error)
        inner = getattr(error, "cause", None)
        error = inner if isinstance(inner, BaseException) else (error.__cause__ or error.__context__)
    for link in chain:  # a RayTaskError carries the actor's own exception
        cause = getattr(link, "cause", None)
        if isinstance(cause, FatalError):
            return cause
        if isinstance(cause, BaseException) and not type(cause).__module__.startswith("ray"):
            return FatalError(f"an actor failed: {failure_reason(cause)}")
    for link in chain:  # an actor that died: its message holds the traceback or the reason
        if hasattr(link, "actor_init_failed"):
            lines = [line.strip() for line in _ANSI.sub("", str(link)).splitlines() if line.strip()]
            if link.actor_init_failed:
                return FatalError(f"an actor could not start: {lines[-1] if lines else link}")
            return FatalError(f"a worker died more often than max_restarts allows: {' '.join(lines[:2])}")
    text = next((str(link).strip() for link in chain if str(link).strip()), "")
    return FatalError(f"the Ray job failed: {type(chain[0]).__name__}: {text.splitlines()[0] if text else ''}")


@dataclass(frozen=True)
class _JobName:
    relative: PurePath


@dataclass
class _Result:
    """A finished job as ``Report.add`` reads it (duck-typed like a pipeline Item)."""

    job: Any
    status: str
    reason: str
    stage: str
    size: int


def colorize_with_ray(
    in_url: str | Path,
    out_url: str | Path,
    *,
    model: str | Path | None = None,
    address: str | None = None,
    device: str = "auto",
    num_actors: int | None = None,
    cpus_per_actor: float | None = None,
    batch_size: int | None = None,
    files_per_task: int | None = None,
    render_size: int | None = None,
    out_format: str = "keep",
    quality: int = 95,
    overwrite: bool = False,
    max_pixels: int | None = None,
    storage_options: Mapping[str, Any] | None = None,
    max_restarts: int = DEFAULT_MAX_RESTARTS,
    progress: bool = False,
    echo: Callable[[str], None] | None = None,
    announce: Callable[[str], None] | None = None,
) -> Report:
    """Colorize IN into OUT with a pool of Ray actors; return the Report (also in OUT).

    ``address``: a Ray cluster (``"auto"``, ``"ray://head:10001"``, ``"head:6379"``); None
    uses ``RAY_ADDRESS`` or starts a local instance; a process already connected keeps its
    connection. IN and OUT: local folders (at the same path on every node) or URLs, with
    ``storage_options`` for fsspec. ``max_restarts``: how often an actor may be restarted and
    its block retried. ``announce`` gets the plan line, then the backend line once the first
    actor has opened its backend; ``echo`` each failed input (default: stderr). Ray is not
    contacted when every output exists already.

    Raises ``RayUnavailable``/``ClusterTooSmall``, ``LocationError``/``DirectoryError``,
    ``ModelNotFound`` and ``FatalError`` (the report is written before a fatal error propagates).
    """
    from facecolor.runtime.backends import ModelNotFound, shipped_model
    from facecolor.runtime.decode import DEFAULT_MAX_PIXELS

    in_store, out_store = open_storage(in_url, storage_options), open_storage(out_url, storage_options)
    check_locations(in_store, out_store)
    model_path = Path(model) if model is not None else shipped_model()
    if not model_path.is_file():
        raise ModelNotFound(f"model not found: {model_path}")
    settings = Settings(
        in_dir=in_store.location, out_dir=out_store.location, out_format=out_format, quality=quality,
        overwrite=overwrite, batch_size=batch_size or 0, workers=0, max_pixels=max_pixels or DEFAULT_MAX_PIXELS,
    )
    job = _RayJob(settings, in_store, out_store, model_path, address, device, num_actors, cpus_per_actor,
                  files_per_task, render_size, max_restarts, progress,
                  echo or (lambda line: print(line, file=sys.stderr)), announce or (lambda line: None))
    with output_lock(out_store):
        return job.run()


@dataclass
class _RayJob:
    """One ``colorize_with_ray`` call: the listing, the Ray Data pipeline, the report."""

    settings: Settings  # batch_size 0 and workers 0: decided by the actor plan
    in_store: Storage
    out_store: Storage
    model_path: Path
    address: str | None
    device: str
    num_actors: int | None
    cpus_per_actor: float | None
    files_per_task: int | None
    render_size: int | None
    max_restarts: int
    progress: bool
    echo: Callable[[str], None]
    announce: Callable[[str], None]

    def run(self) -> Report:
        report = Report(settings=self.settings.as_dict(), backend={}, model={"source": str(self.model_path)})
        stats: dict[str, StageStats] = {}
        with finishing(report, lambda: stats, lambda done: write_report(done, self.out_store)):
            rows: list[tuple] = []  # (relative, output, format): about 150 bytes per job
            jobs = list_jobs(self.in_store, self.out_store, self.settings.out_format, overwrite=self.settings.overwrite)
            for job in jobs:
                if job.status is not None:
                    report.add(_Result(job, job.status, job.reason, "walk", 0))
                else:
                    rows.append(tuple(job_row(job, self.out_store).values()))
            if rows:
                self._run_on_ray(rows, report, stats)
        return report

    def _run_on_ray(self, rows: list[tuple], report: Report, stats: dict[str, StageStats]) -> None:
        from tqdm import tqdm

        ray, started = _connect(self.address)
        try:
            plan = plan_actors(ray.cluster_resources(), self.device, self.num_actors, self.cpus_per_actor)
            settings = replace(self.settings, batch_size=self.settings.batch_size or DEFAULT_BATCH[plan.device],
                               workers=max(1, int(plan.num_cpus)))
            files_per_task = self.files_per_task or BATCHES_PER_TASK * settings.batch_size
            report.settings = {**settings.as_dict(), "ray": plan.__dict__, "files_per_task": files_per_task}
            self.announce(f"ray: {plan.describe()}, {settings.batch_size} images per batch, "
                          f"{files_per_task} per task, model {self.model_path.name}")
            bar = tqdm(total=len(rows), unit="img", file=sys.stderr, disable=None if self.progress else True,
                       dynamic_ncols=True)
            try:
                for result in self._results(ray, plan, settings, rows, files_per_task, report, stats):
                    report.add(result)
                    if result.status == FAILED:
                        bar.clear()
                        self.echo(f"failed: {display(result.job.relative)}: {result.reason}")
                    bar.update(1)
            finally:
                bar.close()
        finally:
            if started:
                ray.shutdown()

    def _results(self, ray, plan: ActorPlan, settings: Settings, rows, files_per_task: int, report, stats):
        """Yield a _Result per row, as the actors finish their blocks."""
        from ray.data import DataContext

        context = DataContext.get_current()
        context.enable_progress_bars = False  # the driver draws its own bar
        context.print_on_execution_start = False
        shipment = ship_model(self.model_path)  # referenced here until the last block is in
        fault_after = os.environ.get(FAULT_EXIT_AFTER_ENV)
        dataset = _dataset(ray, rows, files_per_task)
        constructor = {
            "model": shipment,
            "device": plan.device,
            "batch_size": settings.batch_size,
            "render_size": self.render_size,
            "threads": max(1, int(plan.num_cpus)),
            "settings": settings,
            "in_store": self.in_store,
            "out_store": self.out_store,
            "fault_exit_after": int(fault_after) if fault_after else None,
            "fault_marker": os.environ.get(FAULT_MARKER_ENV) or None,
        }
        dataset = _map_with_actors(dataset, plan, files_per_task, constructor, self.max_restarts)
        backends: dict[str, dict] = {}
        try:
            for block in dataset.iter_batches(batch_size=None, batch_format="numpy"):
                for meta in block["meta"]:
                    if meta:
                        _merge_meta(json.loads(meta), report, stats, backends, self.announce)
                for relative, status, reason, stage, size in zip(
                    block["relative"], block["status"], block["reason"], block["stage"], block["size"]
                ):
                    yield _Result(_JobName(PurePath(os.fsdecode(bytes(relative)))), str(status), str(reason),
                                  str(stage), int(size))
        except Exception as error:
            raise _ray_failure(error) from error


def _merge_meta(meta: dict, report: Report, stats: dict[str, StageStats], backends: dict, announce) -> None:
    """Fold one block's stage timings into the run's; record each actor (node, when it was
    ready, whether it was restarted, CPU seconds its blocks took) and announce the backend the
    first one chose."""
    for name, numbers in meta.get("stats", {}).items():
        add_stats(stats.setdefault(name, StageStats()), numbers)
    info = dict(meta.get("backend") or {})
    model = info.pop("model", {})
    actor = {key: info.pop(key, None) for key in ("actor", "node", "restarted", "ready_at")}
    actors = report.backend.setdefault("actors", {}) if report.backend else {}
    key = f"{info.get('name')}|{info.get('reason')}|{model.get('sha256')}"
    if key not in backends:
        backends[key] = info
        if len(backends) == 1:  # the first actor to answer names the backend, as the CLI's first line
            announce(info.get("reason", ""))
            report.backend = {k: info[k] for k in ("name", "device", "render_size", "max_batch", "reason") if k in info}
            report.model = {**model, "source": report.model.get("source", "")}
            actors = report.backend.setdefault("actors", actors)
        else:  # nodes that chose differently (e.g. a node without TensorRT) are listed too
            report.backend["other_backends"] = list(backends.values())[1:]
    known = actors.get(actor["actor"])
    if known is None or (actor["restarted"] and actor["ready_at"] > known["ready_at"]):
        restarts = known["restarts"] + 1 if known is not None else int(bool(actor["restarted"]))
        cpu_s = known["cpu_s"] if known is not None else 0.0
        known = actors[actor["actor"]] = {"node": actor["node"], "ready_at": actor["ready_at"],
                                          "restarts": restarts, "cpu_s": cpu_s}
    known["cpu_s"] = round(known["cpu_s"] + meta.get("cpu_s", 0.0), 3)  # CPU time spent on blocks
