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

from tests.conftest import write_manifest
from tests.media_probe import measure_file_loudness, read_m4b_chapters

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent


def audiobook(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli", *args], capture_output=True, text=True, timeout=600,
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
    titles = ["Opening Credits", "Arrival", "Departure", "End Credits"]
    assert [c["title"] for c in report["chapters"]] == titles

    m4b = MP4(out / "tiny.m4b")
    assert m4b.info.sample_rate == 44100
    assert m4b.tags is not None
    assert m4b.tags["\xa9nam"] == ["A Tiny Tale"] and m4b.tags["\xa9ART"] == ["Test Writer"]
    assert m4b.tags["\xa9wrt"] == ["Joe"] and "covr" in m4b.tags
    chapters = read_m4b_chapters(out / "tiny.m4b")
    assert [t for t, _ in chapters] == titles
    durations = [c["duration_s"] for c in report["chapters"]]
    assert chapters[0][1] == 0 and chapters[2][1] == pytest.approx(durations[0] + durations[1], abs=0.05)
    total = sum(durations)
    assert m4b.info.length == pytest.approx(total, abs=0.3)
    assert 3 < durations[1] < 30  # two short paragraphs of speech, plus head and tail room tone

    mp3s = sorted((out / "mp3").glob("*.mp3"))
    assert [p.name for p in mp3s] == ["01-opening-credits.mp3", "02-arrival.mp3", "03-departure.mp3",
                                      "04-end-credits.mp3"]
    for index, path in enumerate(mp3s):
        mp3 = MP3(path)
        assert mp3.info.sample_rate == 44100 and mp3.info.bitrate_mode == BitrateMode.CBR
        assert mp3.info.bitrate == pytest.approx(192000, abs=500)
        assert mp3.tags is not None and str(mp3.tags["TRCK"]) == f"{index + 1}/4"
        assert mp3.info.length == pytest.approx(report["chapters"][index]["duration_s"], abs=0.2)
        loudness = measure_file_loudness(path)
        assert -23 <= loudness["rms_dbfs"] <= -18, loudness
        assert loudness["peak_dbfs"] <= -3.0, loudness
    book_loudness = measure_file_loudness(out / "tiny.m4b")
    # The chapters' true peaks are limited to -3.5 dBFS (the MP3s, ACX's deliverable, stay at or below -3);
    # AAC at 64 kbps reconstructs some transients up to about 2 dB higher, never near clipping.
    assert -23 <= book_loudness["rms_dbfs"] <= -18 and book_loudness["peak_dbfs"] <= -1.0, book_loudness

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
    assert "total: 4 chapters" in result.stdout and "chunks" in result.stdout  # the credits are two of them


TOWER_BOOK = """Chapter 1: The Tower

The old tower stood at the edge of the marsh, and every spring the herons came back to nest in its broken
roof. Anna climbed the spiral stairs each morning with a notebook under her arm. She counted the birds,
wrote down the weather, and watched the tide creep over the mud flats. Some days the fog was so thick that
she could hear the herons but never see them. She liked those days best.

Her grandfather had kept the same notes for forty years. His books filled two shelves in the kitchen, and
she read them in the evenings while the kettle warmed.

Chapter 2: The Flood

In the autumn a storm broke the sea wall. Water poured across the fields and rose around the tower until
the lowest window was a pool of grey light. Anna carried the notebooks up to the top room, one armful at a
time, and stacked them on the table where the herons could not reach them. When the water went down, the
village came to help. They rebuilt the wall with stones from the old barn, and the children painted the
new gate blue.

The herons returned the next spring as if nothing had happened.
"""


def test_render_speaks_the_structure_a_listener_expects(workdirs: dict[str, Path]) -> None:
    """Credits, spoken titles and a retail sample, with the real voice: a plain-text book of two chapters."""
    import numpy as np

    from tasks.audio import read_audio
    from tasks.encode import ffmpeg_exe

    folder = workdirs["book"]
    (folder / "tower.txt").write_text(TOWER_BOOK)
    manifest = write_manifest(folder, """
title: The Heron Tower
author: Test Writer
engine: piper
voice: joe
quality: draft
source: tower.txt
""", name="tower.yaml")
    result = audiobook("render", str(manifest))
    assert result.returncode == 0, result.stderr
    out = workdirs["output"] / "tower"
    report = json.loads((out / "report.json").read_text())
    titles = ["Opening Credits", "Chapter 1: The Tower", "Chapter 2: The Flood", "End Credits"]
    chapters = read_m4b_chapters(out / "tower.m4b")
    assert [t for t, _ in chapters] == titles
    ends = [s for _, s in chapters[1:]] + [MP4(out / "tower.m4b").info.length]
    durations = [end - start for (_, start), end in zip(chapters, ends, strict=True)]
    # Each chapter's playing time fits its words (the title spoken first, then pauses and room tone).
    bodies = [part.split("\n", 1)[1] for part in TOWER_BOOK.split("Chapter ")[1:]]
    for title, body, seconds in zip(titles[1:3], bodies, durations[1:3], strict=True):
        words = len(body.split()) + len(title.split())
        assert 100 <= words / (seconds / 60) <= 220, (title, words, seconds)
    for row, seconds in zip(report["chapters"], durations, strict=True):
        assert row["duration_s"] == pytest.approx(seconds, abs=0.1)
        assert 100 <= row["words_per_minute"] <= 220 or row["kind"] == "credits", row
    assert 3 < durations[0] < 15 and 3 < durations[3] < 20  # the credits: a few short sentences

    # The sample: the start of the first chapter (not the credits), at most 5 minutes and no longer than it.
    sample = out / "sample.mp3"
    assert "sample.mp3" in report["files"] and report["sample"]["chapter"] == titles[1]
    length = MP3(sample).info.length
    assert length == pytest.approx(report["sample"]["duration_s"], abs=0.06)
    assert 10 < length <= min(300.0, durations[1] + 0.05)

    def decoded(path: Path) -> np.ndarray:
        wav = path.with_name(path.stem + "-decoded.wav")
        subprocess.run([ffmpeg_exe(), "-loglevel", "error", "-y", "-i", str(path), str(wav)], check=True)
        return read_audio(wav)[0]

    head_s = 8.0  # the spoken title and the first words: the sample and the chapter's MP3 agree
    a, b = (decoded(p)[: int(head_s * 44100)] for p in (sample, out / "mp3" / "02-chapter-1-the-tower.mp3"))
    assert float(np.corrcoef(a, b)[0, 1]) > 0.95


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
