"""What a run did: counts, every failure with its reason, timings; ``facecolor-report.json``.

Skipped outputs that already existed are counted, not listed (a rerun would list the whole
tree); every other skip and every failure is listed by its path relative to IN_DIR.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

import facecolor
from facecolor.files import utc_now
from facecolor.runtime.walk import FAILED, OUTPUT_EXISTS, SKIPPED, display

REPORT_NAME = "facecolor-report.json"


@dataclass
class Report:

    settings: dict[str, Any]
    backend: dict[str, Any]
    model: dict[str, Any]
    started: str = field(default_factory=utc_now)
    done: int = 0
    skipped: int = 0
    bytes_written: int = 0
    failures: list[dict[str, str]] = field(default_factory=list)
    skips: list[dict[str, str]] = field(default_factory=list)
    status: str = "running"
    fatal_error: str | None = None
    stages: dict[str, dict[str, float]] = field(default_factory=dict)
    _t0: float = field(default_factory=time.perf_counter)
    wall_s: float = 0.0

    def add(self, item) -> None:
        path = display(item.job.relative)
        if item.status == FAILED:
            self.failures.append({"path": path, "reason": item.reason, "stage": item.stage})
        elif item.status == SKIPPED:
            self.skipped += 1
            if item.reason != OUTPUT_EXISTS:
                self.skips.append({"path": path, "reason": item.reason})
        else:
            self.done += 1
            self.bytes_written += item.size

    @property
    def failed(self) -> int:
        return len(self.failures)

    @property
    def images_per_s(self) -> float:
        return self.done / self.wall_s if self.wall_s > 0 else 0.0

    def finish(self, status: str, stages: dict[str, Any] | None = None, fatal_error: str | None = None) -> None:
        self.wall_s = time.perf_counter() - self._t0
        self.status, self.fatal_error = status, fatal_error
        if stages:
            self.stages = {name: {key: round(value, 3) for key, value in asdict(numbers).items()}
                           for name, numbers in stages.items()}

    def to_json(self) -> str:
        document = {
            "facecolor_version": facecolor.__version__,
            "status": self.status,
            "fatal_error": self.fatal_error,
            "started": self.started,
            "finished": utc_now(),
            "backend": self.backend,
            "model": self.model,
            "settings": self.settings,
            "counts": {"done": self.done, "skipped": self.skipped, "failed": self.failed},
            "bytes_written": self.bytes_written,
            "timings": {
                "wall_s": round(self.wall_s, 3),
                "images_per_s": round(self.images_per_s, 3),
                "stages": self.stages,
            },
            "failed": self.failures,
            "skipped": self.skips,
        }
        return json.dumps(document, indent=2, ensure_ascii=False) + "\n"

    def summary_lines(self) -> list[str]:
        """The closing lines: counts and throughput, then why files were skipped.

        A bare "skipped 5" leaves the user guessing whether the run did what they meant (a
        folder of symlinks, a forgotten --overwrite), so the reasons are counted here too.
        """
        lines = [
            f"done {self.done}, skipped {self.skipped}, failed {self.failed} "
            f"in {self.wall_s:.1f} s ({self.images_per_s:.1f} images/s)",
        ]
        reasons = Counter(skip["reason"] for skip in self.skips)
        if self.skipped > len(self.skips):  # existing outputs are counted, not listed
            reasons[OUTPUT_EXISTS] = self.skipped - len(self.skips)
        if reasons:
            lines.append("skipped: " + "; ".join(f"{count} {reason}" for reason, count in reasons.most_common()))
        return lines
