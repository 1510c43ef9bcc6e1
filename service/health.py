"""/healthcheck and the engines the page offers: cheap (loads no model, never waits long for torch).
Both loop over the engines tasks.engines offers, each answering its own `status()`."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from tasks import paths, settings
from tasks.engines import engine_names, engine_status
from tasks.engines.gpu import GPU

__all__ = ["GPU", "available_engines", "health", "workers"]


def _prefect_api_url() -> str | None:
    url = settings.PREFECT_API_URL.get()
    if url:
        return url
    try:
        from prefect.settings import PREFECT_API_URL

        value = PREFECT_API_URL.value()
    except Exception:
        return None
    return str(value) if value else None


def health(voices_dir: Path | None = None) -> dict[str, Any]:
    """State (healthy: ffmpeg, the manifests' default engine ready, Prefect reachable), every offered
    engine's status, the GPU, Prefect and the resident workers."""
    from flows.prefect_server import server_healthy
    from tasks.manifest import Manifest

    ffmpeg: str | None
    try:
        from tasks.encode import ffmpeg_exe

        ffmpeg = ffmpeg_exe()
    except Exception:
        ffmpeg = None
    gpu, _ = GPU.get(wait_s=1.0)  # before the statuses, so an engine's device is known once torch is in
    engines = {name: engine_status(name, voices_dir or paths.voices_dir()).as_dict() for name in engine_names()}
    api_url = _prefect_api_url()
    reachable = bool(api_url) and server_healthy(api_url.rstrip("/"))  # type: ignore[union-attr]
    default = engines.get(Manifest.model_fields["engine"].default)
    ready = ffmpeg is not None and default is not None and default["ready"]
    return {
        "state": "healthy" if ready and reachable else "degraded",
        "ffmpeg": ffmpeg is not None,
        "engines": engines,
        "gpu": gpu,
        "prefect": {"reachable": reachable, "api_url": api_url},
        "workers": workers(),
    }


def workers(timeout_s: float = 10.0, wait_s: float = 1.0) -> dict[str, Any]:
    """Every engine worker where renders run: the service's resident Dask workers (or AUDIOBOOK_CLUSTER's),
    each with its host, device, GPU and free memory, engines loaded and chunks done. Asked in the
    background (a worker's first answer imports torch): the latest answer, with `probing` while a newer
    one is on its way. Without a cluster each render runs its engines in its own process: none to list."""
    address = settings.SERVE_CLUSTER.get() or settings.CLUSTER.get() or ""
    if not address or address.startswith("local:"):
        return {"cluster": None, "list": []}
    return _WORKERS.get(address, timeout_s, wait_s)


class _WorkersProbe:
    """The cluster's worker list, refreshed in a background thread so /healthcheck never waits long."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._latest: dict[str, dict[str, Any]] = {}  # address -> last answer

    def _ask(self, address: str, timeout_s: float) -> None:
        try:
            from tasks.workers import cluster_workers

            answer: dict[str, Any] = {"cluster": address, "list": cluster_workers(address, timeout_s=timeout_s)}
        except Exception as exc:  # an unreachable cluster makes the service degraded, never the check fail
            answer = {"cluster": address, "list": [], "error": str(exc)}
        with self._lock:
            self._latest[address] = answer

    def get(self, address: str, timeout_s: float, wait_s: float) -> dict[str, Any]:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._ask, args=(address, timeout_s), name="workers-probe",
                                                daemon=True)
                self._thread.start()
            thread = self._thread
        thread.join(timeout=wait_s)
        with self._lock:
            latest = self._latest.get(address)
        if latest is None:
            return {"cluster": address, "list": [], "probing": True}
        return {**latest, "probing": True} if thread.is_alive() else latest


_WORKERS = _WorkersProbe()


def available_engines(voices_dir: Path) -> list[dict[str, Any]]:
    """The engines this server can render with now (ready), each with its voices, for the upload form."""
    engines: list[dict[str, Any]] = []
    for name in engine_names():
        status = engine_status(name, voices_dir)
        if status.ready:
            engines.append({"name": name, "voices": list(status.voices), "default_voice": status.default_voice,
                            "qualities": list(status.qualities), "clips": status.clips})
    return engines
