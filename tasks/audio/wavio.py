"""Reading audio files, and writing mono WAVs through a temp file renamed into place.

OS faults while writing become OutputError (see tasks.errors.output_error).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from tasks import atomic
from tasks.audio.levels import _as_mono_f32
from tasks.errors import AudiobookError, os_error_from_text, output_error

__all__ = ["read_audio", "write_wav_atomic"]

_F32 = np.float32


class _WavSink:
    """A PCM_16 mono WAV written through a temp file in the target's folder, renamed over it at commit
    (tasks.atomic). OS faults become OutputError (see output_error); discard() removes the temp file."""

    def __init__(self, path: Path, sr: int) -> None:
        self.path = path
        self._sr = sr
        self._tmp: Path | None = None
        self._file: sf.SoundFile | None = None

    def _fail(self, exc: Exception) -> AudiobookError:
        self.discard()
        if isinstance(exc, OSError):
            return output_error(exc, self.path.parent)
        return output_error(os_error_from_text(str(exc)), self.path.parent)

    def open(self) -> None:
        """(Re)start the file from empty."""
        try:
            if self._file is not None:
                self._file.close()
                self._file = None
            if self._tmp is None:
                self._tmp = atomic.new_temp(self.path, suffix=".wav")
            self._file = sf.SoundFile(
                str(self._tmp), mode="w", samplerate=self._sr, channels=1, subtype="PCM_16", format="WAV"
            )
        except (OSError, sf.LibsndfileError) as exc:
            raise self._fail(exc) from exc

    def write(self, x: np.ndarray) -> None:
        assert self._file is not None
        try:
            self._file.write(x)
        except (OSError, sf.LibsndfileError) as exc:
            raise self._fail(exc) from exc

    def commit(self) -> None:
        assert self._file is not None and self._tmp is not None
        try:
            self._file.close()
            self._file = None
            tmp, self._tmp = self._tmp, None
            atomic.commit(tmp, self.path)
        except (OSError, sf.LibsndfileError) as exc:
            raise self._fail(exc) from exc

    def discard(self) -> None:
        if self._file is not None:
            try:
                self._file.close()
            except Exception:  # noqa: BLE001 - already failing; the temp file goes anyway
                pass
            self._file = None
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)
            self._tmp = None


def write_wav_atomic(path: Path, samples: np.ndarray, sr: int, *, subtype: str = "PCM_16") -> Path:
    """Write a mono WAV (PCM_16 by default, or "FLOAT") via a temp file in the same folder (tasks.atomic).

    A crash never leaves a half file under `path`. OS errors become OutputError (see output_error).
    """
    path = Path(path)
    try:
        with atomic.atomic_path(path, suffix=".wav") as tmp:
            sf.write(str(tmp), _as_mono_f32(samples), sr, subtype=subtype, format="WAV")
    except OSError as exc:
        raise output_error(exc, path.parent) from exc
    except sf.LibsndfileError as exc:  # libsndfile reports OS faults as text, e.g. "System error : ..."
        raise output_error(os_error_from_text(str(exc)), path.parent) from exc
    return path


def read_audio(path: Path) -> tuple[np.ndarray, int]:
    """Read an audio file as mono float32 (channels averaged) and its sample rate."""
    data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    mono = data[:, 0] if data.shape[1] == 1 else data.mean(axis=1, dtype=_F32)
    return np.ascontiguousarray(mono, dtype=_F32), int(sr)
