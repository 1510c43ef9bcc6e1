"""The in-memory chapter assembler: a reference the streaming `assemble_chapter_to_wav` is tested against.

It builds the whole chapter as one array (one `numpy.concatenate`, processed in place), the plain way to
read the layout, gain, room tone and limiter rules; tasks.audio.assemble streams the same signal from
clip files in bounded memory, and tests/test_audio.py checks the two agree sample for sample.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from tasks.audio.assemble import _MAKEUP_ROUNDS, _needs_makeup
from tasks.audio.dsp import _ROOM_TONE_DBFS, _process_clip, room_tone
from tasks.audio.levels import AudioStats, _db, _energy, _mean_square, measure
from tasks.audio.limiter import _limit_peaks

_F32 = np.float32


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
