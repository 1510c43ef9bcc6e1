"""Tortoise voices: folders of reference clips, found, digested and read without torch.

    list_voices(voices_dir)         ours first, then the ones bundled with the tortoise package
    voice_clips(voice, voices_dir)  a voice's clips, or a VoiceError naming the folder and the fix
    load_clip_22k(path)             one clip as float32 mono at 22.05 kHz (any rate; wav, flac, ogg, mp3)
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
from pathlib import Path

import numpy as np

from tasks.errors import VoiceError

REFERENCE_RATE_HZ = 22050  # Tortoise reads reference clips at 22.05 kHz
CLIP_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg")
_PROMPT_RE = re.compile(r"\[[^\[\]]*\]")


def _default_voices_dir() -> Path:
    from tasks.paths import voices_dir

    return voices_dir()


def bundled_voices_dir() -> Path | None:
    """The voices folder shipped inside the tortoise package, found without importing it."""
    spec = importlib.util.find_spec("tortoise")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "voices"
    return folder if folder.is_dir() else None


def _clips_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in CLIP_EXTENSIONS)


def list_voices(voices_dir: str | Path | None = None) -> list[str]:
    """Voices this engine can speak: folders of reference clips in `voices_dir`, then Tortoise's bundled ones."""
    names: set[str] = set()
    for root in (Path(voices_dir) if voices_dir else _default_voices_dir(), bundled_voices_dir()):
        if root is not None and root.is_dir():
            names.update(d.name for d in root.iterdir() if d.is_dir() and _clips_in(d))
    return sorted(names)


def voice_clips(voice: str, voices_dir: str | Path | None = None) -> list[Path]:
    """The reference clips of `voice` (sorted by name): ours first, then Tortoise's bundled voice."""
    root = Path(voices_dir) if voices_dir else _default_voices_dir()
    bundled = bundled_voices_dir()
    if not voice or "/" in voice or "\\" in voice or voice.startswith("."):
        raise VoiceError(f"bad voice name {voice!r}", field="voice", fix="use a folder name under voices/")
    for folder in (root / voice, bundled / voice if bundled else None):
        if folder is not None and folder.is_dir():
            clips = _clips_in(folder)
            if clips:
                return clips
            raise VoiceError(
                f"voice folder {folder} holds no reference clips", file=folder, field="voice",
                fix=f"add 2-5 clips of 6-10 s each ({', '.join(CLIP_EXTENSIONS)})",
            )
    available = list_voices(root)
    raise VoiceError(
        f"unknown Tortoise voice {voice!r}: no folder {root / voice}", field="voice",
        fix=f"add reference clips to {root / voice}/ or use one of: {', '.join(available) or '(none)'}",
    )


def clips_digest(clips: list[Path]) -> list[tuple[str, str]]:
    """(name, sha256 of bytes) per clip, in name order."""
    return [(p.name, hashlib.sha256(p.read_bytes()).hexdigest()) for p in sorted(clips, key=lambda p: p.name)]


def load_clip_22k(path: Path) -> np.ndarray:
    """One reference clip as float32 mono at 22.05 kHz, shape (n,). Any rate; wav/flac/ogg/mp3."""
    try:
        import soundfile

        data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
        audio = data.mean(axis=1)
    except Exception:  # an mp3 libsndfile cannot read: librosa -> audioread -> ffmpeg
        try:
            import librosa

            audio, rate = librosa.load(str(path), sr=None, mono=True)
        except Exception as exc:
            raise VoiceError(f"cannot read reference clip {path}: {exc}", file=path,
                             fix="convert it to WAV or FLAC") from exc
    if audio.size < rate // 2:
        raise VoiceError(f"reference clip {path} is shorter than 0.5 s", file=path, fix="use clips of 6-10 s")
    if rate != REFERENCE_RATE_HZ:
        import soxr

        audio = soxr.resample(audio, rate, REFERENCE_RATE_HZ)
    return np.clip(audio.astype(np.float32), -1.0, 1.0)


def split_prompts(text: str) -> tuple[str, str]:
    """("[I am sad,] Hello." ) -> (text with prompts, text without them), whitespace collapsed."""
    spoken = " ".join(_PROMPT_RE.sub(" ", text).split())
    return text, spoken
