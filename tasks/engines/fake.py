"""A fast, deterministic stand-in engine for tests of the flow (shipped beside the real ones).

It "speaks" each word as a short harmonic burst with a syllable-like envelope, so the audio has the
duration, loudness and pauses of speech. Fault injection for tests: `transient_failures` fails each
chunk that many times with TransientEngineError before succeeding; `fail_texts` always fails chunks
containing any of those strings; `exit_after` kills the whole process (os._exit) after that many
clips, like a crash or `kill -9` (also set by AUDIOBOOK_FAKE_EXIT_AFTER, for subprocess tests);
`calls` counts synthesize() calls per text.

It is also the smallest complete engine, the example of docs/architecture.md "Adding an engine": the
interface (`EngineBase`: `status`, `settings_for`, `check_voice`, `voice_fingerprint`, `synthesize`), and
one line in tasks.engines to offer it.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from tasks import settings
from tasks.engines.base import Clip, EngineBase, EngineInfo, EngineStatus
from tasks.errors import EngineError, TransientEngineError, VoiceError

SECONDS_PER_CHAR = 1 / 14.0


class FakeEngine(EngineBase):
    @classmethod
    def status(cls, voices_dir: Path) -> EngineStatus:
        """Always installed and ready, on the CPU; it speaks any voice (but "missing..."): "v" is offered."""
        return EngineStatus(installed=True, ready=True, voices=("v",), voice_sources={"v": "any name"},
                            default_voice="v", device="cpu", clips=True, add_voice="any name will do")

    def __init__(
        self, *, max_chars: int = 200, sample_rate_hz: int = 24000, transient_failures: int = 0,
        fail_texts: tuple[str, ...] = (), delay_s: float | None = None, silent: bool = False,
        exit_after: int | None = None,
    ) -> None:
        self.info = EngineInfo(
            name="fake", version="fake-1", max_chars=max_chars, sample_rate_hz=sample_rate_hz,
            supports_prompts=False,
        )
        self.transient_failures = transient_failures
        self.fail_texts = fail_texts
        self.delay_s = settings.FAKE_DELAY_S.get() if delay_s is None else delay_s
        self.exit_after = settings.FAKE_EXIT_AFTER.get() if exit_after is None else exit_after
        self.produced = 0
        self.silent = silent
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()

    def settings_for(self, quality: str) -> dict[str, Any]:
        return {"quality": quality}

    def check_voice(self, voice: str, voices_dir: str | None) -> None:
        if voice.startswith("missing"):
            raise VoiceError(f"unknown voice {voice!r}", field="voice", fix="use any other name")

    def voice_fingerprint(self, voice: str, voices_dir: str | None) -> str:
        return hashlib.sha256(voice.encode()).hexdigest()

    def synthesize(
        self, text: str, voice: str, settings: Mapping[str, Any], seed: int, *, voices_dir: str | None = None
    ) -> Clip:
        with self._lock:
            self.calls[text] += 1
            attempt = self.calls[text]
        if self.delay_s:
            time.sleep(self.delay_s)
        if any(bad in text for bad in self.fail_texts):
            raise EngineError(f"fake engine refuses {text[:40]!r}")
        if attempt <= self.transient_failures:
            raise TransientEngineError(f"fake transient fault {attempt} on {text[:40]!r}")
        with self._lock:
            if self.exit_after is not None and self.produced >= self.exit_after:
                os._exit(137)  # a hard crash: no clean-up, no exception handlers
            self.produced += 1
        return Clip(self._speak(text, seed), self.info.sample_rate_hz)

    def _speak(self, text: str, seed: int) -> np.ndarray:
        sr = self.info.sample_rate_hz
        digest = hashlib.sha256(f"{seed}:{text}".encode()).digest()
        rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
        pieces = []
        for word in text.split():
            n = max(int(sr * len(word) * SECONDS_PER_CHAR), sr // 20)
            t = np.arange(n, dtype=np.float32) / sr
            f0 = 110 + 40 * rng.random()
            tone = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 6))
            envelope = np.sqrt(np.abs(np.sin(np.pi * np.linspace(0, 1, n, dtype=np.float32))))
            level = 0.0 if self.silent else 0.3
            pieces.append((level * tone * envelope).astype(np.float32))
            pieces.append(np.zeros(int(sr * 0.06), dtype=np.float32))  # the gap between words
        silence = np.zeros(int(sr * 0.1), dtype=np.float32)
        return np.concatenate([silence, *pieces, silence])
