"""How the service starts renders and reads their state: a one-method-each RunBackend, the Prefect one
and a fake for tests beside it.

    start(name, manifest_path) -> RunInfo            queue a render of one book
    statuses(names) -> {name: RunStatus | None}      every book's state, in one Prefect query
    status(name) -> RunStatus | None                 one book's state

PrefectRunBackend runs the `render-book/render-book` deployment (what `audiobook serve` registers)
and remembers book name -> latest flow run id in `<output_dir>/.runs.json`. Progress (chunks done
of total) comes from the run's progress artifact, fetched for all running books at once.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol, cast

from tasks.lock import file_lock

from .config import ServiceConfig

RunState = Literal["queued", "running", "completed", "failed"]
DEPLOYMENT = "render-book/render-book"
RUNS_FILE = ".runs.json"
PAGE = 200  # Prefect's API answers at most this many rows a request
_TOTAL_RE = re.compile(r"Synthesising (\d+) chunks")


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    ui_url: str | None = None


@dataclass(frozen=True)
class RunStatus:
    state: RunState
    run_id: str | None = None
    ui_url: str | None = None
    message: str | None = None
    chunks_done: int | None = None
    chunks_total: int | None = None
    eta_s: float | None = None


class RunBackend(Protocol):
    def start(self, name: str, manifest_path: Path) -> RunInfo: ...

    def status(self, name: str) -> RunStatus | None: ...

    def statuses(self, names: Iterable[str]) -> dict[str, RunStatus | None]: ...


def _report_exists(output_dir: Path, name: str) -> bool:
    return (output_dir / name / "report.json").is_file()


def _on_disk(output_dir: Path, name: str) -> RunStatus | None:
    return RunStatus("completed") if _report_exists(output_dir, name) else None


@dataclass
class FakeRunBackend:
    """For tests: records starts; a started book is queued until `set_state`; a book with a
    report.json and no recorded run is completed (as with PrefectRunBackend)."""

    output_dir: Path
    started: list[tuple[str, Path]] = field(default_factory=list)
    states: dict[str, RunStatus] = field(default_factory=dict)
    fail_start: Exception | None = None
    queries: int = 0  # how many times the backend was asked (one per listing)

    def start(self, name: str, manifest_path: Path) -> RunInfo:
        if self.fail_start is not None:
            raise self.fail_start
        run_id = f"fake-{len(self.started) + 1}"
        self.started.append((name, manifest_path))
        self.states[name] = RunStatus("queued", run_id, None)
        return RunInfo(run_id, None)

    def set_state(self, name: str, state: RunState, message: str | None = None, *,
                  done: int | None = None, total: int | None = None, eta_s: float | None = None) -> None:
        old = self.states.get(name)
        self.states[name] = RunStatus(state, old.run_id if old else "fake-0", None, message, done, total, eta_s)

    def status(self, name: str) -> RunStatus | None:
        return self.statuses([name])[name]

    def statuses(self, names: Iterable[str]) -> dict[str, RunStatus | None]:
        self.queries += 1
        return {n: self.states[n] if n in self.states else _on_disk(self.output_dir, n) for n in names}


_STATE_MAP: dict[str, RunState] = {
    "SCHEDULED": "queued",
    "PENDING": "queued",
    "PAUSED": "queued",
    "RUNNING": "running",
    "CANCELLING": "running",
    "COMPLETED": "completed",
    "FAILED": "failed",
    "CRASHED": "failed",
    "CANCELLED": "failed",
}


def map_prefect_state(state_type: str) -> RunState:
    """A Prefect StateType (its value, e.g. "SCHEDULED") as one of our four states.
    (A retrying run is RUNNING with the name "Retrying"; a late one SCHEDULED named "Late".)"""
    return _STATE_MAP.get(state_type.upper(), "running")


def _one_line(text: str | None) -> str | None:
    if not text:
        return None
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0][:500] if lines else None


class PrefectRunBackend:
    """Renders through the `render-book/render-book` deployment; remembers book name -> latest flow run
    id in `<output_dir>/.runs.json` (written atomically under a file lock)."""

    def __init__(self, where: ServiceConfig | Path, *, deployment: str = DEPLOYMENT, ui_url: str | None = None) -> None:
        """`where`: the service's config (its output_dir and prefect_ui_url) or an output folder."""
        if isinstance(where, ServiceConfig):
            self.output_dir = where.output_dir
            ui_url = ui_url or where.prefect_ui_url
        else:
            self.output_dir = Path(where)
        self.deployment = deployment
        self.ui_url = ui_url.rstrip("/") if ui_url else None
        self._lock = threading.Lock()
        self.requests = 0  # Prefect API requests made by statuses() (for the listing benchmark)

    @property
    def runs_file(self) -> Path:
        return self.output_dir / RUNS_FILE

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.output_dir.mkdir(parents=True, exist_ok=True)
        with self._lock, file_lock(self.output_dir / ".runs.lock"):
            yield

    def _read_runs(self) -> dict[str, str]:
        try:
            data = json.loads(self.runs_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}

    def _run_url(self, run_id: str) -> str | None:
        return f"{self.ui_url}/runs/flow-run/{run_id}" if self.ui_url else None

    def start(self, name: str, manifest_path: Path) -> RunInfo:
        from prefect.deployments import run_deployment

        from tasks.atomic import write_bytes

        # `_sync=True`: run_deployment dispatches on "in an event loop?"; this runs in a worker thread.
        flow_run = cast(Any, run_deployment)(
            self.deployment, parameters={"manifest": str(manifest_path)}, timeout=0,
            flow_run_name=f"{name}-{os.urandom(3).hex()}", tags=["audiobook-service"], as_subflow=False,
            _sync=True,
        )
        run_id = str(flow_run.id)
        with self._locked():
            runs = self._read_runs()
            runs[name] = run_id
            write_bytes(self.runs_file, json.dumps(runs, indent=1, sort_keys=True).encode())
        return RunInfo(run_id, self._run_url(run_id))

    def recorded_run(self, name: str) -> str | None:
        return self._read_runs().get(name)

    def status(self, name: str) -> RunStatus | None:
        return self.statuses([name])[name]

    def statuses(self, names: Iterable[str]) -> dict[str, RunStatus | None]:
        """Every book's state from one filtered query of the flow runs (paged by Prefect's 200-row
        limit), and one more for the progress of those running."""
        names = list(names)
        runs = self._read_runs()
        wanted = {runs[n]: n for n in names if n in runs}
        out: dict[str, RunStatus | None] = {n: _on_disk(self.output_dir, n) for n in names if n not in runs}
        if not wanted:
            return out
        found = self._read_flow_runs(list(wanted))
        progress = self._read_progress([run_id for run_id, fr in found.items()
                                        if fr.state is not None and fr.state.type.value == "RUNNING"])
        now = datetime.now(UTC)
        for run_id, name in wanted.items():
            flow_run = found.get(run_id)
            if flow_run is None:  # the Prefect database was reset: fall back to what is on disk
                out[name] = _on_disk(self.output_dir, name)
                continue
            out[name] = self._status_of(flow_run, progress.get(run_id), now)
        return out

    def _read_flow_runs(self, ids: list[str]) -> dict[str, Any]:
        from uuid import UUID

        from prefect.client.orchestration import get_client
        from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

        found: dict[str, Any] = {}
        with get_client(sync_client=True) as client:
            for start in range(0, len(ids), PAGE):
                page = [UUID(i) for i in ids[start:start + PAGE]]
                self.requests += 1
                for flow_run in client.read_flow_runs(
                    flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=page)), limit=len(page)
                ):
                    found[str(flow_run.id)] = flow_run
        return found

    def _read_progress(self, run_ids: list[str]) -> dict[str, tuple[float, int | None]]:
        """run id -> (percent done, chunks in all) from each running run's progress artifact."""
        if not run_ids:
            return {}
        from uuid import UUID

        from prefect.client.orchestration import get_client
        from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterType

        out: dict[str, tuple[float, int | None]] = {}
        with get_client(sync_client=True) as client:
            for start in range(0, len(run_ids), PAGE):
                page = [UUID(i) for i in run_ids[start:start + PAGE]]
                self.requests += 1
                for artifact in client.read_artifacts(
                    artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=page),
                                                   type=ArtifactFilterType(any_=["progress"])),
                    limit=PAGE,
                ):
                    match = _TOTAL_RE.search(artifact.description or "")
                    try:
                        percent = float(cast(Any, artifact.data))
                    except (TypeError, ValueError):
                        continue
                    out[str(artifact.flow_run_id)] = (percent, int(match.group(1)) if match else None)
        return out

    def _status_of(self, flow_run: Any, progress: tuple[float, int | None] | None, now: datetime) -> RunStatus:
        run_id = str(flow_run.id)
        state = flow_run.state
        if state is None:
            return RunStatus("queued", run_id, self._run_url(run_id))
        name_differs = state.name and state.name.lower() != state.type.value.lower()
        message = _one_line(state.message) or (state.name if name_differs else None)
        status = RunStatus(map_prefect_state(state.type.value), run_id, self._run_url(run_id), message)
        if progress is not None:
            percent, total = progress
            done = round(percent * total / 100) if total is not None else None
            eta = None
            if flow_run.start_time is not None and 0 < percent < 100:
                elapsed = (now - flow_run.start_time).total_seconds()
                eta = round(max(0.0, elapsed * (100 - percent) / percent), 1)
            status = replace(status, chunks_done=done, chunks_total=total, eta_s=eta)
        return status

    def resume_interrupted(self) -> list[str]:
        """Put back in the queue every recorded run that a stopped `serve` left running (its process
        is gone): the runner picks them up again and the cache gives back every finished chunk.
        Call it before the runner starts, when no render of ours can be running."""
        from prefect.client.orchestration import get_client
        from prefect.states import Scheduled

        runs = self._read_runs()
        if not runs:
            return []
        found = self._read_flow_runs(list(runs.values()))
        resumed: list[str] = []
        with get_client(sync_client=True) as client:
            for name, run_id in sorted(runs.items()):
                flow_run = found.get(run_id)
                if flow_run is None or flow_run.state is None:
                    continue
                if flow_run.state.type.value in ("RUNNING", "PENDING", "CANCELLING"):
                    client.set_flow_run_state(
                        flow_run.id, Scheduled(message="requeued: the service restarted"), force=True)
                    resumed.append(name)
        return resumed
