"""Audio post-processing: measure, trim, resample, room tone, and assemble one chapter.

Plain numpy functions (no Prefect). Samples are mono float32 in [-1, 1], shape (n,).
`assemble_chapter_to_wav` streams a chapter from clip files into a WAV in bounded memory (longest clip
+ one limiter block + per-window statistics, whatever the chapter's length); `assemble_chapter` builds
the same signal in memory (one `numpy.concatenate`, processed in place) for callers holding arrays.

Loudness is set per chapter, never per sentence (per-sentence normalising makes audible jumps):
one gain brings the chapter's RMS to the target (ACX: -23..-18 dBFS, we aim at -20), then a
look-ahead peak limiter holds sample peaks at or below a ceiling (-3.5 dBFS, leaving 0.5 dB for codec
overshoot under ACX's -3 dBFS). Room tone is never amplified: the gain applies to speech only, and is
solved so the whole file, pauses included, lands on the target.
"""

from __future__ import annotations

import bisect
import errno
import math
import os
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
from scipy.ndimage import minimum_filter1d, uniform_filter1d
from scipy.signal import sosfilt

from tasks.errors import AudiobookError, OutputError

__all__ = [
    "AudioStats",
    "assemble_chapter",
    "assemble_chapter_to_wav",
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
_MAKEUP_ROUNDS = 3  # limiter passes at most; make-up gain only ever goes between two of them
_TONE_PIECE = 1 << 20  # room tone for long gaps is generated in pieces of this many samples
_OUTPUT_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT}


@dataclass(frozen=True)
class AudioStats:
    """Levels of one mono signal. dB values are dBFS (full scale = 1.0); -inf for digital silence."""

    duration_s: float
    sample_rate_hz: int
    rms_dbfs: float
    peak_dbfs: float
    lufs: float  # BS.1770 integrated loudness (pyloudnorm, or its block-wise twin when streamed); -inf
    # when shorter than one 400 ms block
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
    """Mean square accumulated in float64 without a float64 copy (einsum casts in small buffers)."""
    if x.size == 0:
        return 0.0
    return float(np.einsum("i,i->", x, x, dtype=np.float64)) / x.size


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


def _process_clip(samples: np.ndarray, sr: int, out_sr: int, n_fade: int) -> np.ndarray:
    """One clip as it goes into a chapter: trimmed (with pads), resampled to out_sr, faded in and out."""
    clip = resample(trim_silence(samples, sr), sr, out_sr).copy()  # own copy: faded in place
    _fade_in_out(clip, n_fade)
    return clip


def _needs_makeup(rms_dbfs: float, target_rms_dbfs: float, e_speech: float, round_: int) -> bool:
    """After limiter pass `round_` (0-based): give back what the limiter took, then limit again?"""
    return (
        e_speech > 0
        and math.isfinite(rms_dbfs)
        and rms_dbfs < target_rms_dbfs - 0.25
        and round_ < _MAKEUP_ROUNDS - 1
    )


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
    gain and another limiter pass follow (at most 3 limiter passes; the last one is never followed by
    make-up gain, so peaks always end at or under the ceiling). Room tone also lies under the speech, so no
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
        clip = _process_clip(samples, sr, out_sr, n_fade)
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
    for round_ in range(_MAKEUP_ROUNDS):
        _limit_peaks(out, out_sr, peak_ceiling_dbfs)
        rms = _db(_mean_square(out), power=True)
        if not _needs_makeup(rms, target_rms_dbfs, e_speech, round_):
            break
        makeup = _F32(10.0 ** ((target_rms_dbfs - rms) / 20.0))  # what the limiter took, given back
        for s, e in spans:
            out[s:e] *= makeup
    return out, measure(out, out_sr)


# ---------------------------------------------------------------- streaming assembly


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


class _StreamLimiter:
    """`_limit_peaks` over a stream of chunks, with bounded memory.

    It uses the same absolute blocks (multiples of _LIMITER_BLOCK) and the same look-ahead margins as
    `_limit_peaks` on the whole signal, and keeps its left margin as already-limited samples (as the
    in-place original sees them), so the output equals `_limit_peaks` of the concatenated input. It holds
    at most one block plus two margins plus the chunk being pushed.
    """

    def __init__(self, sr: int, ceiling_dbfs: float, block: int | None = None) -> None:
        self._c = 10.0 ** (ceiling_dbfs / 20.0) * 0.9995  # as _limit_peaks
        self._r = max(1, int(sr * _LIMITER_LOOKAHEAD_MS / 1000))
        self._m = 2 * self._r
        self._block = _LIMITER_BLOCK if block is None else block
        self._buf = np.zeros(0, dtype=_F32)  # samples [buf0, buf0 + buf.size): margin + not yet emitted
        self._buf0 = 0
        self._pending: list[np.ndarray] = []  # pushed, not yet joined onto _buf
        self._n_pending = 0
        self._next = 0  # absolute start of the next block to emit

    def push(self, x: np.ndarray) -> list[np.ndarray]:
        if x.size:
            self._pending.append(x)
            self._n_pending += x.size
        out: list[np.ndarray] = []
        while self._buf0 + self._buf.size + self._n_pending >= self._next + self._block + self._m:
            out.append(self._emit(final=False))
        return out

    def flush(self) -> list[np.ndarray]:
        out: list[np.ndarray] = []
        while self._buf0 + self._buf.size + self._n_pending > self._next:
            out.append(self._emit(final=True))
        return out

    def _emit(self, *, final: bool) -> np.ndarray:
        if self._pending:
            self._buf = np.concatenate([self._buf, *self._pending])
            self._pending, self._n_pending = [], 0
        end = self._buf0 + self._buf.size  # the signal's end when final
        a = self._next
        b = min(end, a + self._block) if final else a + self._block
        lo, hi = max(0, a - self._m), (min(end, b + self._m) if final else b + self._m)
        seg = np.abs(self._buf[lo - self._buf0 : hi - self._buf0])
        if float(seg.max(initial=0.0)) > self._c:
            c, width = self._c, 2 * self._r + 1
            need = np.minimum(_F32(1.0), _F32(c) / np.maximum(seg, _F32(1e-12)))
            gain = minimum_filter1d(need, size=width, mode="nearest")
            gain = uniform_filter1d(gain, size=width, mode="nearest")
            gain = np.minimum(gain, need)
            self._buf[a - self._buf0 : b - self._buf0] *= gain[a - lo : b - lo]
        del seg
        block = self._buf[a - self._buf0 : b - self._buf0].copy()
        keep = max(self._buf0, b - self._m)  # the next block's left margin, already limited
        self._buf = self._buf[keep - self._buf0 :]
        self._buf0 = keep
        self._next = b
        return block


class _StreamMakeup:
    """Multiplies the speech spans (absolute [start, end) sample ranges, sorted) by a gain, in place."""

    def __init__(self, spans: Sequence[tuple[int, int]], gain: float) -> None:
        self._spans = spans
        self._ends = [e for _, e in spans]
        self._gain = _F32(gain)
        self._pos = 0

    def push(self, x: np.ndarray) -> list[np.ndarray]:
        a, b = self._pos, self._pos + x.size
        i = bisect.bisect_right(self._ends, a)  # first span ending after a
        while i < len(self._spans) and self._spans[i][0] < b:
            s, e = self._spans[i]
            x[max(s, a) - a : min(e, b) - a] *= self._gain
            i += 1
        self._pos = b
        return [x]

    def flush(self) -> list[np.ndarray]:
        return []


class _KWeightedLoudness:
    """BS.1770 integrated loudness (mono), block-wise: K-weighting filtered with carried state, sums of
    squares per 100 ms hop kept (36,000 floats per hour), then 400 ms blocks with 75% overlap, gated
    at -70 LUFS absolute and -10 LU relative. Matches pyloudnorm's Meter(rate).integrated_loudness,
    whose filter coefficients it uses (RBJ high shelf +4 dB at 1.5 kHz, high pass at 38 Hz)."""

    def __init__(self, sr: int) -> None:
        self._sr = sr
        self._sos = _k_weighting_sos(sr)
        self._zi = np.zeros((self._sos.shape[0], 2), dtype=np.float64)
        self._hops: list[float] = []  # closed 100 ms hops' sums of squares
        self._acc = 0.0  # the open hop's sum so far
        self._pos = 0
        self._k = 1  # index of the next hop boundary, at (k * sr) // 10

    def push(self, x: np.ndarray) -> None:
        if x.size == 0:
            return
        y, self._zi = sosfilt(self._sos, x, zi=self._zi)
        y2 = np.square(y, dtype=np.float64)
        a, b = self._pos, self._pos + x.size
        start = 0
        while (bound := (self._k * self._sr) // 10) < b:
            cut = bound - a
            self._acc += float(np.sum(y2[start:cut]))
            self._hops.append(self._acc)
            self._acc, start = 0.0, cut
            self._k += 1
        self._acc += float(np.sum(y2[start:]))
        self._pos = b

    def result(self) -> float:
        n, sr = self._pos, self._sr
        if n < int(0.4 * sr) + 1:
            return -math.inf  # as measure(): BS.1770 needs at least one 400 ms gating block
        hops = np.array([*self._hops, self._acc], dtype=np.float64)
        n_blocks = int(np.round((n / sr - 0.4) / (0.4 * 0.25))) + 1  # as pyloudnorm
        hops = np.concatenate([hops, np.zeros(max(0, n_blocks + 3 - hops.size))])
        csum = np.concatenate([[0.0], np.cumsum(hops)])
        z = (csum[4 : n_blocks + 4] - csum[:n_blocks]) / (0.4 * sr)
        z = np.maximum(z, 0.0)  # cumulative-sum rounding
        with np.errstate(divide="ignore"):
            lk = -0.691 + 10.0 * np.log10(z)
        gated = lk >= -70.0
        if not gated.any():
            return -math.inf
        rel = -0.691 + 10.0 * math.log10(float(np.mean(z[gated]))) - 10.0
        gated = (lk > rel) & (lk > -70.0)
        if not gated.any():
            return -math.inf
        return -0.691 + 10.0 * math.log10(float(np.mean(z[gated])))


def _k_weighting_sos(sr: int) -> np.ndarray:
    """pyloudnorm's K-weighting (high shelf, then high pass) as second-order sections, shape (2, 6)."""
    import pyloudnorm

    filters = pyloudnorm.Meter(sr)._filters  # {'high_shelf': IIRfilter, 'high_pass': IIRfilter}
    rows = []
    for f in filters.values():
        b, a = np.asarray(f.b, dtype=np.float64), np.asarray(f.a, dtype=np.float64)
        rows.append(np.concatenate([b * f.passband_gain / a[0], a / a[0]]))
    return np.array(rows)


class _StreamStats:
    """AudioStats of a signal pushed in chunks: exact RMS and peak, noise floor as noise_floor_dbfs
    (per-window powers kept: 72,000 floats per hour), LUFS block-wise (_KWeightedLoudness)."""

    def __init__(self, sr: int) -> None:
        self._sr = sr
        self._n = 0
        self._sum_sq = 0.0
        self._peak = 0.0
        self._win = max(1, int(sr * _NOISE_WINDOW_MS / 1000))
        self._rest = np.zeros(0, dtype=_F32)  # the open noise window's samples
        self._powers: list[np.ndarray] = []
        self._loudness = _KWeightedLoudness(sr)

    def push(self, x: np.ndarray) -> None:
        if x.size == 0:
            return
        self._n += x.size
        self._sum_sq += _energy(x)
        self._peak = max(self._peak, float(x.max()), -float(x.min()))
        joined = np.concatenate([self._rest, x]) if self._rest.size else x
        n_win = joined.size // self._win
        if n_win:
            frames = joined[: n_win * self._win].reshape(n_win, self._win)
            self._powers.append(np.einsum("ij,ij->i", frames, frames, dtype=np.float64) / self._win)
        self._rest = joined[n_win * self._win :].copy()
        self._loudness.push(x)

    @property
    def rms_dbfs(self) -> float:
        return _db(self._sum_sq / max(1, self._n), power=True)

    def result(self) -> AudioStats:
        sr = self._sr
        if self._n == 0:
            return AudioStats(0.0, sr, -math.inf, -math.inf, -math.inf, -math.inf)
        if self._powers:
            floor_power = float(np.percentile(np.concatenate(self._powers), _NOISE_PERCENTILE, method="lower"))
        else:  # shorter than one window: measured as a whole
            floor_power = float(np.mean(np.square(self._rest, dtype=np.float64)))
        return AudioStats(
            duration_s=self._n / sr,
            sample_rate_hz=sr,
            rms_dbfs=self.rms_dbfs,
            peak_dbfs=_db(self._peak, power=False),
            lufs=self._loudness.result(),
            noise_floor_dbfs=_db(floor_power, power=True),
        )


class _WavSink:
    """A PCM_16 mono WAV written through a temp file in the target's folder, os.replace'd at commit.
    OS faults become OutputError (see output_error); discard() removes the temp file."""

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
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd, name = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.stem}.", suffix=".partial")
                os.close(fd)
                self._tmp = Path(name)
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
            os.replace(self._tmp, self.path)
            self._tmp = None
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


def _run_stages(
    source: Iterator[np.ndarray], stages: Sequence[_StreamLimiter | _StreamMakeup], stats: _StreamStats, sink: _WavSink
) -> None:
    """Push every chunk of `source` through `stages` in order, into `stats` and `sink`; then flush."""

    def emit(chunks: list[np.ndarray], k: int) -> None:
        for chunk in chunks:
            if k == len(stages):
                stats.push(chunk)
                sink.write(chunk)
            else:
                emit(stages[k].push(chunk), k + 1)

    for chunk in source:
        emit([chunk], 0)
    for k, stage in enumerate(stages):
        emit(stage.flush(), k + 1)


def assemble_chapter_to_wav(
    clip_paths: Sequence[Path],
    pauses_after_ms: Sequence[int],
    out_path: Path,
    *,
    out_sr: int = 44100,
    head_ms: int = 750,
    tail_ms: int = 2500,
    fade_ms: int = 8,
    target_rms_dbfs: float = -20.0,
    peak_ceiling_dbfs: float = -3.5,
    clip_spans: list[tuple[int, int]] | None = None,
) -> AudioStats:
    """`assemble_chapter` on clip files, streamed into a PCM_16 WAV at `out_path`, in bounded memory.

    Same layout, gain, room tone and limiter as `assemble_chapter` (its float output, before 16-bit
    quantisation, is the same signal up to float rounding). Memory is O(longest clip + one limiter
    block + per-window statistics), whatever the chapter's length:

    - pass 1 reads and processes each clip (trim, resample, fade) and keeps only its length and energy,
      plus the room tone's energy, to solve the one chapter gain;
    - pass 2 processes each clip again, applies the gain and the room-tone bed, runs the limiter in
      blocks (look-ahead state carried across blocks) and appends to a temp WAV in `out_path`'s folder
      while measuring the stats (RMS, peak, noise floor, BS.1770 loudness) as it goes;
    - only if the limiter pulled the RMS more than 0.25 dB under the target: the pass is redone with
      a make-up gain and another limiter stage after the first (at most 3 limiter stages in all).

    The temp file is os.replace'd onto `out_path` at the end: a failure leaves no file (and no temp
    file). Write faults become OutputError (see output_error); unreadable clips raise as read_audio
    does. Returns the stats of the written signal (before quantisation); `clip_spans`, when given,
    receives each clip's (start, end) in the output, in samples at `out_sr`.
    """
    paths = [Path(p) for p in clip_paths]
    if len(pauses_after_ms) != len(paths):
        raise ValueError(f"need one pause per clip: {len(paths)} clips, {len(pauses_after_ms)} pauses")
    if any(p < 0 for p in pauses_after_ms):
        raise ValueError("pauses_after_ms must be >= 0")
    n_fade = int(round(out_sr * fade_ms / 1000))

    def n_of(ms: int) -> int:
        return int(round(out_sr * ms / 1000))

    # Gaps as (samples, seed): [0] is the head, [i + 1] follows clip i (the tail after the last clip).
    gaps = [(n_of(head_ms), 0)]
    gaps += [(n_of(tail_ms), 1) if i == len(paths) - 1 else (n_of(int(ms)), 2 + i) for i, ms in enumerate(pauses_after_ms)]
    if not paths:
        gaps.append((n_of(tail_ms), 1))

    def clip(i: int) -> np.ndarray:
        samples, sr = read_audio(paths[i])
        return _process_clip(samples, sr, out_sr, n_fade)

    # Pass 1: lengths and energies -> the chapter gain (as assemble_chapter solves it).
    spans: list[tuple[int, int]] = []
    e_speech = e_gaps = 0.0
    pos = gaps[0][0]
    for i in range(len(paths)):
        x = clip(i)
        e_speech += _energy(x)
        spans.append((pos, pos + x.size))
        pos += x.size + gaps[i + 1][0]
        del x
    for n, seed in gaps:
        e_gaps += sum(_energy(piece) for piece in _tone_pieces(n, seed))
    n_total = sum(n for n, _ in gaps) + sum(e - s for s, e in spans)
    tone_ms = 10.0 ** (_ROOM_TONE_DBFS / 10.0)
    e_tone = e_gaps + tone_ms * sum(e - s for s, e in spans)
    target_ms = 10.0 ** (target_rms_dbfs / 10.0)
    g2 = (target_ms * n_total - e_tone) / e_speech if e_speech > 0 else 0.0
    gain = _F32(math.sqrt(g2) if g2 > 0 else 1.0)

    def source() -> Iterator[np.ndarray]:
        yield from _tone_pieces(*gaps[0])
        for i, (s, e) in enumerate(spans):
            x = clip(i)
            x *= gain
            x += room_tone(e - s, level_dbfs=_ROOM_TONE_DBFS, seed=1000 + i)
            yield x
            yield from _tone_pieces(*gaps[i + 1])
        if not spans:
            yield from _tone_pieces(*gaps[1])

    # Pass 2 (and, only when make-up gain is needed, again with one more limiter stage).
    sink = _WavSink(Path(out_path), out_sr)
    makeups: list[float] = []
    try:
        for round_ in range(_MAKEUP_ROUNDS):
            stages: list[_StreamLimiter | _StreamMakeup] = [_StreamLimiter(out_sr, peak_ceiling_dbfs)]
            for m in makeups:
                stages += [_StreamMakeup(spans, m), _StreamLimiter(out_sr, peak_ceiling_dbfs)]
            stats = _StreamStats(out_sr)
            sink.open()
            _run_stages(source(), stages, stats, sink)
            rms = stats.rms_dbfs
            if not _needs_makeup(rms, target_rms_dbfs, e_speech, round_):
                break
            makeups.append(10.0 ** ((target_rms_dbfs - rms) / 20.0))
        result = stats.result()
        sink.commit()
    except BaseException:
        sink.discard()
        raise
    if clip_spans is not None:
        clip_spans[:] = spans
    return result


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
