"""The resume state: what RUN_DIR/resume.pt holds after every finished epoch.

Written with ``torch.save`` (atomically, via ``facecolor.checkpoint.write_atomically``) and
read with ``torch.load(weights_only=True)``: the file holds only tensors, numbers, strings,
lists and dicts (model, optimizer and scaler state dicts; JSON text for settings and history),
so reading it never unpickles arbitrary objects.

Position is (stage_index, epoch): ``epoch`` epochs of stage ``stage_index`` of the run's plan
are done. When the run finishes, the state shrinks to a marker without weights (``finished``,
settings, history), so a finished run folder does not keep a second copy of the model and
rerunning the command just says the run is finished.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from facecolor.files import write_atomically
from facecolor.train.errors import ResumeMismatchError

RESUME_NAME = "resume.pt"
RESUME_FORMAT = 1


@dataclass
class ResumeState:
    """Where a run stands, and the tensors needed to continue it."""

    settings: dict[str, Any]
    stage_index: int = 0
    epoch: int = 0
    finished: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)
    tensors: dict[str, Any] = field(default_factory=dict)

    def save(self, path: Path) -> Path:
        """Write the state atomically (a crash mid-write keeps the previous epoch's state)."""
        payload = {
            "format": RESUME_FORMAT,
            "settings": json.dumps(self.settings, sort_keys=True),
            "stage_index": self.stage_index,
            "epoch": self.epoch,
            "finished": self.finished,
            "history": json.dumps(self.history),
            **({} if self.finished else self.tensors),
        }
        write_atomically(Path(path), lambda tmp: torch.save(payload, tmp))
        return Path(path)

    @classmethod
    def load(cls, path: Path) -> ResumeState:
        """Read a state written by ``save`` (tensors on the CPU)."""
        try:
            payload = torch.load(Path(path), map_location="cpu", weights_only=True)
        except Exception as error:  # pickle errors of many kinds: all mean "not our file"
            raise ResumeMismatchError(
                f"{path} is not a readable facecolor resume state ({type(error).__name__}: {error}); "
                "delete it or pass --restart to train from scratch"
            ) from error
        if not isinstance(payload, dict) or payload.get("format") != RESUME_FORMAT:
            raise ResumeMismatchError(
                f"{path} has resume format {payload.get('format') if isinstance(payload, dict) else '?'}, "
                f"this facecolor writes {RESUME_FORMAT}; pass --restart to train from scratch"
            )
        known = {"format", "settings", "stage_index", "epoch", "finished", "history"}
        return cls(
            settings=json.loads(payload["settings"]),
            stage_index=int(payload["stage_index"]),
            epoch=int(payload["epoch"]),
            finished=bool(payload["finished"]),
            history=json.loads(payload["history"]),
            tensors={key: value for key, value in payload.items() if key not in known},
        )


def rng_state() -> dict[str, Any]:
    """torch's CPU and CUDA generator states (the epoch order has its own seeded generator)."""
    state: dict[str, Any] = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore ``rng_state()``; CUDA states only when this machine has as many devices."""
    if "cpu" in state:
        torch.set_rng_state(state["cpu"])
    cuda = state.get("cuda")
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
