"""A chunk with nothing to speak, an engine that gives no audio, and a cache entry that holds none.

A chapter title made only of markup (`<img ...>.`) used to be spoken as "."; Piper gives 0 frames for
it, the empty take was stored as a FLAC with no audio, and every render of every book holding that
chunk failed reading it. Now: such a chunk never reaches an engine (the plan leaves it out, and
`audiobook check` says so), an empty take is never stored, and an empty entry already in a cache is
deleted and rendered again."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from tasks.cache import AudioCache
from tasks.engines.base import Clip
from tasks.engines.fake import FakeEngine
from tasks.manifest import load_manifest
from tasks.plan import Chunk, SynthJob, make_plan, speakable
from tasks.synth import chunk_cache, synthesize_batch
from tests.conftest import fake_engine, write_manifest

MARKUP_TITLES = ["<img src=x onerror=alert(1)>.", "\u201c<img>\u201d", "-", "..."]


def poisoned_book(folder: Path, engine: str = "fake") -> Path:
    (folder / "one.txt").write_text("The harbour lights went out one by one.")
    (folder / "two.txt").write_text("Morning came slowly over the quay.")
    (folder / "three.txt").write_text("The quay was quiet again.")
    return write_manifest(folder, f"""
title: Markup Titles
author: Test Author
engine: {engine}
voice: {'joe' if engine == 'piper' else 'anyone'}
quality: draft
seed: 3
chapters:
  - {{title: "{MARKUP_TITLES[0]}", file: one.txt}}
  - {{title: "{MARKUP_TITLES[1]}", file: two.txt}}
  - {{title: "{MARKUP_TITLES[3]}", file: three.txt}}
""")


def job_for(workdirs: dict[str, Path], engine: str = "fake") -> SynthJob:
    return SynthJob(engine=engine, voice="anyone", settings={}, seed=1, voices_dir=str(workdirs["voices"]),
                    cache_dir=str(workdirs["cache"]), max_takes=2)


def chunk(text: str) -> Chunk:
    return Chunk(0, 0, text, 300, f"key-{abs(hash(text)):x}".ljust(64, "0"))


def test_speakable() -> None:
    assert [speakable(t) for t in (".", '" ".', "-.", "...", "", "A.", "3.", "\u00e9t\u00e9.", "\u66f8.")] == [
        False, False, False, False, False, True, True, True, True]


def test_the_plan_leaves_out_chunks_with_nothing_to_speak(workdirs: dict[str, Path]) -> None:
    with fake_engine():
        plan = make_plan(load_manifest(poisoned_book(workdirs["book"])), engine_name=None,
                         cache_dir=workdirs["cache"], voices_dir=workdirs["voices"])
    assert all(speakable(c.text) for c in plan.chunks)
    titles = [ch.title for ch in plan.chapters if ch.kind == "chapter"]
    assert titles == [MARKUP_TITLES[0], MARKUP_TITLES[1], MARKUP_TITLES[3]]  # shown as written, not spoken
    spoken = [[c.text for c in ch.chunks] for ch in plan.chapters if ch.kind == "chapter"]
    assert spoken == [["The harbour lights went out one by one."], ["Morning came slowly over the quay."],
                      ["The quay was quiet again."]]
    assert "3 chunk(s) with nothing to speak (no letters or digits, e.g. a title made only of markup) are left " \
           "out: '.', '\" \".', '...'" in plan.warnings


def test_check_flags_the_chunks_left_out(workdirs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    from cli import run

    assert run(["check", str(poisoned_book(workdirs["book"]))]) == 0
    out = capsys.readouterr().out
    assert "warning: 3 chunk(s) with nothing to speak (no letters or digits, e.g. a title made only of markup) " \
           "are left out: '.', '\" \".', '...'" in out


def test_a_chunk_with_nothing_to_speak_never_reaches_the_engine(workdirs: dict[str, Path]) -> None:
    with fake_engine() as engine:
        out = synthesize_batch([chunk("."), chunk("Hello there.")], job_for(workdirs))
    assert engine.calls == {"Hello there.": 1}
    assert [f.error for f in out.failures] == ["nothing to speak in '.' (no letters or digits)"]
    assert list(out.results) == [chunk("Hello there.").key]


class EmptyEngine(FakeEngine):
    """Gives no audio at all, as Piper does for a lone full stop."""

    def synthesize(self, text: str, voice: str, settings: Any, seed: int, *, voices_dir: str | None = None) -> Clip:
        self.calls[text] += 1
        return Clip(np.zeros(0, dtype=np.float32), self.info.sample_rate_hz)


def test_an_empty_take_is_never_stored(workdirs: dict[str, Path]) -> None:
    from tasks.engines import register_engine, reset_engines

    engine = EmptyEngine()
    register_engine("empty", lambda: engine)
    try:
        out = synthesize_batch([chunk("Words the engine drops.")], job_for(workdirs, "empty"))
    finally:
        reset_engines()
    assert engine.calls["Words the engine drops."] == 2  # each take tried, as for any bad take
    assert [f.error for f in out.failures] == ["the engine gave no audio for 'Words the engine drops.' in 2 takes"]
    assert out.results == {}
    assert not (workdirs["cache"] / "chunks").exists() or not list((workdirs["cache"] / "chunks").rglob("*.*"))


def test_an_empty_entry_in_the_cache_is_deleted_and_rendered_again(workdirs: dict[str, Path]) -> None:
    job = job_for(workdirs)
    c = chunk("The cache held nothing here.")
    cache: AudioCache = chunk_cache(job)
    cache.store(c.key, np.zeros(0, dtype=np.float32), 24000, rerolls=0)  # what an older version stored
    assert cache.meta(c.key)["frames"] == 0  # on disk, intact as far as its checksum goes
    with fake_engine() as engine:
        out = synthesize_batch([c], job)
    assert out.failures == [] and engine.calls == {c.text: 1}
    assert sf.info(out.results[c.key].path).frames > 0
    assert cache.meta(c.key)["frames"] == sf.info(out.results[c.key].path).frames


@pytest.mark.usefixtures("prefect_harness")
def test_a_book_with_markup_titles_renders_with_piper(workdirs: dict[str, Path]) -> None:
    from flows.render import render_book

    manifest = poisoned_book(workdirs["book"], engine="piper")
    report = render_book(str(manifest)).to_dict()
    titles = [c["title"] for c in report["chapters"]]
    assert titles == ["Opening Credits", MARKUP_TITLES[0], MARKUP_TITLES[1], MARKUP_TITLES[3], "End Credits"]
    assert all(c["duration_s"] > 1.0 for c in report["chapters"])
    takes = sorted((workdirs["cache"] / "chunks").rglob("*.flac"))
    assert len(takes) == report["chunks_total"]
    assert all(sf.info(str(p)).frames > 0 for p in takes)  # no empty take in the cache

    # An empty entry left by an older version is rendered again, once, not reported as a failure.
    cache = AudioCache(workdirs["cache"] / "chunks", ".flac")
    victim = takes[0].stem
    cache.store(victim, np.zeros(0, dtype=np.float32), 22050)
    again = render_book(str(manifest)).to_dict()
    assert again["chunks_synthesized"] == 1 and again["chunks_cached"] == report["chunks_total"] - 1
    assert sf.info(str(cache.path_for(victim))).frames > 0
