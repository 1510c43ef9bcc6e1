"""The whole render-book flow on real Prefect and real ffmpeg, with the fast fake engine."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mutagen.mp3 import MP3

from tasks.atomic import TEMP_MARK
from tasks.cache import AudioCache
from tasks.engines.fake import FakeEngine
from tasks.errors import RenderError, SourceError, VoiceError
from tests.conftest import fake_engine, write_manifest
from tests.media_probe import read_m4b_chapters

pytestmark = pytest.mark.usefixtures("prefect_harness")

CHAPTER_ONE = """The first chapter opens here. It has a few sentences, each short.

A second paragraph follows. It ends the chapter."""

CHAPTER_TWO = """Chapter two is brief. It says one more thing. Then it stops."""


@pytest.fixture
def fake() -> Iterator[FakeEngine]:
    with fake_engine(max_chars=60) as engine:
        yield engine


@pytest.fixture
def book(workdirs: dict[str, Path]) -> Path:
    folder = workdirs["book"]
    (folder / "one.txt").write_text(CHAPTER_ONE)
    (folder / "two.txt").write_text(CHAPTER_TWO)
    return write_manifest(folder, """
title: Flow Book
author: Test Author
narrator: Nobody
engine: fake
voice: anyone
seed: 7
chapters:
  - {title: Opening, file: one.txt}
  - {title: "Second: The End", file: two.txt}
""")


def render(manifest: Path, **kwargs: Any) -> dict[str, Any]:
    from flows.render import render_book

    return render_book(str(manifest), **kwargs).to_dict()  # the report as report.json holds it


def synthesised_calls(engine: FakeEngine) -> int:
    return sum(engine.calls.values())


def test_render_writes_book_and_report(book: Path, fake: FakeEngine, workdirs: dict[str, Path]) -> None:
    report = render(book)
    out = workdirs["output"] / "book"
    assert report["chunks_total"] == report["chunks_synthesized"] > 2
    assert report["chunks_cached"] == 0
    assert report["engine"] == "fake" and report["engine_seconds"] >= 0 and report["wall_seconds"] > 0
    titles = ["Opening Credits", "Opening", "Second: The End", "End Credits"]  # credits: on by default
    assert [c["title"] for c in report["chapters"]] == titles
    for chapter in report["chapters"]:
        assert -23 <= chapter["rms_dbfs"] <= -18 and chapter["peak_dbfs"] <= -3.0
    chapters = read_m4b_chapters(out / "book.m4b")
    assert [t for t, _ in chapters] == titles
    assert chapters[1][1] == pytest.approx(report["chapters"][0]["duration_s"], abs=0.05)
    mp3s = sorted((out / "mp3").glob("*.mp3"))
    assert [p.name[:3] for p in mp3s] == ["01-", "02-", "03-", "04-"]
    assert MP3(mp3s[1]).info.sample_rate == 44100
    assert json.loads((out / "report.json").read_text())["chunks_total"] == report["chunks_total"]
    assert not [p for p in out.rglob("*") if TEMP_MARK in p.name or "partial" in p.name]


def test_second_render_synthesises_nothing(book: Path, fake: FakeEngine) -> None:
    first = render(book)
    calls = synthesised_calls(fake)
    second = render(book)
    assert second["chunks_synthesized"] == 0
    assert second["chunks_cached"] == first["chunks_total"]
    assert synthesised_calls(fake) == calls


def test_editing_one_sentence_resynthesises_only_its_chunk(book: Path, fake: FakeEngine) -> None:
    first = render(book)
    two = book.parent / "two.txt"
    two.write_text(CHAPTER_TWO.replace("one more thing", "one last thing"))
    second = render(book)
    assert second["chunks_synthesized"] == 1
    assert second["chunks_cached"] == first["chunks_total"] - 1


def test_deleted_or_corrupted_cache_entries_are_rerendered(
    book: Path, fake: FakeEngine, workdirs: dict[str, Path]
) -> None:
    render(book)
    files = sorted((workdirs["cache"] / "chunks").rglob("*.flac"))
    files[0].unlink()
    data = files[1].read_bytes()
    files[1].write_bytes(data[: len(data) // 2])  # truncated
    report = render(book)
    assert report["chunks_synthesized"] == 2


def test_transient_faults_are_retried(book: Path, fake: FakeEngine) -> None:
    fake.transient_failures = 2
    report = render(book)
    assert report["chunks_synthesized"] == report["chunks_total"]
    assert report["retries"] == 2 * report["chunks_total"]


def test_a_chunk_that_always_fails_names_chapter_and_sentence(
    book: Path, fake: FakeEngine, workdirs: dict[str, Path]
) -> None:
    fake.fail_texts = ("one more thing",)
    with pytest.raises(RenderError) as info:
        render(book)
    message = str(info.value)
    assert "Second: The End" in message and "one more thing" in message
    out = workdirs["output"] / "book"
    assert not (out / "book.m4b").exists() and not (out / "mp3").exists()
    # Every other chunk is cached: fixing the cause re-renders just the failed one.
    fake.fail_texts = ()
    report = render(book)
    assert report["chunks_synthesized"] == 1


def test_bad_take_is_rerolled_and_reported(book: Path, fake: FakeEngine) -> None:
    fake.silent = True
    report = render(book)
    assert report["rerolls"] == 2 * report["chunks_total"]  # max_takes=3: two re-rolls each
    assert len(report["bad_takes"]) == report["chunks_total"]
    assert "near-silent" in report["bad_takes"][0]


def test_unknown_voice_and_missing_source_fail_before_synthesis(book: Path, fake: FakeEngine) -> None:
    text = book.read_text()
    book.write_text(text.replace("voice: anyone", "voice: missing-one"))
    with pytest.raises(VoiceError, match="voice"):
        render(book)
    book.write_text(text.replace("two.txt", "three.txt"))
    with pytest.raises(SourceError, match="three.txt"):
        render(book)
    assert synthesised_calls(fake) == 0


def test_outputs_option_and_output_dir(book: Path, fake: FakeEngine, tmp_path: Path) -> None:
    book.write_text(book.read_text() + "outputs: [mp3]\n")
    report = render(book, output_dir=str(tmp_path / "elsewhere"))
    stems = ["mp3/01-opening-credits", "mp3/02-opening", "mp3/03-second-the-end", "mp3/04-end-credits"]
    assert report["files"] == [*(f"{s}.mp3" for s in stems), "sample.mp3",
                               *(f"{s}.{kind}" for s in stems for kind in ("vtt", "srt"))]  # no EPUB unless read_along
    assert (tmp_path / "elsewhere" / "book" / "mp3" / "02-opening.mp3").exists()
    assert not (tmp_path / "elsewhere" / "book" / "book.m4b").exists()


def test_crash_mid_render_resumes_from_cache(book: Path, workdirs: dict[str, Path]) -> None:
    """A process killed mid-book (os._exit, like kill -9) loses nothing already synthesised."""
    env = {**os.environ, "AUDIOBOOK_FAKE_EXIT_AFTER": "2"}
    cmd = [sys.executable, "-m", "cli", "render", str(book)]
    crashed = run_in_own_group(cmd, env, workdirs["book"] / "crash.log")
    assert crashed.returncode == 137, crashed.stderr
    cache = AudioCache(workdirs["cache"] / "chunks")
    stored = list((workdirs["cache"] / "chunks").rglob("*.flac"))
    assert len(stored) == 2 and all(cache.lookup(p.stem) for p in stored)
    assert not (workdirs["output"] / "book" / "book.m4b").exists()
    env.pop("AUDIOBOOK_FAKE_EXIT_AFTER")
    resumed = run_in_own_group(cmd, env, workdirs["book"] / "resume.log")
    assert resumed.returncode == 0, resumed.stderr
    report = json.loads((workdirs["output"] / "book" / "report.json").read_text())
    assert report["chunks_cached"] == 2
    assert report["chunks_synthesized"] == report["chunks_total"] - 2 > 0


def run_in_own_group(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.CompletedProcess[str]:
    """Run `cmd` in its own process group, output to a file; afterwards kill whatever it left behind
    (a crashed render orphans its temporary Prefect server, which would hold a pipe open)."""
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            code = proc.wait(timeout=300)
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    return subprocess.CompletedProcess(cmd, code, log.read_text(), log.read_text())


def test_progress_artifact_is_updated_at_most_once_a_second_and_at_the_end(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every batch moves the terminal's progress; the Prefect artifact (a server call) follows at most
    once a second, and always shows the last figure."""
    import flows.render as render

    calls: list[float] = []
    clock = [100.0]
    monkeypatch.setattr(render, "create_progress_artifact", lambda value, description: "artifact-id")
    monkeypatch.setattr(render, "update_progress_artifact", lambda artifact, value: calls.append(value))
    monkeypatch.setattr(render.time, "monotonic", lambda: clock[0])
    shown = render.ProgressArtifact(200, 0, "Synthesising")
    for done in range(10, 110, 10):  # ten batches within 0.9 s: none reaches the server
        clock[0] += 0.09
        shown.update(done)
    assert calls == []
    clock[0] += 0.2
    shown.update(120)
    shown.update(140)
    assert calls == [60.0]
    shown.update(200, final=True)
    shown.update(200, final=True)
    assert calls == [60.0, 100.0]
