"""The look-ahead peak limiter, on a whole signal (`_limit_peaks`) or on a stream (`_StreamLimiter`).

Both cut the signal into the same absolute blocks of `_LIMITER_BLOCK` samples, so the streamed output
equals the whole-signal one exactly, in bounded memory.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import minimum_filter1d, uniform_filter1d

_F32 = np.float32
_LIMITER_LOOKAHEAD_MS = 5.0
_LIMITER_BLOCK = 1 << 20  # samples per limiter block (bounds temporary memory)


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
