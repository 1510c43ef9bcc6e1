"""Audio post-processing: measure, trim, resample, room tone, and assemble one chapter.

Plain numpy functions (no Prefect). Samples are mono float32 in [-1, 1], shape (n,).

    levels.py    AudioStats, measure, noise_floor_dbfs (and their streamed twins)
    dsp.py       trim_silence, resample, room_tone, fades: what happens to each clip
    limiter.py   the look-ahead peak limiter, whole-signal and streamed
    wavio.py     read_audio, write_wav_atomic, the WAV sink the assembler streams into
    assemble.py  assemble_chapter_to_wav: a chapter from clip files into a WAV in bounded memory
                 (longest clip + one limiter block + per-window statistics, whatever its length)

The public names are re-exported here: `from tasks.audio import measure, read_audio, ...`.
"""

from __future__ import annotations

from tasks.audio.assemble import assemble_chapter_to_wav
from tasks.audio.dsp import resample, room_tone, trim_silence
from tasks.audio.levels import AudioStats, measure, noise_floor_dbfs
from tasks.audio.wavio import read_audio, write_wav_atomic
from tasks.errors import os_error_from_text, output_error

__all__ = [
    "AudioStats",
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
