"""End to end: the `audiobook` command with the real Piper voice and real ffmpeg."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from mutagen.mp3 import MP3, BitrateMode
from mutagen.mp4 import MP4

from tasks.encode import measure_file_loudness, read_m4b_chapters
from tests.conftest import write_manifest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent


def audiobook(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flows.cli", *args], capture_output=True, text=True, timeout=600,
        env={**os.environ, **(env or {})}, cwd=ROOT,
    )


@pytest.fixture
def two_chapter_book(workdirs: dict[str, Path]) -> Path:
    folder = workdirs["book"]
    (folder / "cover.png").write_bytes((ROOT / "manifests/quickstart/cover.png").read_bytes())
    (folder / "story.md").write_text(
        "# A Tiny Tale\n\n## Arrival\n\nMr. Grey arrived at 3.15 in the afternoon. *Nobody* met him.\n\n"
        "He waited by the U.S. mail box, e.g. the blue one.\n\n"
        "## Departure\n\nBy evening he had gone. The [station](http://example.com) was quiet again.\n"
    )
    return write_manifest(folder, """
title: A Tiny Tale
author: Test Writer
narrator: Joe
year: 2026
cover: cover.png
engine: piper
voice: joe
quality: draft
seed: 42
source: story.md
""", name="tiny.yaml")


def test_render_with_piper_produces_a_real_audiobook(two_chapter_book: Path, workdirs: dict[str, Path]) -> None:
    result = audiobook("render", str(two_chapter_book))
    assert result.returncode == 0, result.stderr
    out = workdirs["output"] / "tiny"
    assert str(out / "tiny.m4b") in result.stdout
    report = json.loads((out / "report.json").read_text())
    assert report["engine"] == "piper" and report["chunks_synthesized"] == report["chunks_total"] >= 2
    assert [c["title"] for c in report["chapters"]] == ["Arrival", "Departure"]

    m4b = MP4(out / "tiny.m4b")
    assert m4b.info.sample_rate == 44100
    assert m4b.tags is not None
    assert m4b.tags["\xa9nam"] == ["A Tiny Tale"] and m4b.tags["\xa9ART"] == ["Test Writer"]
    assert m4b.tags["\xa9wrt"] == ["Joe"] and "covr" in m4b.tags
    chapters = read_m4b_chapters(out / "tiny.m4b")
    assert [t for t, _ in chapters] == ["Arrival", "Departure"]
    first = report["chapters"][0]["duration_s"]
    assert chapters[0][1] == 0 and chapters[1][1] == pytest.approx(first, abs=0.05)
    total = sum(c["duration_s"] for c in report["chapters"])
    assert m4b.info.length == pytest.approx(total, abs=0.3)
    assert 3 < first < 30  # two short paragraphs of speech, plus head and tail room tone

    mp3s = sorted((out / "mp3").glob("*.mp3"))
    assert [p.name for p in mp3s] == ["01-arrival.mp3", "02-departure.mp3"]
    for index, path in enumerate(mp3s):
        mp3 = MP3(path)
        assert mp3.info.sample_rate == 44100 and mp3.info.bitrate_mode == BitrateMode.CBR
        assert mp3.info.bitrate == pytest.approx(192000, abs=500)
        assert mp3.tags is not None and str(mp3.tags["TRCK"]) == f"{index + 1}/2"
        assert mp3.info.length == pytest.approx(report["chapters"][index]["duration_s"], abs=0.2)
        loudness = measure_file_loudness(path)
        assert -23 <= loudness["rms_dbfs"] <= -18, loudness
        assert loudness["peak_dbfs"] <= -3.0, loudness
    book_loudness = measure_file_loudness(out / "tiny.m4b")
    assert -23 <= book_loudness["rms_dbfs"] <= -18 and book_loudness["peak_dbfs"] <= -2.9, book_loudness

    again = audiobook("render", str(two_chapter_book))
    assert again.returncode == 0, again.stderr
    report2 = json.loads((out / "report.json").read_text())
    assert report2["chunks_synthesized"] == 0 and report2["chunks_cached"] == report["chunks_total"]


def test_piper_is_deterministic_for_a_seed() -> None:
    from tasks.engines import get_engine

    engine = get_engine("piper")
    settings = {**engine.settings_for("standard"), "sentence_pause_ms": 200}
    a = engine.synthesize("The same words. Twice over.", "joe", settings, 5)
    b = engine.synthesize("The same words. Twice over.", "joe", settings, 5)
    assert a.sample_rate_hz == 22050 and a.duration_s > 1.0
    assert (a.samples == b.samples).all()


def test_check_prints_the_plan(two_chapter_book: Path) -> None:
    result = audiobook("check", str(two_chapter_book))
    assert result.returncode == 0, result.stderr
    assert "Arrival" in result.stdout and "Departure" in result.stdout
    assert "total: 2 chapters" in result.stdout and "chunks" in result.stdout


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ("title: T\nauthor: A\nsource: story.md\nvoise: joe\n", "did you mean 'voice'"),
        ("title: T\nauthor: A\nsource: nope.md\n", "nope.md"),
        ("title: T\nauthor: A\nsource: story.md\nvoice: nobody\n", "voice"),
        ("title: [\n", "invalid YAML"),
    ],
)
def test_check_and_render_on_broken_manifest_exit_2_with_one_line(
    workdirs: dict[str, Path], body: str, words: str
) -> None:
    folder = workdirs["book"]
    (folder / "story.md").write_text("Some text.\n")
    manifest = write_manifest(folder, body)
    for command in ("check", "render"):
        result = audiobook(command, str(manifest))
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
        assert words in lines[0] and str(manifest) in lines[0]
    assert not (workdirs["output"] / "book").exists()
