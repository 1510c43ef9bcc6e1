"""CUDA availability for status reports, found once per process in a background thread: importing torch
takes seconds, so /healthcheck and an engine's `status()` never wait long for it.

    GPU.start()          begin the probe (the service does at start-up)
    GPU.get(wait_s)      (available, device), waiting up to wait_s; device "probing" until the answer is in
    GPU.device()         the device known so far, never waiting nor starting the probe (None: not asked)
"""

from __future__ import annotations

import importlib.util
import threading


class GpuProbe:
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

    def device(self) -> str | None:
        if self.result is not None:
            return self.result[1]
        return "probing" if self._thread is not None else None


GPU = GpuProbe()
