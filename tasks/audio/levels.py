"""Levels of a mono signal: RMS, sample peak, BS.1770 loudness and the ACX-style noise floor.

`measure` reads a whole array; `_StreamStats` gives the same `AudioStats` for a signal pushed in
chunks (the streaming assembler measures what it writes as it goes). Samples are mono float32 in
[-1, 1], shape (n,).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from scipy.signal import sosfilt

__all__ = ["AudioStats", "measure", "noise_floor_dbfs"]

_F32 = np.float32
_NOISE_WINDOW_MS = 50  # ACX-checker style: RMS over short windows
_NOISE_PERCENTILE = 5.0  # the floor is the 5th percentile of those window levels


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
