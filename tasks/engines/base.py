"""The engine interface: one method, `synthesize(text, voice, settings, seed) -> Clip`.

An engine knows nothing of manifests, files on the output side, or Prefect. It declares its limits
(`EngineInfo.max_chars`, checked on the normalised text) and maps the manifest's `quality` to its own
settings in one table (`settings_for`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np


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
