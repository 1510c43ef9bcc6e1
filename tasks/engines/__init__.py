"""Engines, chosen in one place. Each engine loads its model once per worker process.

`get_engine(name)` returns a process-wide instance (lock-guarded), so a Prefect task that calls it in a
worker thread or process reuses the model loaded by the first call. Heavy imports (onnxruntime, torch,
tortoise) happen inside the adapters, on first use.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable

from tasks.engines.base import Clip, Engine, EngineInfo
from tasks.errors import ManifestError

__all__ = ["Clip", "Engine", "EngineInfo", "ENGINES", "get_engine", "loaded_engines", "register_engine",
           "reset_engines"]

# name -> "module:factory". The factory takes no arguments and returns an Engine.
ENGINES: dict[str, str] = {
    "piper": "tasks.engines.piper:PiperEngine",
    "tortoise": "tasks.engines.tortoise:TortoiseEngine",
    "fake": "tasks.engines.fake:FakeEngine",
}

_lock = threading.Lock()
_instances: dict[str, Engine] = {}
_factories: dict[str, Callable[[], Engine]] = {}


def register_engine(name: str, factory: Callable[[], Engine]) -> None:
    """Register (or replace) an engine factory, e.g. a test double. Drops a loaded instance of that name."""
    with _lock:
        _factories[name] = factory
        _instances.pop(name, None)


def reset_engines() -> None:
    """Forget loaded engines (tests)."""
    with _lock:
        _instances.clear()


def _factory(name: str) -> Callable[[], Engine]:
    if name in _factories:
        return _factories[name]
    if name not in ENGINES:
        raise ManifestError(
            f"unknown engine {name!r}", field="engine", fix=f"use one of: {', '.join(sorted(ENGINES))}"
        )
    module_name, attr = ENGINES[name].split(":")
    return getattr(importlib.import_module(module_name), attr)  # type: ignore[no-any-return]


def get_engine(name: str) -> Engine:
    """The process-wide engine called `name`, built on first use."""
    with _lock:
        engine = _instances.get(name)
        if engine is None:
            engine = _factory(name)()
            _instances[name] = engine
        return engine


def loaded_engines() -> dict[str, Engine]:
    """The engines this process has built so far (name -> instance), e.g. for a worker's status."""
    with _lock:
        return dict(_instances)
