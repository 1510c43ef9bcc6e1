"""Engines, chosen in one place. Each engine loads its model once per worker process.

`ENGINES` lists them by name; adding an engine is its module and one line there (docs/architecture.md,
"Adding an engine"). The command line (`audiobook doctor`, `voices list`), /healthcheck, /engines and the
page loop over `engine_names()` and ask each engine class its `status()` and `doctor()`: an engine whose
module cannot be imported still reports, as not installed, with the reason.

`get_engine(name)` returns a process-wide instance (lock-guarded), so a Prefect task that calls it in a
worker thread or process reuses the model loaded by the first call. Heavy imports (onnxruntime, torch,
tortoise) happen inside the adapters, on first use.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tasks import settings
from tasks.engines.base import Clip, Engine, EngineBase, EngineInfo, EngineStatus
from tasks.errors import ManifestError

__all__ = ["Clip", "Engine", "EngineBase", "EngineInfo", "EngineStatus", "ENGINES", "engine_class",
           "engine_doctor", "engine_names", "engine_status", "get_engine", "known_engines", "loaded_engines",
           "register_engine", "reset_engines", "unregister_engine"]

# name -> "module:Class" (imported on first use). Every engine here is offered: doctor, voices list,
# /healthcheck, /engines and the page.
ENGINES: dict[str, str] = {
    "piper": "tasks.engines.piper:PiperEngine",
    "tortoise": "tasks.engines.tortoise:TortoiseEngine",
}
# Render when a manifest names them, but are not offered (AUDIOBOOK_SERVICE_FAKE_ENGINE=1 offers the fake).
UNLISTED: dict[str, str] = {
    "fake": "tasks.engines.fake:FakeEngine",
}

_lock = threading.Lock()
_instances: dict[str, Engine] = {}
_factories: dict[str, Callable[[], Engine]] = {}
_listed: list[str] = []  # engines registered at run time as offered


def register_engine(name: str, factory: Callable[[], Engine], *, listed: bool = False) -> None:
    """Register (or replace) an engine: its class, or any factory (e.g. `lambda: engine`, a test double).
    `listed`: offer it like the engines in ENGINES (the factory must then be the engine's class, which
    answers `status` and `doctor`). Drops a loaded instance of that name."""
    with _lock:
        _factories[name] = factory
        _instances.pop(name, None)
        if listed and name not in _listed:
            _listed.append(name)


def unregister_engine(name: str) -> None:
    """Forget an engine registered at run time (tests); a name in ENGINES or UNLISTED goes back to its class."""
    with _lock:
        _factories.pop(name, None)
        _instances.pop(name, None)
        if name in _listed:
            _listed.remove(name)


def reset_engines() -> None:
    """Forget loaded engines (tests)."""
    with _lock:
        _instances.clear()


def engine_names() -> list[str]:
    """The engines offered here, in order: ENGINES, then those registered as listed."""
    names = [*ENGINES, *(n for n in _listed if n not in ENGINES)]
    if settings.SERVICE_FAKE_ENGINE.get() and "fake" not in names:  # tests: the instant engine
        names.append("fake")
    return names


def known_engines() -> list[str]:
    """Every engine a manifest may name: the offered ones, then the unlisted and the registered."""
    return list(dict.fromkeys([*engine_names(), *UNLISTED, *_factories]))


def _unknown(name: str) -> ManifestError:
    return ManifestError(f"unknown engine {name!r}", field="engine", fix=f"use one of: {', '.join(engine_names())}")


def _import(target: str) -> Any:
    module_name, attr = target.split(":")
    return getattr(importlib.import_module(module_name), attr)


def _factory(name: str) -> Callable[[], Engine]:
    if name in _factories:
        return _factories[name]
    target = ENGINES.get(name) or UNLISTED.get(name)
    if target is None:
        raise _unknown(name)
    return _import(target)  # type: ignore[no-any-return]


def engine_class(name: str) -> type[Engine]:
    """The class of engine `name` (imported: ImportError when its module cannot be). A name registered
    with a factory that is not a class answers with the class of the engine it builds."""
    factory = _factory(name)
    if isinstance(factory, type):
        return factory
    target = ENGINES.get(name) or UNLISTED.get(name)
    return _import(target) if target else type(get_engine(name))  # type: ignore[no-any-return]


def engine_status(name: str, voices_dir: Path) -> EngineStatus:
    """What engine `name` can do here (cheap). A module that cannot be imported: not installed, and why.
    Never raises for a known engine (a status that fails reports not ready, with the error)."""
    try:
        cls = engine_class(name)
    except ImportError as exc:
        return EngineStatus(installed=False, ready=False, reason=f"not installed: {exc}")
    try:
        return cls.status(voices_dir)
    except Exception as exc:  # a status must not take /healthcheck or doctor down with it
        return EngineStatus(installed=True, ready=False, reason=f"status failed: {type(exc).__name__}: {exc}")


def engine_doctor(name: str, voices_dir: Path) -> dict[str, Any]:
    """Engine `name`'s checks and a test render (seconds to minutes). Never raises: `ok` says how it went."""
    try:
        cls = engine_class(name)
    except ImportError as exc:
        return {"ok": False, "installed": False, "error": f"not installed: {exc}"}
    try:
        return cls.doctor(voices_dir)
    except Exception as exc:  # report, do not stop: doctor shows every engine's problems at once
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}


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
