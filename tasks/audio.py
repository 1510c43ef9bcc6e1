"""Audio post-processing: measure, trim, resample, room tone, and assemble one chapter.

Plain numpy functions (no Prefect). Samples are mono float32 in [-1, 1], shape (n,). Memory is
bounded by one chapter: a chapter is built with a single `numpy.concatenate` and processed in place.

Loudness is set per chapter, never per sentence (per-sentence normalising makes audible jumps):
one gain brings the chapter's RMS to the target (ACX: -23..-18 dBFS, we aim at -20), then a
look-ahead peak limiter holds sample peaks at or below a ceiling (-3.5 dBFS, leaving 0.5 dB for codec
overshoot under ACX's -3 dBFS). Room tone is never amplified: the gain applies to speech only, and is
solved so the whole file, pauses included, lands on the target.
"""

from __future__ import annotations

import errno
import math
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
from scipy.ndimage import minimum_filter1d, uniform_filter1d

from tasks.errors import AudiobookError, OutputError

__all__ = [
    "AudioStats",
    "assemble_chapter",
    "measure",
    "noise_floor_dbfs",
    "os_error_from_text",
    "output_error",
    "read_audio",
    "resample",
    "room_tone",
    "trim_silence",
    "write_wav_atomic",
]

_F32 = np.float32
_NOISE_WINDOW_MS = 50  # ACX-checker style: RMS over short windows
_NOISE_PERCENTILE = 5.0  # the floor is the 5th percentile of those window levels
_TRIM_FRAME_MS = 10
_LIMITER_LOOKAHEAD_MS = 5.0
_LIMITER_BLOCK = 1 << 20  # samples per limiter block (bounds temporary memory)
_ROOM_TONE_DBFS = -75.0
_OUTPUT_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT}


@dataclass(frozen=True)
class AudioStats:
    """Levels of one mono signal. dB values are dBFS (full scale = 1.0); -inf for digital silence."""

    duration_s: float
    sample_rate_hz: int
    rms_dbfs: float
    peak_dbfs: float
    lufs: float  # BS.1770 integrated loudness (pyloudnorm); -inf when shorter than one 400 ms block
    noise_floor_dbfs: float  # see noise_floor_dbfs()

    def meets_acx(self) -> bool:
        """ACX's technical bar: RMS -23..-18 dBFS, peaks <= -3 dBFS, noise floor <= -60 dBFS."""
        return -23.0 <= self.rms_dbfs <= -18.0 and self.peak_dbfs <= -3.0 and self.noise_floor_dbfs <= -60.0


def _db(power_or_amp: float, *, power: bool) -> float:
    if power_or_amp <= 0.0:
        return -math.inf
    return (10.0 if power else 20.0) * math.log10(power_or_amp)


def _as_mono_f32(samples: np.ndarray) -> np.ndarray:
    x = np.asarray(samples)
    if x.ndim == 2:
        x = x.mean(axis=1)
    if x.ndim != 1:
        raise ValueError(f"expected mono samples of shape (n,), got shape {x.shape}")
    return x.astype(_F32, copy=False)


def noise_floor_dbfs(samples: np.ndarray, sr: int) -> float:
    """Noise floor as ACX checkers estimate it: the level of the quietest stretches of the file.

    Method: split into non-overlapping 50 ms windows, take each window's RMS in dBFS, and report the
    5th percentile of those levels (lower interpolation, so it is an actual window's level). A
    percentile rather than the single quietest window keeps one lucky window from hiding a noisy
    file. A signal shorter than one window is measured as a whole.
    """
    x = _as_mono_f32(samples)
    if x.size == 0:
        return -math.inf
    win = max(1, int(sr * _NOISE_WINDOW_MS / 1000))
    n_win = x.size // win
    if n_win == 0:
        return _db(float(np.mean(np.square(x, dtype=np.float64))), power=True)
    frames = x[: n_win * win].reshape(n_win, win)
    power = np.einsum("ij,ij->i", frames, frames, dtype=np.float64) / win  # (n_win,) mean square
    p = float(np.percentile(power, _NOISE_PERCENTILE, method="lower"))
    return _db(p, power=True)


def _integrated_lufs(x: np.ndarray, sr: int) -> float:
    if x.size < int(0.4 * sr) + 1:
        return -math.inf  # BS.1770 needs at least one 400 ms gating block
    import pyloudnorm

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        value = float(pyloudnorm.Meter(sr).integrated_loudness(x))
    return value if math.isfinite(value) else -math.inf


def measure(samples: np.ndarray, sr: int) -> AudioStats:
    """Duration, RMS, sample peak, integrated loudness and noise floor of a mono signal."""
    x = _as_mono_f32(samples)
    if x.size == 0:
        return AudioStats(0.0, sr, -math.inf, -math.inf, -math.inf, -math.inf)
    ms = _mean_square(x)
    peak = float(np.max(np.abs(x)))
    return AudioStats(
        duration_s=x.size / sr,
        sample_rate_hz=sr,
        rms_dbfs=_db(ms, power=True),
        peak_dbfs=_db(peak, power=False),
        lufs=_integrated_lufs(x, sr),
        noise_floor_dbfs=noise_floor_dbfs(x, sr),
    )


def _mean_square(x: np.ndarray) -> float:
    """Mean square in float64 accumulated over blocks, so no float64 copy of a long chapter is made."""
    total = 0.0
    for start in range(0, x.size, 1 << 20):
        block = x[start : start + (1 << 20)]
        total += float(np.dot(block, block.astype(np.float64)))
    return total / max(1, x.size)


def _energy(x: np.ndarray) -> float:
    return _mean_square(x) * x.size


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


def _limit_peaks(x: np.ndarray, sr: int, ceiling_dbfs: float) -> None:
    """Look-ahead brick-wall limiter, in place, vectorised in blocks.

    For each sample the needed gain is g = min(1, c/|x|). A running minimum of g over +-R samples
    (R = 5 ms) followed by a +-R moving average gives a smooth gain curve that starts falling R samples
    before a peak and recovers R samples after it; every value averaged at sample n is a minimum over
    a window containing n, so the smoothed gain never exceeds g[n] and |x*gain| <= c exactly.
    Blocks with no sample over the ceiling are skipped, so speech that already fits costs one max().
    """
    c = 10.0 ** (ceiling_dbfs / 20.0) * 0.9995  # tiny margin for float32 rounding
    r = max(1, int(sr * _LIMITER_LOOKAHEAD_MS / 1000))
    margin = 2 * r  # the gain at n depends on |x| over [n-2R, n+2R]
    n = x.size
    for a in range(0, n, _LIMITER_BLOCK):
        b = min(n, a + _LIMITER_BLOCK)
        lo, hi = max(0, a - margin), min(n, b + margin)
        seg = np.abs(x[lo:hi])
        if float(seg.max(initial=0.0)) <= c:
            continue
        need = np.minimum(_F32(1.0), _F32(c) / np.maximum(seg, _F32(1e-12)))
        gain = minimum_filter1d(need, size=2 * r + 1, mode="nearest")
        gain = uniform_filter1d(gain, size=2 * r + 1, mode="nearest")
        gain = np.minimum(gain, need)  # guard against rounding in the moving average
        x[a:b] *= gain[a - lo : b - lo]


def assemble_chapter(
    clips: Sequence[tuple[np.ndarray, int]],
    pauses_after_ms: Sequence[int],
    *,
    out_sr: int = 44100,
    head_ms: int = 750,
    tail_ms: int = 2500,
    fade_ms: int = 8,
    target_rms_dbfs: float = -20.0,
    peak_ceiling_dbfs: float = -3.5,
) -> tuple[np.ndarray, AudioStats]:
    """Join a chapter's clips into one ACX-ready mono float32 signal at `out_sr`.

    Layout: head room tone, clip 0, pause 0, clip 1, ..., clip N-1, tail room tone. Each clip is
    trimmed (with pads), resampled, and faded in/out over `fade_ms`; `pauses_after_ms[i]` of room tone
    follows clip i, except the last, whose pause is replaced by the tail. Then one gain for the whole
    chapter (speech only; room tone stays at its level) brings the file's RMS to `target_rms_dbfs`, and
    the limiter holds peaks at `peak_ceiling_dbfs`; if limiting pulled the RMS down, a small make-up
    gain and another limiter pass follow (at most 3 rounds). Room tone also lies under the speech, so no
    digital silence is left anywhere. Returns the samples and their stats.
    """
    if len(pauses_after_ms) != len(clips):
        raise ValueError(f"need one pause per clip: {len(clips)} clips, {len(pauses_after_ms)} pauses")
    if any(p < 0 for p in pauses_after_ms):
        raise ValueError("pauses_after_ms must be >= 0")

    def tone(ms: int, seed: int) -> np.ndarray:
        return room_tone(int(round(out_sr * ms / 1000)), level_dbfs=_ROOM_TONE_DBFS, seed=seed)

    n_fade = int(round(out_sr * fade_ms / 1000))
    parts: list[np.ndarray] = [tone(head_ms, 0)]
    spans: list[tuple[int, int]] = []  # (start, end) of each clip in the output, in samples
    pos = parts[0].size
    for i, (samples, sr) in enumerate(clips):
        clip = resample(trim_silence(samples, sr), sr, out_sr).copy()  # own copy: faded in place
        _fade_in_out(clip, n_fade)
        parts.append(clip)
        spans.append((pos, pos + clip.size))
        pos += clip.size
        gap = tone(tail_ms, 1) if i == len(clips) - 1 else tone(int(pauses_after_ms[i]), 2 + i)
        parts.append(gap)
        pos += gap.size
    if not clips:
        parts.append(tone(tail_ms, 1))
    out = np.concatenate(parts)
    del parts

    # Solve the speech gain g so that (g^2 * E_speech + E_tone) / N == target^2, where E_tone counts
    # the pauses and the room-tone bed laid under the speech below.
    tone_ms = 10.0 ** (_ROOM_TONE_DBFS / 10.0)
    e_speech = sum(_energy(out[s:e]) for s, e in spans)
    e_tone = max(0.0, _energy(out) - e_speech) + tone_ms * sum(e - s for s, e in spans)
    target_ms = 10.0 ** (target_rms_dbfs / 10.0)
    g2 = (target_ms * out.size - e_tone) / e_speech if e_speech > 0 else 0.0
    gain = math.sqrt(g2) if g2 > 0 else 1.0
    for i, (s, e) in enumerate(spans):
        out[s:e] *= _F32(gain)
        # Room tone under the speech too, so digital silence inside a clip never reaches the file.
        out[s:e] += room_tone(e - s, level_dbfs=_ROOM_TONE_DBFS, seed=1000 + i)
    for _ in range(3):
        _limit_peaks(out, out_sr, peak_ceiling_dbfs)
        rms = _db(_mean_square(out), power=True)
        if e_speech <= 0 or not math.isfinite(rms) or rms >= target_rms_dbfs - 0.25:
            break
        makeup = _F32(10.0 ** ((target_rms_dbfs - rms) / 20.0))  # what the limiter took, given back
        for s, e in spans:
            out[s:e] *= makeup
    return out, measure(out, out_sr)


def output_error(exc: OSError, folder: Path) -> AudiobookError:
    """Turn an OSError from writing into `folder` into the error to raise.

    Full disk, read-only file system and permission errors become an OutputError (the user can fix
    them); anything else is an internal AudiobookError.
    """
    if exc.errno in _OUTPUT_ERRNOS:
        reason = {
            errno.ENOSPC: "the disk is full",
            errno.EDQUOT: "the disk quota is exceeded",
            errno.EROFS: "the folder is on a read-only file system",
        }.get(exc.errno, "permission denied")
        return OutputError(
            f"cannot write to the output folder: {reason} ({exc.strerror or exc})",
            file=folder,
            fix="free some space or choose a writable output folder",
        )
    return AudiobookError(f"writing into {folder} failed: {exc}")


def os_error_from_text(text: str) -> OSError:
    """Recover an OSError from a tool's error text (libsndfile, ffmpeg), for output_error()."""
    for code in (errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EDQUOT):
        if os.strerror(code).lower() in text.lower():
            return OSError(code, os.strerror(code))
    return OSError(text)


def write_wav_atomic(path: Path, samples: np.ndarray, sr: int, *, subtype: str = "PCM_16") -> Path:
    """Write a mono WAV (PCM_16 by default, or "FLOAT") via a temp file in the same folder + os.replace.

    A crash never leaves a half file under `path`. OS errors become OutputError (see output_error).
    """
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.partial.wav")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(tmp), _as_mono_f32(samples), sr, subtype=subtype, format="WAV")
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise output_error(exc, path.parent) from exc
    except sf.LibsndfileError as exc:  # libsndfile reports OS faults as text, e.g. "System error : ..."
        tmp.unlink(missing_ok=True)
        raise output_error(os_error_from_text(str(exc)), path.parent) from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def read_audio(path: Path) -> tuple[np.ndarray, int]:
    """Read an audio file as mono float32 (channels averaged) and its sample rate."""
    data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    mono = data[:, 0] if data.shape[1] == 1 else data.mean(axis=1, dtype=_F32)
    return np.ascontiguousarray(mono, dtype=_F32), int(sr)
