"""tasks.verify: takes heard by speech recognition (pocketsphinx), with faults planted in real Piper takes."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from tasks import synth
from tasks.cache import AudioCache
from tasks.engines import register_engine, reset_engines
from tasks.engines.base import Clip
from tasks.engines.piper import PiperEngine
from tasks.errors import ManifestError
from tasks.manifest import validate_manifest
from tasks.plan import Chunk, SynthJob
from tasks.verify import (
    _RECOGNIZER,
    RATE_HZ,
    Verdict,
    chapter_summary,
    take_problem,
    verify_mode,
    verify_take,
    words_of,
)

pytest.importorskip("pocketsphinx")

TEXT = ("The old ferry left the harbour every morning at seven, carrying farmers, letters and a few "
        "sleepy tourists across the cold green water to the island.")
OTHER = "Please remember to water the tomatoes and feed the cat before you leave."


@pytest.fixture(scope="module")
def piper() -> PiperEngine:
    return PiperEngine()


@pytest.fixture(scope="module")
def take(piper: PiperEngine) -> Clip:
    return piper.synthesize(TEXT, "joe", {"sentence_pause_ms": 300}, 5)


def bounds(clip: Clip, text: str) -> list[tuple[int, int]]:
    """Each word's (first, end) sample in the clean take, from its alignment."""
    from tasks.audio import resample

    x = resample(clip.samples, clip.sample_rate_hz, RATE_HZ)
    segs, _ = _RECOGNIZER.align((x * 32767).astype(np.int16).tobytes(), words_of(text))
    assert segs is not None
    sr = clip.sample_rate_hz
    return [(a * sr // 100, (b + 1) * sr // 100) for w, a, b, _ in segs if not w.startswith("<")]


def test_words_of_follows_the_dictionary_spelling() -> None:
    assert words_of("“Don’t,” she said—twice; it's 9 o'clock.") == ["don't", "she", "said", "twice", "it's",
                                                                    "o'clock"]


def test_defaults_per_engine_and_language() -> None:
    assert verify_mode(None, "tortoise", "en") == ("reroll", None)
    assert verify_mode(None, "piper", "en-GB") == ("flag", None)
    assert verify_mode("off", "tortoise", "en") == ("off", None)
    mode, warning = verify_mode(None, "piper", "de")
    assert mode == "off" and warning is not None and "'de'" in warning
    assert verify_mode("off", "piper", "fr") == ("off", None)
    assert verify_mode(None, "fake", "en") == ("off", None)  # an engine that says nothing: off (EngineBase)


def test_manifest_verify_settings_are_validated(tmp_path: Path) -> None:
    base = {"title": "T", "author": "A", "source": "book.txt"}
    manifest = validate_manifest({**base, "verify": "reroll", "verify_threshold": 0.8}, tmp_path / "b.yaml")
    assert (manifest.verify, manifest.verify_threshold) == ("reroll", 0.8)
    assert validate_manifest(base, tmp_path / "b.yaml").verify is None
    # YAML reads a bare `off` as false and `on` as true
    assert validate_manifest({**base, **yaml.safe_load("verify: off")}, tmp_path / "b.yaml").verify == "off"
    assert validate_manifest({**base, **yaml.safe_load("verify: on")}, tmp_path / "b.yaml").verify is None
    with pytest.raises(ManifestError) as err:
        validate_manifest({**base, "verify": "sometimes"}, tmp_path / "b.yaml")
    assert err.value.field == "verify" and "reroll" in str(err.value.fix)
    with pytest.raises(ManifestError) as err:
        validate_manifest({**base, "verify_threshold": 1.5}, tmp_path / "b.yaml")
    assert err.value.field == "verify_threshold"


def test_a_clean_take_is_heard_in_full(take: Clip) -> None:
    verdict = verify_take(take.samples, take.sample_rate_hz, TEXT)
    assert verdict.aligned and verdict.words == len(words_of(TEXT))
    assert verdict.score >= 0.9 and verdict.extra_s < 0.5
    assert take_problem(verdict) is None


def test_the_alignment_times_every_word_inside_the_take(take: Clip) -> None:
    verdict = verify_take(take.samples, take.sample_rate_hz, TEXT)
    times = verdict.word_times
    assert [w for w, _, _ in times] == words_of(TEXT)
    starts = [a for _, a, _ in times]
    assert all(a < b for _, a, b in times) and starts == sorted(starts)
    assert all(b1 <= a2 + 1e-9 for (_, _, b1), (_, a2, _) in zip(times, times[1:], strict=False))
    assert 0.0 <= times[0][1] and times[-1][2] <= take.duration_s + 0.01
    # each word's stretch of the take holds sound (the times are relative to the take's first sample)
    sr = take.sample_rate_hz
    assert all(np.abs(take.samples[int(a * sr): int(b * sr)]).max() > 0.02 for _, a, b in times)
    assert Verdict.from_meta(verdict.as_meta()).word_times == tuple((w, round(a, 2), round(b, 2)) for w, a, b in times)


def test_a_dropped_clause_is_caught(take: Clip) -> None:
    b = bounds(take, TEXT)
    cut = np.concatenate([take.samples[: b[9][0]], take.samples[b[13][0]:]])  # "farmers letters and a"
    verdict = verify_take(cut, take.sample_rate_hz, TEXT)
    problem = take_problem(verdict)
    assert problem is not None and problem.startswith("words missing")


def test_a_take_cut_short_is_caught(take: Clip) -> None:
    b = bounds(take, TEXT)
    assert take_problem(verify_take(take.samples[: b[-4][0]], take.sample_rate_hz, TEXT)) is not None


def test_a_repeated_phrase_is_caught(take: Clip) -> None:
    b = bounds(take, TEXT)
    x = take.samples
    repeated = np.concatenate([x[: b[18][1]], x[b[14][0]: b[18][1]], x[b[18][1]:]])  # "sleepy ... cold" twice
    verdict = verify_take(repeated, take.sample_rate_hz, TEXT)
    assert take_problem(verdict) is not None


def test_foreign_speech_appended_is_caught(take: Clip, piper: PiperEngine) -> None:
    other = piper.synthesize(OTHER, "joe", {}, 1)
    gap = np.zeros(take.sample_rate_hz // 3, dtype=np.float32)
    verdict = verify_take(np.concatenate([take.samples, gap, other.samples]), take.sample_rate_hz, TEXT)
    problem = take_problem(verdict)
    assert problem is not None and problem.startswith("extra speech") and verdict.extra_s > 2.0
    assert any("speech" in s.heard for s in verdict.spans)


class DropsWordsOnce(PiperEngine):
    """Piper whose first take of each text has its middle third cut out."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[int] = []

    def synthesize(self, text: str, voice: str, settings: Mapping[str, Any], seed: int, *,
                   voices_dir: str | None = None) -> Clip:
        clip = super().synthesize(text, voice, settings, seed, voices_dir=voices_dir)
        self.seen.append(seed)
        if len(self.seen) > 1:
            return clip
        n = len(clip.samples)
        return Clip(np.concatenate([clip.samples[: n // 3], clip.samples[2 * n // 3:]]), clip.sample_rate_hz)


@pytest.fixture
def dropping() -> Iterator[DropsWordsOnce]:
    engine = DropsWordsOnce()
    register_engine("dropping", lambda: engine)
    yield engine
    reset_engines()


def run_chunk(tmp_path: Path, mode: str) -> tuple[synth.ChunkResult, dict[str, Any]]:
    chunk = Chunk(0, 0, TEXT, 300, hashlib.sha256(TEXT.encode()).hexdigest())
    job = SynthJob(engine="dropping", voice="joe", settings={"sentence_pause_ms": 300}, seed=3, voices_dir=None,
                   cache_dir=str(tmp_path), verify=mode)
    result = synth.synthesize_chunk(chunk, job)
    return result, AudioCache(tmp_path / "chunks", ".flac").meta(chunk.key)


def test_a_take_missing_words_is_rerolled_and_its_score_kept(dropping: DropsWordsOnce, tmp_path: Path) -> None:
    result, meta = run_chunk(tmp_path, "reroll")
    assert len(dropping.seen) == 2 and dropping.seen[0] != dropping.seen[1]  # a second take, another seed
    assert result.rerolls == 1 and result.heard_rerolls == 1 and result.bad_take is None
    assert meta["verify"]["score"] >= 0.9 and meta["heard_rerolls"] == 1
    assert [w for w, _, _ in meta["verify"]["word_times"]] == words_of(TEXT)  # the kept take's word times
    again = synth.cached_result(Chunk(0, 0, TEXT, 300, result.key), AudioCache(tmp_path / "chunks", ".flac"))
    assert again is not None and again.verify == result.verify and again.heard_rerolls == 1


def test_flag_mode_keeps_the_take_and_reports_it(dropping: DropsWordsOnce, tmp_path: Path) -> None:
    result, meta = run_chunk(tmp_path, "flag")
    assert len(dropping.seen) == 1 and result.rerolls == 0 and result.bad_take is None
    verdict = Verdict.from_meta(meta["verify"])
    assert take_problem(verdict) is not None
    summary = chapter_summary([TEXT], [meta["verify"]], [0], [12.5], 0.9)
    assert summary is not None and summary["flagged"] and summary["rerolls_missing_words"] == 0
    assert all(f["time_s"] >= 12.5 and f["chunk_text"] == TEXT for f in summary["flagged"])


@pytest.mark.e2e
def test_audiobook_verify_hears_a_finished_book_and_finds_a_damaged_span(workdirs: dict[str, Path]) -> None:
    import json
    import os
    import subprocess
    import sys

    import soundfile as sf

    from tasks.audio import read_audio
    from tests.conftest import write_manifest

    def audiobook(*args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "300"}  # a busy machine
        return subprocess.run([sys.executable, "-m", "cli", *args], capture_output=True, text=True,
                              timeout=600, env=env, cwd=Path(__file__).resolve().parent.parent)

    folder = workdirs["book"]
    (folder / "story.txt").write_text(f"{TEXT}\n\n{OTHER}\n", encoding="utf-8")
    manifest = write_manifest(folder, "title: Ferry\nauthor: A. Writer\nsource: story.txt\ncredits: false\n"
                                      "speak_titles: false\noutputs: [mp3]\n")
    rendered = audiobook("render", str(manifest))
    assert rendered.returncode == 0, rendered.stderr
    out = workdirs["output"] / "book"
    report = json.loads((out / "report.json").read_text())
    heard = report["chapters"][0]["heard"]
    assert heard["words_verified"] >= len(words_of(TEXT)) - 2 and heard["flagged"] == []
    clean = audiobook("verify", str(out))
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "2 chunks heard, 0 suspicious span(s)" in clean.stdout
    # Silence the middle of the first chunk's speech in the published MP3: its words go missing there.
    mp3 = next((out / "mp3").glob("*.mp3"))
    samples, sr = read_audio(mp3)
    speech = np.flatnonzero(np.abs(samples) > 0.05)
    start, end = speech[0] / sr, (speech[0] / sr) + 8.0
    a, b = int((start + 2.5) * sr), int((start + 5.0) * sr)
    samples[a:b] = 0.0
    sf.write(str(mp3), samples, sr, format="MP3")
    damaged = audiobook("verify", str(manifest))
    assert damaged.returncode == 3, damaged.stdout + damaged.stderr
    assert "suspicious span(s)" in damaged.stdout and "words missing" in damaged.stdout
    times = re.findall(r"^  Ferry at (\d+):(\d+\.\d): ", damaged.stdout, flags=re.M)
    assert times and any(start - 0.5 <= int(m) * 60 + float(s) <= end for m, s in times)
