"""Unit and property tests for tasks.audio: levels, trimming, resampling, room tone, chapter assembly."""

from __future__ import annotations

import errno
import math
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import given, settings
from hypothesis import strategies as st

from tasks import audio
from tasks.audio import (
    AudioStats,
    assemble,
    dsp,
    limiter,
    measure,
    noise_floor_dbfs,
    read_audio,
    resample,
    room_tone,
    trim_silence,
    write_wav_atomic,
)
from tasks.audio.levels import _KWeightedLoudness
from tasks.audio.wavio import _WavSink
from tasks.errors import OutputError
from tests.audio_reference import assemble_chapter


def speech_like(
    sr: int, seconds: float, rms_dbfs: float, *, seed: int = 0, lead_s: float = 0.3, trail_s: float = 0.4
) -> np.ndarray:
    """A voiced, syllabic test signal: a gliding harmonic series plus breath noise, amplitude-modulated
    at ~4 syllables/s with word gaps, scaled to `rms_dbfs` over the voiced part, with silence (a -80 dBFS
    hiss) before and after so there is something to trim."""
    rng = np.random.default_rng(seed)
    n = int(sr * seconds)
    t = np.arange(n) / sr
    f0 = 110 + 25 * np.sin(2 * np.pi * 0.6 * t + seed)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    x = sum(np.sin(k * phase) / k**1.5 for k in range(1, 16)) + 0.15 * rng.standard_normal(n)
    env = np.clip(np.sin(2 * np.pi * 4.0 * t + seed), 0, None) ** 0.7
    words = np.sin(2 * np.pi * 0.45 * t + seed) > -0.7
    x = x * env * words
    x *= 10 ** (rms_dbfs / 20) / np.sqrt(np.mean(x**2))
    hiss = lambda k: 10 ** (-80 / 20) * rng.standard_normal(k)  # noqa: E731
    return np.concatenate([hiss(int(sr * lead_s)), x, hiss(int(sr * trail_s))]).astype(np.float32)


def sine(sr: int, seconds: float, freq: float, amp: float) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


# ---------------------------------------------------------------- measure


def test_measure_sine_levels() -> None:
    st_ = measure(sine(44100, 2.0, 1000, 0.5), 44100)
    assert st_.sample_rate_hz == 44100
    assert st_.duration_s == pytest.approx(2.0)
    assert st_.rms_dbfs == pytest.approx(20 * math.log10(0.5 / math.sqrt(2)), abs=0.01)
    assert st_.peak_dbfs == pytest.approx(20 * math.log10(0.5), abs=0.01)
    assert st_.lufs == pytest.approx(st_.rms_dbfs, abs=0.5)  # K-weighting is ~flat at 1 kHz
    assert st_.noise_floor_dbfs == pytest.approx(st_.rms_dbfs, abs=0.1)


def test_measure_short_silent_and_empty_do_not_crash() -> None:
    short = measure(sine(24000, 0.2, 440, 0.1), 24000)
    assert short.lufs == -math.inf and math.isfinite(short.rms_dbfs)
    silent = measure(np.zeros(48000, dtype=np.float32), 24000)
    assert silent.rms_dbfs == silent.peak_dbfs == silent.lufs == silent.noise_floor_dbfs == -math.inf
    empty = measure(np.zeros(0, dtype=np.float32), 24000)
    assert empty == AudioStats(0.0, 24000, -math.inf, -math.inf, -math.inf, -math.inf)


def test_noise_floor_is_the_quiet_stretches() -> None:
    sr = 44100
    loud = sine(sr, 4.0, 220, 0.3)
    quiet = room_tone(sr * 1, level_dbfs=-70.0, seed=3)
    floor = noise_floor_dbfs(np.concatenate([quiet, loud, quiet]), sr)
    assert floor == pytest.approx(-70.0, abs=1.5)


# ---------------------------------------------------------------- trim


def test_trim_keeps_pads_and_drops_silence() -> None:
    sr = 24000
    tone = sine(sr, 1.0, 300, 0.3)
    x = np.concatenate([np.zeros(sr // 2, np.float32), tone, np.zeros(sr // 2, np.float32)])
    y = trim_silence(x, sr)
    frame = sr // 100
    expected = tone.size + int(0.030 * sr) + int(0.120 * sr)
    assert abs(y.size - expected) <= 2 * frame
    # the tail pad is silence after the last loud sample, at least ~120 ms of it
    last_loud = np.flatnonzero(np.abs(y) > 0.01)[-1]
    assert (y.size - 1 - last_loud) / sr >= 0.110


def test_trim_never_cuts_a_quiet_last_syllable_above_threshold() -> None:
    sr = 22050
    main = sine(sr, 0.8, 200, 0.4)
    gap = np.zeros(int(0.15 * sr), np.float32)
    syllable = sine(sr, 0.12, 180, 10 ** (-38 / 20) * math.sqrt(2))  # RMS -38 dBFS, threshold -45
    tail = np.zeros(int(0.6 * sr), np.float32)
    x = np.concatenate([main, gap, syllable, tail])
    y = trim_silence(x, sr)
    syllable_end = main.size + gap.size + syllable.size
    assert y.size >= syllable_end + int(0.110 * sr)
    np.testing.assert_array_equal(y[:syllable_end], x[:syllable_end])


def test_trim_drops_a_tail_below_threshold() -> None:
    sr = 22050
    main = sine(sr, 0.8, 200, 0.4)
    murmur = sine(sr, 0.3, 180, 10 ** (-60 / 20))
    y = trim_silence(np.concatenate([main, np.zeros(sr // 4, np.float32), murmur]), sr)
    assert y.size <= main.size + int(0.130 * sr)


@pytest.mark.parametrize(
    "x",
    [
        np.zeros(24000, np.float32),
        np.zeros(0, np.float32),
        room_tone(24000, level_dbfs=-70.0),
        np.zeros(7, np.float32),
    ],
)
def test_trim_all_silent_gives_empty(x: np.ndarray) -> None:
    assert trim_silence(x, 24000).size == 0


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 4000), st.integers(160, 3000), st.integers(0, 4000), st.floats(-40.0, -1.0))
def test_trim_result_is_a_slice_that_holds_all_sound(lead: int, body: int, trail: int, level: float) -> None:
    sr = 16000
    rng = np.random.default_rng(body)
    sound = (10 ** (level / 20) * np.sign(rng.standard_normal(body))).astype(np.float32)
    x = np.concatenate([np.zeros(lead, np.float32), sound, np.zeros(trail, np.float32)])
    y = trim_silence(x, sr)
    assert y.size > 0
    # a contiguous slice of the input (trim returns a view) that contains every sound sample
    assert np.shares_memory(y, x)
    offset = (y.__array_interface__["data"][0] - x.__array_interface__["data"][0]) // 4
    np.testing.assert_array_equal(x[offset : offset + y.size], y)
    assert offset <= lead and offset + y.size >= lead + body


# ---------------------------------------------------------------- resample and room tone


@pytest.mark.parametrize("sr_from", [24000, 22050])
def test_resample_keeps_pitch_and_length(sr_from: int) -> None:
    x = sine(sr_from, 1.0, 1000, 0.5)
    y = resample(x, sr_from, 44100)
    assert y.dtype == np.float32
    assert abs(y.size - 44100) <= 1
    spectrum = np.abs(np.fft.rfft(y))
    assert np.argmax(spectrum) * 44100 / y.size == pytest.approx(1000, abs=2)
    assert resample(x, sr_from, sr_from) is x or np.array_equal(resample(x, sr_from, sr_from), x)
    assert resample(np.zeros(0, np.float32), sr_from, 44100).size == 0


def test_room_tone_is_quiet_and_deterministic() -> None:
    a = room_tone(44100 * 2, seed=5)
    assert a.dtype == np.float32 and a.size == 88200
    np.testing.assert_array_equal(a, room_tone(44100 * 2, seed=5))
    assert not np.array_equal(a, room_tone(44100 * 2, seed=6))
    s = measure(a, 44100)
    assert s.rms_dbfs == pytest.approx(-75.0, abs=0.2)
    assert s.peak_dbfs <= -60.0 and s.noise_floor_dbfs <= -60.0
    assert room_tone(0).size == 0


# ---------------------------------------------------------------- assemble


def _clips(level_dbfs: float) -> list[tuple[np.ndarray, int]]:
    return [
        (speech_like(24000, 2.5, level_dbfs, seed=1), 24000),
        (speech_like(22050, 1.8, level_dbfs, seed=2), 22050),
        (speech_like(24000, 3.0, level_dbfs, seed=3), 24000),
        (speech_like(22050, 1.2, level_dbfs, seed=4), 22050),
    ]


def _expected_samples(clips: list[tuple[np.ndarray, int]], pauses: list[int], sr: int = 44100) -> int:
    body = sum(resample(trim_silence(x, r), r, sr).size for x, r in clips)
    return round(sr * 0.75) + body + sum(round(sr * p / 1000) for p in pauses[:-1]) + round(sr * 2.5)


@pytest.mark.parametrize("level", [-42.0, -30.0, -20.0, -10.0])
def test_assemble_meets_acx_for_quiet_and_loud_input(level: float) -> None:
    clips = _clips(level)
    pauses = [400, 900, 250, 5000]
    out, stats = assemble_chapter(clips, pauses)
    assert out.dtype == np.float32 and out.ndim == 1
    assert stats.sample_rate_hz == 44100
    assert out.size == _expected_samples(clips, pauses)
    assert stats.duration_s == pytest.approx(out.size / 44100)
    assert -23.0 <= stats.rms_dbfs <= -18.0
    assert stats.rms_dbfs == pytest.approx(-20.0, abs=0.5)
    assert stats.peak_dbfs <= -3.5 + 1e-3
    assert stats.noise_floor_dbfs <= -60.0
    assert stats.meets_acx()
    assert stats == measure(out, 44100)


def test_assemble_head_and_tail_are_room_tone_not_digital_silence() -> None:
    out, _ = assemble_chapter(_clips(-25.0), [500] * 4)
    head, tail = out[: int(0.75 * 44100)], out[-int(2.5 * 44100) :]
    for part in (head, tail):
        assert np.count_nonzero(part) > 0.99 * part.size
        assert 20 * np.log10(np.max(np.abs(part))) <= -60.0
    assert np.count_nonzero(out == 0) < 0.001 * out.size  # no digital silence inside the speech either


def test_assemble_gain_is_per_chapter_not_per_sentence() -> None:
    sr = 24000
    soft = speech_like(sr, 2.0, -32.0, seed=7, lead_s=0, trail_s=0)
    loud = speech_like(sr, 2.0, -26.0, seed=7, lead_s=0, trail_s=0)
    out, _ = assemble_chapter([(soft, sr), (loud, sr)], [1000, 0], head_ms=0, tail_ms=0, fade_ms=0)
    n_soft = resample(trim_silence(soft, sr), sr, 44100).size
    a = out[:n_soft]
    b = out[n_soft + 44100 :]
    diff = 10 * np.log10(np.mean(b.astype(np.float64) ** 2) / np.mean(a.astype(np.float64) ** 2))
    assert diff == pytest.approx(6.0, abs=0.3)


def test_assemble_limits_hot_peaks() -> None:
    sr = 24000
    x = speech_like(sr, 3.0, -24.0, seed=9)
    x[sr : sr + 40] = 0.99  # a click 20+ dB over the speech
    out, stats = assemble_chapter([(x, sr)], [0])
    assert stats.peak_dbfs <= -3.5 + 1e-3
    assert -23.0 <= stats.rms_dbfs <= -18.0


def test_assemble_handles_silent_clips_and_no_clips() -> None:
    clips = [
        (speech_like(24000, 2.0, -25.0), 24000),
        (np.zeros(24000, np.float32), 24000),
        (np.zeros(0, np.float32), 22050),
    ]
    out, stats = assemble_chapter(clips, [300, 300, 300])
    assert stats.meets_acx()
    assert out.size == _expected_samples(clips, [300, 300, 300])
    empty, estats = assemble_chapter([], [])
    assert empty.size == round(44100 * 0.75) + round(44100 * 2.5)
    assert estats.peak_dbfs <= -60.0
    silent, _ = assemble_chapter([(np.zeros(1000, np.float32), 24000)], [0])
    assert np.all(np.isfinite(silent))


def test_assemble_rejects_mismatched_pauses() -> None:
    with pytest.raises(ValueError, match="one pause per clip"):
        assemble_chapter(_clips(-20.0), [100])


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 20000), st.floats(0.01, 30.0), st.floats(-12.0, -1.0), st.integers(0, 2**16))
def test_limiter_never_exceeds_the_ceiling(n: int, scale: float, ceiling: float, seed: int) -> None:
    x = (np.random.default_rng(seed).standard_normal(n) * scale).astype(np.float32)
    limiter._limit_peaks(x, 44100, ceiling)
    assert float(np.max(np.abs(x))) <= 10 ** (ceiling / 20)


# ---------------------------------------------------------------- files


def test_wav_round_trip_and_stereo_read(tmp_path: Path) -> None:
    x = speech_like(44100, 1.0, -20.0)
    path = write_wav_atomic(tmp_path / "sub" / "ch01.wav", x, 44100)
    y, sr = read_audio(path)
    assert sr == 44100 and y.dtype == np.float32 and y.size == x.size
    assert np.max(np.abs(y - x)) < 1e-4  # PCM_16 quantisation
    assert [p.name for p in path.parent.iterdir()] == ["ch01.wav"]
    write_wav_atomic(tmp_path / "f.wav", x, 44100, subtype="FLOAT")
    np.testing.assert_array_equal(read_audio(tmp_path / "f.wav")[0], x)
    stereo = np.stack([x, np.zeros_like(x)], axis=1)
    sf.write(tmp_path / "st.wav", stereo, 22050, subtype="FLOAT")
    mono, sr2 = read_audio(tmp_path / "st.wav")
    assert sr2 == 22050 and mono.shape == x.shape
    np.testing.assert_allclose(mono, x / 2, atol=1e-7)


def test_wav_write_failure_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def full_disk(src: object, dst: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(OutputError) as info:
        write_wav_atomic(tmp_path / "ch01.wav", np.zeros(100, np.float32), 44100)
    assert str(tmp_path) in str(info.value) and "full" in str(info.value)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- streaming assembly (assemble_chapter_to_wav)


def _write_clips(folder: Path, clips: list[tuple[np.ndarray, int]]) -> list[Path]:
    """The clips as 16-bit FLAC files (as the chunk cache stores them)."""
    paths = []
    for i, (x, sr) in enumerate(clips):
        path = folder / f"clip{i}.flac"
        sf.write(str(path), x, sr, subtype="PCM_16", format="FLAC")
        paths.append(path)
    return paths


def _hot_clips(level: float) -> list[tuple[np.ndarray, int]]:
    """Clips whose peaks the limiter must pull down hard (so make-up gain rounds run)."""
    clips = _clips(level) + [(np.zeros(1000, np.float32), 24000)]
    clips[0][0][24000:24400] = 0.99
    loud = clips[2][0]
    loud[30000:36000] *= 30
    np.clip(loud, -1.0, 1.0, out=loud)
    return clips


def _capture_float_output(monkeypatch: pytest.MonkeyPatch) -> list[np.ndarray]:
    """Records the float chunks the streaming assembler writes (its last pass only)."""
    chunks: list[np.ndarray] = []
    write, open_ = _WavSink.write, _WavSink.open

    def spy_open(self: _WavSink) -> None:
        chunks.clear()
        open_(self)

    def spy_write(self: _WavSink, x: np.ndarray) -> None:
        chunks.append(x.copy())
        write(self, x)

    monkeypatch.setattr(_WavSink, "open", spy_open)
    monkeypatch.setattr(_WavSink, "write", spy_write)
    return chunks


@pytest.mark.parametrize(
    ("level", "hot", "block"),
    [(-30.0, False, None), (-10.0, False, None), (-42.0, False, 3000), (-30.0, True, None), (-30.0, True, 5000)],
)
def test_stream_equals_in_memory_assembly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, level: float, hot: bool, block: int | None
) -> None:
    if block is not None:  # many limiter blocks: the look-ahead is carried across their boundaries
        monkeypatch.setattr(limiter, "_LIMITER_BLOCK", block)
    clips = _hot_clips(level) if hot else _clips(level)
    paths = _write_clips(tmp_path, clips)
    pauses = [400, 900, 250, 5000, 0][: len(paths)]
    expected, ref = assemble_chapter([read_audio(p) for p in paths], pauses)
    chunks = _capture_float_output(monkeypatch)
    stats = audio.assemble_chapter_to_wav(paths, pauses, tmp_path / "out" / "ch.wav")
    got = np.concatenate(chunks)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    data, sr = read_audio(tmp_path / "out" / "ch.wav")
    assert sr == 44100 and data.shape == expected.shape
    np.testing.assert_allclose(data, expected, rtol=0, atol=1.5 / 32768)  # 16-bit quantisation
    assert stats.duration_s == ref.duration_s and stats.sample_rate_hz == ref.sample_rate_hz
    for field in ("rms_dbfs", "peak_dbfs", "noise_floor_dbfs"):
        assert getattr(stats, field) == pytest.approx(getattr(ref, field), abs=1e-4)
    assert stats.lufs == pytest.approx(ref.lufs, abs=0.05)  # block-wise BS.1770 vs pyloudnorm
    assert stats.peak_dbfs <= -3.5 + 1e-3
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["ch.wav"]  # no temp file left


@pytest.mark.parametrize("level", [-42.0, -20.0, -10.0])
def test_stream_meets_acx_and_layout(tmp_path: Path, level: float) -> None:
    clips = _clips(level)
    pauses = [400, 900, 250, 5000]
    stats = audio.assemble_chapter_to_wav(_write_clips(tmp_path, clips), pauses, tmp_path / "ch.wav")
    info = sf.info(str(tmp_path / "ch.wav"))
    assert (info.samplerate, info.channels, info.subtype, info.format) == (44100, 1, "PCM_16", "WAV")
    flac_clips = [read_audio(p) for p in sorted(tmp_path.glob("clip*.flac"))]
    assert info.frames == _expected_samples(flac_clips, pauses)
    assert stats.duration_s == pytest.approx(info.frames / 44100)
    assert stats.rms_dbfs == pytest.approx(-20.0, abs=0.5) and stats.peak_dbfs <= -3.5 + 1e-3
    assert stats.meets_acx()
    written = measure(read_audio(tmp_path / "ch.wav")[0], 44100)  # the file itself, after quantisation
    assert written.meets_acx()
    assert written.rms_dbfs == pytest.approx(stats.rms_dbfs, abs=0.01)
    assert written.lufs == pytest.approx(stats.lufs, abs=0.1)


def test_stream_handles_silent_clips_no_clips_and_bad_pauses(tmp_path: Path) -> None:
    clips = [(speech_like(24000, 2.0, -25.0), 24000), (np.zeros(24000, np.float32), 24000)]
    paths = _write_clips(tmp_path, clips)
    stats = audio.assemble_chapter_to_wav(paths, [300, 300], tmp_path / "a.wav")
    assert stats.meets_acx()
    empty = audio.assemble_chapter_to_wav([], [], tmp_path / "b.wav")
    assert sf.info(str(tmp_path / "b.wav")).frames == round(44100 * 0.75) + round(44100 * 2.5)
    assert empty.peak_dbfs <= -60.0 and empty.rms_dbfs == pytest.approx(-75.0, abs=0.3)
    silent = audio.assemble_chapter_to_wav(paths[1:], [0], tmp_path / "c.wav")
    assert math.isfinite(silent.rms_dbfs) and silent.peak_dbfs <= -60.0
    with pytest.raises(ValueError, match="one pause per clip"):
        audio.assemble_chapter_to_wav(paths, [100], tmp_path / "d.wav")
    with pytest.raises(ValueError, match=">= 0"):
        audio.assemble_chapter_to_wav(paths, [100, -1], tmp_path / "d.wav")
    assert not (tmp_path / "d.wav").exists()


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 30000), st.lists(st.integers(1, 7000), min_size=1, max_size=12), st.integers(0, 2**16))
def test_stream_limiter_equals_whole_signal_limiter(n: int, cuts: list[int], seed: int) -> None:
    x = (np.random.default_rng(seed).standard_normal(n) * 0.5).astype(np.float32)
    x[:: max(1, n // 7)] = 0.99
    expected = x.copy()
    saved, limiter._LIMITER_BLOCK = limiter._LIMITER_BLOCK, 2048  # many blocks (no monkeypatch under given)
    try:
        limiter._limit_peaks(expected, 44100, -3.5)  # the whole signal at once
        lim = limiter._StreamLimiter(44100, -3.5)  # the same blocks, fed in uneven chunks
    finally:
        limiter._LIMITER_BLOCK = saved
    out, pos = [], 0
    for size in [*cuts, n]:
        out += lim.push(x[pos : pos + size].copy())
        pos = min(n, pos + size)
    out += lim.flush()
    got = np.concatenate(out)
    assert got.shape == x.shape
    assert float(np.max(np.abs(got))) <= 10 ** (-3.5 / 20)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)


def _stream_lufs(x: np.ndarray, sr: int, seed: int = 0) -> float:
    meter = _KWeightedLoudness(sr)
    rng = np.random.default_rng(seed)
    pos = 0
    while pos < x.size:  # uneven chunks, so hop boundaries fall inside and between them
        size = int(rng.integers(1, sr))
        meter.push(x[pos : pos + size])
        pos += size
    return meter.result()


def _gated_signal(sr: int) -> np.ndarray:
    """Loud speech, a long near-silent stretch (under the absolute gate) and a quiet stretch (under the
    relative gate), so both gates decide."""
    loud = speech_like(sr, 4.0, -18.0, seed=11, lead_s=0, trail_s=0)
    hush = room_tone(sr * 5, level_dbfs=-85.0, seed=4)
    quiet = speech_like(sr, 3.0, -40.0, seed=12, lead_s=0, trail_s=0)
    return np.concatenate([loud, hush, quiet, loud[: sr // 3]])


@pytest.mark.parametrize(
    ("sr", "make"),
    [
        (44100, lambda sr: speech_like(sr, 6.0, -23.0, seed=5)),
        (48000, lambda sr: sine(sr, 3.3, 1000, 0.3)),
        (22050, _gated_signal),
        (24000, lambda sr: (0.05 * np.random.default_rng(2).standard_normal(int(sr * 2.05))).astype(np.float32)),
        (44100, lambda sr: sine(sr, 0.41, 60, 0.5)),  # just over one gating block
    ],
)
def test_stream_lufs_matches_pyloudnorm(sr: int, make: object) -> None:
    import pyloudnorm

    x = make(sr)  # type: ignore[operator]
    expected = pyloudnorm.Meter(sr).integrated_loudness(x)
    assert _stream_lufs(x, sr) == pytest.approx(expected, abs=0.1)
    assert _stream_lufs(x, sr, seed=1) == pytest.approx(expected, abs=0.01)


def test_stream_lufs_short_and_silent_are_minus_inf() -> None:
    assert _stream_lufs(sine(44100, 0.3, 440, 0.5), 44100) == -math.inf
    assert _stream_lufs(np.zeros(44100 * 2, np.float32), 44100) == -math.inf
    assert _KWeightedLoudness(44100).result() == -math.inf


def test_tone_pieces_are_room_tone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dsp, "_TONE_PIECE", 1000)
    pieces = list(dsp._tone_pieces(4500, seed=7))
    assert [p.size for p in pieces] == [1000, 1000, 1000, 1000, 500]
    np.testing.assert_array_equal(np.concatenate(pieces), room_tone(4500, seed=7))
    assert list(dsp._tone_pieces(0, seed=7)) == []


def test_stream_failure_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clip_dir, out_dir = tmp_path / "clips", tmp_path / "out"
    clip_dir.mkdir()
    paths = _write_clips(clip_dir, _clips(-25.0))
    out_dir.mkdir()
    (out_dir / "ch.wav").write_bytes(b"old chapter")  # an earlier file survives a failed rewrite

    # a clip that cannot be read in the second pass (after the temp file exists)
    real_read, calls = assemble.read_audio, []

    def flaky_read(path: Path) -> tuple[np.ndarray, int]:
        calls.append(path)
        if len(calls) == len(paths) + 2:
            raise RuntimeError("clip vanished")
        return real_read(path)

    monkeypatch.setattr(assemble, "read_audio", flaky_read)
    with pytest.raises(RuntimeError, match="clip vanished"):
        audio.assemble_chapter_to_wav(paths, [300] * 4, out_dir / "ch.wav")
    assert [p.name for p in out_dir.iterdir()] == ["ch.wav"]
    assert (out_dir / "ch.wav").read_bytes() == b"old chapter"
    monkeypatch.setattr(assemble, "read_audio", real_read)

    # a full disk at the final rename
    def full_disk(src: object, dst: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(OutputError) as info:
        audio.assemble_chapter_to_wav(paths, [300] * 4, out_dir / "new.wav")
    assert str(out_dir) in str(info.value) and "full" in str(info.value)
    assert [p.name for p in out_dir.iterdir()] == ["ch.wav"]


_MEMORY_CHILD = r"""
import sys, tempfile
from pathlib import Path
import numpy as np, soundfile as sf
from tasks.audio import assemble_chapter_to_wav

minutes = float(sys.argv[1])
folder = Path(tempfile.mkdtemp(dir=sys.argv[2]))
sr, distinct = 24000, []
t = np.arange(sr * 10) / sr
for i in range(4):  # 10 s speech-like clips: harmonic bursts at ~4 syllables/s, stored once, reused
    rng = np.random.default_rng(i)
    f0 = 110 + 20 * np.sin(2 * np.pi * 0.5 * t + i)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    x = sum(np.sin(k * phase) / k for k in range(1, 8)) + 0.1 * rng.standard_normal(t.size)
    x *= np.clip(np.sin(2 * np.pi * 4 * t + i), 0, None) * 10 ** (-25 / 20)
    path = folder / f"c{i}.flac"
    sf.write(str(path), x.astype(np.float32), sr, subtype="PCM_16")
    distinct.append(path)
n = int(minutes * 60 / 10.3)
stats = assemble_chapter_to_wav([distinct[i % 4] for i in range(n)], [300] * n, folder / "ch.wav")
assert stats.meets_acx(), stats
assert abs(stats.duration_s - minutes * 60) < 0.05 * minutes * 60, stats
hwm = [int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM")][0]
print(hwm // 1024)
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc (Linux) for peak RSS")
def test_stream_memory_does_not_grow_with_chapter_length(tmp_path: Path) -> None:
    """Peak RSS of a whole process that assembles a 20-minute chapter vs a 2-minute one (the in-memory
    assembler needs ~1.5 GiB more for the long one)."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent

    def peak_mib(minutes: float) -> int:
        out = subprocess.run(
            [sys.executable, "-c", _MEMORY_CHILD, str(minutes), str(tmp_path)],
            cwd=root, capture_output=True, text=True, timeout=120, check=True,
        )
        return int(out.stdout.strip().splitlines()[-1])

    short, long_ = peak_mib(2), peak_mib(20)
    assert long_ < 400, (short, long_)
    assert long_ <= 1.2 * short, (short, long_)
