"""Assemble one chapter from its clip files into an ACX-ready WAV, streamed in bounded memory.

Loudness is set per chapter, never per sentence (per-sentence normalising makes audible jumps):
one gain brings the chapter's RMS to the target (ACX: -23..-18 dBFS, we aim at -20), then a
look-ahead peak limiter holds sample peaks at or below a ceiling (-3.5 dBFS, leaving 0.5 dB for codec
overshoot under ACX's -3 dBFS). Room tone is never amplified: the gain applies to speech only, and is
solved so the whole file, pauses included, lands on the target.

The in-memory reference the streamed signal is tested against lives in tests/audio_reference.py.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from tasks.audio.dsp import _ROOM_TONE_DBFS, _process_clip, _tone_pieces, room_tone
from tasks.audio.levels import AudioStats, _energy, _StreamStats
from tasks.audio.limiter import _StreamLimiter
from tasks.audio.wavio import _WavSink, read_audio

__all__ = ["assemble_chapter_to_wav"]

_F32 = np.float32
_MAKEUP_ROUNDS = 3  # limiter passes at most; make-up gain only ever goes between two of them


def _needs_makeup(rms_dbfs: float, target_rms_dbfs: float, e_speech: float, round_: int) -> bool:
    """After limiter pass `round_` (0-based): give back what the limiter took, then limit again?"""
    return (
        e_speech > 0
        and math.isfinite(rms_dbfs)
        and rms_dbfs < target_rms_dbfs - 0.25
        and round_ < _MAKEUP_ROUNDS - 1
    )


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
    """Join a chapter's clip files into one ACX-ready mono PCM_16 WAV at `out_path`, in bounded memory.

    Layout: head room tone, clip 0, pause 0, clip 1, ..., clip N-1, tail room tone. Each clip is
    trimmed (with pads), resampled to `out_sr`, and faded in/out over `fade_ms`; `pauses_after_ms[i]` of
    room tone follows clip i, except the last, whose pause is replaced by the tail. One gain for the
    whole chapter (speech only; room tone stays at its level) brings the file's RMS to
    `target_rms_dbfs`, the limiter holds peaks at `peak_ceiling_dbfs`, and room tone also lies under the
    speech, so no digital silence is left anywhere. tests/audio_reference.py builds the same signal in
    memory (equal up to float rounding, before 16-bit quantisation). Memory is O(longest clip + one
    limiter block + per-window statistics), whatever the chapter's length:

    - pass 1 reads and processes each clip (trim, resample, fade) and keeps only its length and energy,
      plus the room tone's energy, to solve the one chapter gain;
    - pass 2 processes each clip again, applies the gain and the room-tone bed, runs the limiter in
      blocks (look-ahead state carried across blocks) and appends to a temp WAV in `out_path`'s folder
      while measuring the stats (RMS, peak, noise floor, BS.1770 loudness) as it goes;
    - only if the limiter pulled the RMS more than 0.25 dB under the target: the pass is redone with
      a make-up gain and another limiter stage after the first (at most 3 limiter stages in all).

    The temp file is renamed onto `out_path` at the end (tasks.atomic): a failure leaves no file (and no
    temp file). Write faults become OutputError (see output_error); unreadable clips raise as read_audio
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

    # Pass 1: lengths and energies -> the chapter gain (as the in-memory reference solves it).
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
