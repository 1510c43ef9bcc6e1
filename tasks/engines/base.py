"""The engine interface: `synthesize(text, voice, settings, seed) -> Clip`, and for many chunks at once
`synthesize_many(engine, requests) -> [Clip | EngineError]`.

An engine knows nothing of manifests, files on the output side, or Prefect. It declares its limits
(`EngineInfo.max_chars`, checked on the normalised text) and maps the manifest's `quality` to its own
settings in one table (`settings_for`).

An engine also answers what the command line, /healthcheck and the page ask of it, cheaply and without an
instance (class methods that load no model and import no torch): `status(voices_dir) -> EngineStatus`
(installed, ready, voices, default voice, qualities, device) and `doctor(voices_dir)` (those checks and a
one-sentence test render). `EngineBase` gives the defaults; tasks.engines lists the engines by name.

Batching: an engine that renders many chunks in one call (Tortoise on a GPU) defines its own
`synthesize_many(requests)` and `batch_capacity(settings)` (how many chunks one call renders together);
every other engine gets a loop over `synthesize` and a capacity of 1 from the functions below. Whatever
the engine, a request's clip must not depend on the other requests of its call: the cache key names one
take.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

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


QUALITIES = ("draft", "standard", "high")  # the manifest's `quality` (tasks.manifest.Quality)
TEST_SENTENCE = "This is a short test of the voice."  # what `doctor` renders


@dataclass(frozen=True)
class EngineStatus:
    """What an engine can do on this machine, found cheaply: no model loaded, torch not imported."""

    installed: bool  # its packages are there (found, not imported)
    ready: bool  # installed, and its weights (models, a packaged voice) are on disk: it can render now
    reason: str | None = None  # why it is not installed or not ready, with the fix
    voices: tuple[str, ...] = ()  # the voices it can speak here
    voice_sources: Mapping[str, str] = field(default_factory=dict)  # voice -> where it is ("voices/", "packaged")
    default_voice: str | None = None  # the voice a book gets when it names none (None: the user chooses)
    qualities: tuple[str, ...] = QUALITIES
    device: str | None = None  # where it renders: "cpu", "cuda", "probing" (torch still importing), None: unknown
    clips: bool = False  # a voice is a folder of reference clips (an upload may bring them)
    add_voice: str | None = None  # how to add a voice

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (for /healthcheck and `audiobook doctor`)."""
        return {"installed": self.installed, "ready": self.ready, "reason": self.reason, "device": self.device,
                "voices": list(self.voices), "default_voice": self.default_voice, "qualities": list(self.qualities),
                "clips": self.clips}


@runtime_checkable
class Engine(Protocol):
    info: EngineInfo

    @classmethod
    def status(cls, voices_dir: Path) -> EngineStatus:
        """Installed, ready, voices, default voice, qualities, device: cheap (no model, no torch import)."""
        ...

    @classmethod
    def doctor(cls, voices_dir: Path) -> dict[str, Any]:
        """`status` and deeper checks (device, weights, load time), with a one-sentence test render timed.
        Never raises: `ok` says whether all is well, `error` what is not."""
        ...

    @property
    def prompt_mode(self) -> str:
        """What becomes of a bracketed prompt ("[sadly] ...") when `info.supports_prompts`: "redact" (spoken
        to condition the tone, then cut from the audio) or "dropped" (removed from the text before synthesis).
        Asked on the worker; may look for what it needs (Tortoise's aligner) on first use."""
        ...

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


class EngineBase:
    """The defaults of the interface's optional parts: prompts are dropped, and `doctor` is `status` plus a
    timed test render with the default (else the first) voice. An engine subclasses it and defines
    `info`, `status`, `settings_for`, `check_voice`, `voice_fingerprint` and `synthesize`, and may change
    the class facts below."""

    verify_default: ClassVar[str] = "off"  # the take check when a manifest names none: off | flag | reroll
    needs_gpu: ClassVar[bool] = False  # a render refuses a GPU-less pool (unless AUDIOBOOK_TORTOISE_DEVICE=cpu)

    def cpu_seconds_per_chunk(self, settings: Mapping[str, Any]) -> float | None:
        """An estimate of one chunk's engine seconds on a CPU at `settings` before any is measured (the
        no-GPU message of an engine that needs a GPU); None: no estimate."""
        return None

    @classmethod
    def status(cls, voices_dir: Path) -> EngineStatus:
        raise NotImplementedError(f"{cls.__name__} does not say what it can do here (define status())")

    @property
    def prompt_mode(self) -> str:
        return "dropped"

    @classmethod
    def doctor(cls, voices_dir: Path) -> dict[str, Any]:
        status = cls.status(voices_dir)
        report: dict[str, Any] = {"ok": False, **status.as_dict()}
        voice = status.default_voice or next(iter(status.voices), None)
        if not status.ready:
            report["error"] = status.reason or "not ready"
        elif voice is None:
            report["error"] = f"no voice: {status.add_voice or 'add one'}"
        else:
            try:  # report, do not raise: doctor shows every problem at once
                engine: Any = cls()
                started = time.perf_counter()
                clip = engine.synthesize(TEST_SENTENCE, voice, {**engine.settings_for("draft"), "sentence_pause_ms": 0},
                                         0, voices_dir=str(voices_dir))
                report.update(ok=True, test_voice=voice, test_render_s=round(time.perf_counter() - started, 2),
                              test_audio_s=round(clip.duration_s, 2))
            except Exception as exc:
                report["error"] = f"{type(exc).__name__}: {exc}"
        return report


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
