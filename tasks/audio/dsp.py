"""Clip-level signal processing: trim silence, resample, room tone, fades.

Plain numpy functions; samples are mono float32 in [-1, 1], shape (n,). Room tone is very quiet
deterministic noise (ACX rejects pure digital silence); `_tone_pieces` draws long stretches of it in
bounded pieces, the same samples as one draw.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import soxr

from tasks.audio.levels import _as_mono_f32

__all__ = ["resample", "room_tone", "trim_silence"]

_F32 = np.float32
_TRIM_FRAME_MS = 10
_ROOM_TONE_DBFS = -75.0
_TONE_PIECE = 1 << 20  # room tone for long gaps is generated in pieces of this many samples


def trim_silence(
    samples: np.ndarray,
    sr: int,
    *,
    threshold_db: float = -45.0,
    keep_head_ms: int = 30,
    keep_tail_ms: int = 120,
) -> np.ndarray:
    """Cut leading and trailing silence, keeping short pads so onsets and last syllables survive.

    A 10 ms frame counts as sound when its RMS is at or above `threshold_db` dBFS (absolute). The
    result runs from `keep_head_ms` before the first sound frame to `keep_tail_ms` after the end of
    the last one (clamped to the clip). Silence inside the clip is left alone. A clip with no sound
    frame gives an empty array. Returns a view into `samples` (float32).
    """
    x = _as_mono_f32(samples)
    if x.size == 0:
        return x
    hop = max(1, int(sr * _TRIM_FRAME_MS / 1000))
    n_frames = -(-x.size // hop)
    padded = np.zeros(n_frames * hop, dtype=_F32)
    padded[: x.size] = x
    frames = padded.reshape(n_frames, hop)
    # The last frame may be partial: average over its real length so a short final syllable counts.
    lengths = np.full(n_frames, hop, dtype=np.float64)
    lengths[-1] = x.size - (n_frames - 1) * hop
    power = np.einsum("ij,ij->i", frames, frames, dtype=np.float64) / lengths
    loud = np.flatnonzero(power >= 10.0 ** (threshold_db / 10.0))
    if loud.size == 0:
        return x[:0]
    start = max(0, int(loud[0]) * hop - int(sr * keep_head_ms / 1000))
    end = min(x.size, (int(loud[-1]) + 1) * hop + int(sr * keep_tail_ms / 1000))
    return x[start:end]


def resample(samples: np.ndarray, sr_from: int, sr_to: int) -> np.ndarray:
    """Resample with soxr (HQ). Returns float32; the same rate returns the samples unchanged."""
    x = _as_mono_f32(samples)
    if sr_from == sr_to or x.size == 0:
        return x if sr_from == sr_to else np.zeros(0, dtype=_F32)
    return np.asarray(soxr.resample(x, sr_from, sr_to, quality="HQ"), dtype=_F32)


def room_tone(n_samples: int, *, level_dbfs: float = -75.0, seed: int = 0) -> np.ndarray:
    """Very quiet deterministic white noise at `level_dbfs` RMS, float32, shape (n_samples,).

    ACX rejects pure digital silence; this stands in for a studio's room tone. At -75 dBFS RMS the
    sample peaks stay near -70 dBFS, well under ACX's -60 dBFS floor, and above 16-bit quantisation.
    """
    if n_samples <= 0:
        return np.zeros(0, dtype=_F32)
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal(n_samples, dtype=_F32)
    noise *= _F32(10.0 ** (level_dbfs / 20.0))
    return noise


def _fade_in_out(x: np.ndarray, n_fade: int) -> None:
    """Raised-cosine fade in and out over n_fade samples each, in place."""
    n = min(n_fade, x.size // 2)
    if n <= 0:
        return
    ramp = (0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, n + 2)[1:-1])).astype(_F32)
    x[:n] *= ramp
    x[-n:] *= ramp[::-1]


def _process_clip(samples: np.ndarray, sr: int, out_sr: int, n_fade: int) -> np.ndarray:
    """One clip as it goes into a chapter: trimmed (with pads), resampled to out_sr, faded in and out."""
    clip = resample(trim_silence(samples, sr), sr, out_sr).copy()  # own copy: faded in place
    _fade_in_out(clip, n_fade)
    return clip


def _tone_pieces(n_samples: int, seed: int) -> Iterator[np.ndarray]:
    """room_tone(n_samples, seed=seed) in pieces of at most _TONE_PIECE samples (the same samples:
    one generator drawn in pieces gives the same stream as one draw)."""
    if n_samples <= 0:
        return
    if n_samples <= _TONE_PIECE:
        yield room_tone(n_samples, level_dbfs=_ROOM_TONE_DBFS, seed=seed)
        return
    rng = np.random.default_rng(seed)
    scale = _F32(10.0 ** (_ROOM_TONE_DBFS / 20.0))
    for start in range(0, n_samples, _TONE_PIECE):
        piece = rng.standard_normal(min(_TONE_PIECE, n_samples - start), dtype=_F32)
        piece *= scale
        yield piece
