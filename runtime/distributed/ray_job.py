"""``facecolor-batch IN OUT --ray [ADDRESS]``: the runtime's stages on a Ray cluster.

Only how batches execute changes (docs/ray.md): the jobs still to do become Ray Data rows of
paths, sent a block of ``files_per_task`` at a time to a fixed pool of actors, each with one
backend opened once and running the runtime's own ``ThreadExecutor`` over its block. Nothing
is lost when a worker dies: actors restart and the block they held is retried (outputs are
written atomically, so a retried block rewrites whole files only). The model travels through
Ray's object store, so workers need the package, not the model file.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch

from facecolor.errors import Unavailable
from facecolor.export.cache import cache_root
from facecolor.files import sha256_file, write_atomically
from facecolor.runtime.backends import open_backend, shipped_model
from facecolor.runtime.backends.select import ModelNotFound
from facecolor.runtime.executor import ThreadExecutor, backend_info, default_batch
from facecolor.runtime.pipeline import DONE, FatalError, Item, Settings, StageStats, failure_reason
from facecolor.runtime.report import Report
from facecolor.runtime.storage import Storage
from facecolor.runtime.walk import job_row, row_job

#: Files per Ray task, in inference batches: large enough that the stages inside an actor
#: overlap for most of a task, small enough that a retried task redoes little.
BATCHES_PER_TASK = 8
#: An actor's columns, one row per input; beside them, the actor's identity on every row and the
#: block's numbers (``cpu_s`` and ``stage:NAME:FIELD`` per ``StageStats`` field) on its first row.
RESULT_COLUMNS = ("relative", "output", "out_format", "status", "reason", "stage", "size")
_STAGE_COLUMN = "stage:"


class ClusterTooSmall(FatalError):
    """The cluster has fewer CPUs or GPUs than the requested actors need."""


def _import_ray():
    try:
        import ray
        import ray.data  # noqa: F401 - Ray Data is the part we need
    except ImportError as error:
        raise Unavailable("--ray needs Ray Data: pip install 'facecolor[ray]' (ray[data], fsspec, s3fs)") from error
    return ray


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
        # write_atomically: a unique temporary name, since actors on one node race for it
        target = cache_root() / "ray-models" / self.sha256[:16] / self.name
        if target.is_file() and sha256_file(target) == self.sha256:
            return target
        import ray

        write_atomically(target, ray.get(self.ref[0]))
        return target


class ColorizeActor:
    """One Ray Data actor: a backend opened once, the runtime's stages run per block of jobs."""

    def __init__(self, *, model: ModelShipment, device: str, render_size: int | None, settings: Settings,
                 in_store: Storage, out_store: Storage) -> None:
        import ray

        context = ray.get_runtime_context()
        with warnings.catch_warnings():  # Ray 2.6x warns about an attribute it reads inside
            warnings.simplefilter("ignore", DeprecationWarning)
            self.restarted = bool(context.was_current_actor_reconstructed)
        # The backend keeps to the actor's own CPUs: two actors on two cores must not each start
        # a thread pool as wide as the machine.
        self.backend, reason = open_backend(model.materialize(), device, batch_size=settings.batch_size,
                                            render_size=render_size, threads=settings.workers)
        if self.backend.device == "cpu":
            torch.set_num_threads(settings.workers)
        info = backend_info(self.backend, reason)
        # One column each (strings and numbers Arrow can hold); max_batch 0 means no limit.
        self.identity = {
            "actor": context.get_actor_id()[:12], "node": context.get_node_id()[:12], "restarted": self.restarted,
            "ready_at": round(time.time(), 3),  # epoch seconds: when this actor could start
            **{f"backend_{key}": value or 0 if key == "max_batch" else value for key, value in info.items()},
            "model_preset": self.backend.model.preset, "model_sha256": self.backend.model.sha256,
        }
        self.runner = ThreadExecutor(self.backend, reason)
        self._settings, self._in_store, self._out_store = settings, in_store, out_store

    def finished_items(self, jobs: list) -> Iterator[Item]:
        """Every job of the block once finished (tests override this to kill the worker)."""
        items = (Item.from_job(job) for job in jobs)
        return self.runner.run(self._settings, items, self._in_store, self._out_store)

    def __call__(self, batch: Mapping[str, Any]) -> dict[str, list]:
        jobs = [row_job(*row, self._in_store, self._out_store)
                for row in zip(batch["relative"], batch["output"], batch["out_format"])]
        cpu_start = time.process_time()  # this actor's CPU time, all its threads
        rows = [(*job_row(item.job, self._out_store).values(), item.status or DONE, item.reason, item.stage,
                 int(item.size)) for item in self.finished_items(jobs)]
        out = {name: [row[index] for row in rows] for index, name in enumerate(RESULT_COLUMNS)}
        out.update({key: [value] * len(rows) for key, value in self.identity.items()})
        # The block's numbers sit on its first row, zeros below: Ray may merge blocks, and the
        # driver sums every row of what it receives.
        numbers = {f"{_STAGE_COLUMN}{name}:{key}": value
                   for name, stats in self.runner.stats.items() for key, value in asdict(stats).items()}
        numbers["cpu_s"] = round(time.process_time() - cpu_start, 3)
        out.update({key: [value] + [0] * (len(rows) - 1) if rows else [] for key, value in numbers.items()})
        return out


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
    """Actors for a cluster with ``resources`` (``ray.cluster_resources()``): by default one
    per GPU, with the CPUs per GPU less one (left to Ray Data), at most 8, for its decode and
    encode threads; without GPUs (or on ``device`` cpu), as many 1-CPU actors as fit."""
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
    private = address is None and not os.environ.get("RAY_ADDRESS")  # a local instance of our own
    try:  # no dashboard for a private instance; a cluster keeps its own (None: Ray's default)
        ray.init(address=address, logging_level="WARNING", include_dashboard=False if private else None)
    except Exception as error:  # ConnectionError, RuntimeError, ...
        raise FatalError(f"cannot connect to Ray at {address or 'a new local instance'}: {error}; "
                             "check the address (ray status on the head node) or omit it for a local run") from error
    return ray, True


def _map_with_actors(dataset, actor_class, plan: ActorPlan, files_per_task: int, constructor: dict,
                     max_restarts: int):
    """``map_batches`` onto a fixed pool of actors that restart and retry their task."""
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
            return dataset.map_batches(actor_class, **options, **retries)
        except TypeError as error:
            if "max_restarts" not in str(error) and "max_task_retries" not in str(error):
                raise
            return dataset.map_batches(actor_class, **options)


#: Jobs turned into Ray blocks at a time: the driver never holds more than this many rows as
#: dicts; the blocks themselves live in the object store (which spills to disk).
ROWS_PER_CHUNK = 65536


def _dataset(ray, rows: list[tuple], files_per_task: int):
    """Blocks of ``files_per_task`` rows (one Ray task each); empties ``rows``."""
    chunk = max(files_per_task, ROWS_PER_CHUNK // files_per_task * files_per_task)
    parts = []
    for start in range(0, len(rows), chunk):
        items = [{"relative": r, "output": o, "out_format": f} for r, o, f in rows[start:start + chunk]]
        parts.append(ray.data.from_items(items, override_num_blocks=math.ceil(len(items) / files_per_task)))
    rows.clear()
    return parts[0] if len(parts) == 1 else parts[0].union(*parts[1:])


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _ray_failure(error: BaseException) -> BaseException:
    """An actor's own fatal error, else a FatalError that names the real cause, not Ray's wrappers."""
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
class RaySettings:
    """How a run uses Ray (everything else is the run's ``Settings``).

    ``address`` None uses ``RAY_ADDRESS`` or starts a local instance (a process already
    connected keeps its connection); the pool defaults to ``plan_actors``'s; ``files_per_task``
    to ``BATCHES_PER_TASK`` batches.
    """

    address: str | None = None
    device: str = "auto"
    num_actors: int | None = None
    cpus_per_actor: float | None = None
    files_per_task: int | None = None
    render_size: int | None = None
    max_restarts: int = 4  # a dying worker is restarted, and its task retried, this many times


class RayExecutor:
    """``run_batch``'s executor on Ray. Ray is not contacted when no job is left to do;
    ``announce`` gets the plan line, then the backend line once the first actor has opened its
    backend (the single-machine run's first line)."""

    actor_class = ColorizeActor

    def __init__(self, ray_settings: RaySettings, model: str | Path | None = None,
                 announce: Callable[[str], None] | None = None) -> None:
        _import_ray()  # a missing Ray is said before any work, like a missing model
        self.options = ray_settings
        self.model_path = Path(model) if model is not None else shipped_model()
        if not self.model_path.is_file():
            raise ModelNotFound(f"model not found: {self.model_path}")
        self.announce = announce or (lambda line: None)
        self.stats: dict[str, StageStats] = {}

    def describe(self) -> tuple[dict[str, Any], dict[str, Any]]:
        return {}, {"source": str(self.model_path)}

    def run(self, settings: Settings, items: Iterable[Item], in_store: Storage, out_store: Storage,
            report: Report) -> Iterator[Item]:
        rows: list[tuple] = []  # (relative, output, format): about 150 bytes per job
        for item in items:
            if item.status is not None:
                yield item
            else:
                rows.append(tuple(job_row(item.job, out_store).values()))
        if not rows:
            return
        ray, started = _connect(self.options.address)
        try:
            plan = plan_actors(ray.cluster_resources(), self.options.device, self.options.num_actors,
                               self.options.cpus_per_actor)
            settings = replace(settings, batch_size=settings.batch_size or default_batch(plan.device),
                               workers=max(1, int(plan.num_cpus)))
            files_per_task = self.options.files_per_task or BATCHES_PER_TASK * settings.batch_size
            report.settings = {**settings.as_dict(), "ray": plan.__dict__, "files_per_task": files_per_task}
            self.announce(f"ray: {plan.describe()}, {settings.batch_size} images per batch, "
                          f"{files_per_task} per task, model {self.model_path.name}")
            context = ray.data.DataContext.get_current()
            context.enable_progress_bars = False  # the driver draws its own bar
            context.print_on_execution_start = False
            # referenced here until the last block is in
            data = self.model_path.read_bytes()  # read once: hashed and shipped
            shipment = ModelShipment(self.model_path.name, hashlib.sha256(data).hexdigest(), [ray.put(data)])
            constructor = {"model": shipment, "device": plan.device, "render_size": self.options.render_size,
                           "settings": settings, "in_store": in_store, "out_store": out_store}
            dataset = _map_with_actors(_dataset(ray, rows, files_per_task), self.actor_class, plan, files_per_task,
                                       constructor, self.options.max_restarts)
            backends: dict[str, dict] = {}
            try:
                for block in dataset.iter_batches(batch_size=None, batch_format="numpy"):
                    if len(block["status"]):
                        self._merge_block(block, report, backends)
                    for relative, output, fmt, status, reason, stage, size in zip(
                            *(block[name] for name in RESULT_COLUMNS)):
                        job = row_job(relative, output, fmt, in_store, out_store)
                        yield Item(job, status=str(status), reason=str(reason), stage=str(stage), size=int(size))
            except Exception as error:
                raise _ray_failure(error) from error
        finally:
            if started:
                ray.shutdown()

    def _merge_block(self, block: Mapping[str, Any], report: Report, backends: dict) -> None:
        """Fold one block's columns into the run's: its stage numbers, its actor (node, when it
        was ready, restarts, CPU seconds of its blocks) and, from the first actor to answer, the
        backend line the single-machine run prints first."""
        for column, values in block.items():
            if column.startswith(_STAGE_COLUMN):
                name, key = column[len(_STAGE_COLUMN):].rsplit(":", 1)
                stats = self.stats.setdefault(name, StageStats())
                stats.add({key: type(getattr(stats, key))(sum(values))})  # numpy sums -> int/float
        first = {column: values[0].item() if hasattr(values[0], "item") else values[0]
                 for column, values in block.items()}
        info = {key: first[f"backend_{key}"] for key in ("name", "device", "render_size", "max_batch", "reason")}
        info["max_batch"] = int(info["max_batch"]) or None
        model = {"preset": str(first["model_preset"]), "sha256": str(first["model_sha256"])}
        key = f"{info['name']}|{info['reason']}|{model['sha256']}"
        if key not in backends:
            backends[key] = info
            if len(backends) == 1:
                self.announce(info["reason"])
                report.backend = {**info, "actors": {}}
                report.model = {**model, "source": report.model.get("source", "")}
            else:  # nodes that chose differently (e.g. a node without TensorRT) are listed too
                report.backend["other_backends"] = list(backends.values())[1:]
        actor, restarted, ready_at = str(first["actor"]), bool(first["restarted"]), float(first["ready_at"])
        known = report.backend["actors"].setdefault(actor, {"node": str(first["node"]), "ready_at": ready_at,
                                                            "restarts": int(restarted), "cpu_s": 0.0})
        if restarted and ready_at > known["ready_at"]:  # a later life of the actor: it restarted again
            known.update(node=str(first["node"]), ready_at=ready_at, restarts=known["restarts"] + 1)
        known["cpu_s"] = round(known["cpu_s"] + float(sum(block["cpu_s"])), 3)
