"""The engine interface: `synthesize(text, voice, settings, seed) -> Clip`, and for many chunks at once
`synthesize_many(engine, requests) -> [Clip | EngineError]`.

An engine knows nothing of manifests, files on the output side, or Prefect. It declares its limits
(`EngineInfo.max_chars`, checked on the normalised text) and maps the manifest's `quality` to its own
settings in one table (`settings_for`).

Batching: an engine that renders many chunks in one call (Tortoise on a GPU) defines its own
`synthesize_many(requests)` and `batch_capacity(settings)` (how many chunks one call renders together);
every other engine gets a loop over `synthesize` and a capacity of 1 from the functions below. Whatever
the engine, a request's clip must not depend on the other requests of its call: the cache key names one
take.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from tasks.errors import EngineError


@dataclass(frozen=True)
class Clip:
    """Mono audio: `samples` is float32, shape (n,), range [-1, 1], at `sample_rate_hz`."""

    samples: np.ndarray
    sample_rate_hz: int

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate_hz


@dataclass(frozen=True)
class EngineInfo:
    name: str
    version: str  # changes to it invalidate every cached chunk of this engine
    max_chars: int  # the longest normalised text one synthesize() call accepts
    sample_rate_hz: int
    supports_prompts: bool  # can it use a bracketed prompt ("[sadly] ...") to condition tone?
    device: str = "cpu"


@runtime_checkable
class Engine(Protocol):
    info: EngineInfo

    def settings_for(self, quality: str) -> dict[str, Any]:
        """The engine settings for a manifest quality (draft | standard | high)."""
        ...

    def voice_fingerprint(self, voice: str, voices_dir: str | None) -> str:
        """A content hash of everything about `voice` that changes the audio (its clips, its model)."""
        ...

    def check_voice(self, voice: str, voices_dir: str | None) -> None:
        """Raise VoiceError when `voice` is unknown to this engine."""
        ...

    def synthesize(
        self, text: str, voice: str, settings: Mapping[str, Any], seed: int, *, voices_dir: str | None = None
    ) -> Clip:
        """Speak `text` (normalised, within max_chars). Same arguments -> same audio.

        `text` may hold bracketed tone prompts ("[sadly] ...") only when `info.supports_prompts`;
        the planner strips them for other engines. Raise TransientEngineError for faults worth retrying.
        """
        ...


@dataclass(frozen=True)
class SynthRequest:
    """One chunk to speak, with its own seed and settings."""

    text: str
    voice: str
    settings: Mapping[str, Any]
    seed: int
    voices_dir: str | None = None


@runtime_checkable
class BatchEngine(Protocol):
    """An engine with its own batch entry point (optional: see `synthesize_many` below)."""

    def synthesize_many(self, requests: Sequence[SynthRequest]) -> list[Clip | EngineError]:
        """One outcome per request, in order: its clip, or the EngineError (a TransientEngineError when
        worth retrying) that stopped that request. May raise TransientEngineError for the whole call."""
        ...

    def batch_capacity(self, settings: Mapping[str, Any]) -> int:
        """How many chunks at `settings` one call renders together on this engine's device."""
        ...


def synthesize_many(engine: Engine, requests: Sequence[SynthRequest]) -> list[Clip | EngineError]:
    """The engine's own batch call when it has one, else `synthesize` per request (errors as values).
    The chunks spoken and the time taken go to this process's registry (tasks.engines.registry)."""
    from tasks.engines import registry

    started = time.perf_counter()
    outcomes: list[Clip | EngineError] = []
    try:
        if isinstance(engine, BatchEngine):
            outcomes = engine.synthesize_many(requests)
            return outcomes
        for r in requests:
            try:
                outcomes.append(engine.synthesize(r.text, r.voice, r.settings, r.seed, voices_dir=r.voices_dir))
            except EngineError as exc:
                outcomes.append(exc)
        return outcomes
    finally:
        registry.record(engine.info.name, engine.info.device, sum(isinstance(o, Clip) for o in outcomes),
                        time.perf_counter() - started)


def batch_capacity(engine: Engine, settings: Mapping[str, Any]) -> int:
    """Chunks per engine call at `settings`: the engine's declared capacity, 1 for engines that cannot batch."""
    if isinstance(engine, BatchEngine):
        return max(1, int(engine.batch_capacity(settings)))
    return 1
