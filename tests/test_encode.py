"""Tests for tasks.encode with the real ffmpeg: MP3 and M4B properties, tags, chapters, loudness, and
what a failure leaves behind (nothing)."""

from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from mutagen.id3 import ID3
from mutagen.mp3 import MP3, BitrateMode
from mutagen.mp4 import MP4, MP4Cover

from tasks import encode
from tasks.atomic import TEMP_MARK
from tasks.audio import noise_floor_dbfs, write_wav_atomic
from tasks.encode import BookTags, encode_m4b, encode_mp3, ffmpeg_exe
from tasks.errors import AudiobookError, DependencyError, OutputError, SourceError
from tests.audio_reference import assemble_chapter
from tests.media_probe import measure_file_loudness, media_duration_s, read_m4b_chapters


def speech_like(sr: int, seconds: float, rms_dbfs: float, *, seed: int = 0) -> np.ndarray:
    """Voiced syllables (a gliding harmonic series plus breath noise, ~4/s, with word gaps) at
    `rms_dbfs`, with 0.3 s of near-silence either side. (A copy of test_audio's generator, kept here
    so the test modules stay independent.)"""
    rng = np.random.default_rng(seed)
    t = np.arange(int(sr * seconds)) / sr
    phase = 2 * np.pi * np.cumsum(110 + 25 * np.sin(2 * np.pi * 0.6 * t + seed)) / sr
    x = sum(np.sin(k * phase) / k**1.5 for k in range(1, 16)) + 0.15 * rng.standard_normal(t.size)
    x = (
        x
        * np.clip(np.sin(2 * np.pi * 4.0 * t + seed), 0, None) ** 0.7
        * (np.sin(2 * np.pi * 0.45 * t + seed) > -0.7)
    )
    x *= 10 ** (rms_dbfs / 20) / np.sqrt(np.mean(x**2))
    pad = 10 ** (-80 / 20) * rng.standard_normal(int(sr * 0.3))
    return np.concatenate([pad, x, pad]).astype(np.float32)


TAGS = BookTags(
    title="The Book = One; #1 \\ Ünïcode",
    author="Ann Author",
    narrator="Ned Narrator",
    year="2024",
    description="First line.\nSecond line = ; # \\ done.",
    language="eng",
)
TITLES = ["Chapter 1: Start = here", "Ch; #2 \\ back", "第三章 — Ünïcode"]


@pytest.fixture(scope="module")
def book(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """Three assembled chapters (different lengths, 24 and 22.05 kHz sources) and two covers."""
    d = tmp_path_factory.mktemp("book")
    wavs = []
    for c, (seconds, sr, level) in enumerate([(2.0, 24000, -30.0), (3.0, 22050, -14.0), (1.5, 24000, -24.0)]):
        clips = [(speech_like(sr, seconds, level, seed=10 * c + i), sr) for i in range(2)]
        out, _ = assemble_chapter(clips, [600, 0])
        wavs.append(write_wav_atomic(d / f"ch{c + 1:02d}.wav", out, 44100))
    covers = {}
    for ext in ("jpg", "png"):
        covers[ext] = d / f"cover.{ext}"
        subprocess.run(
            [
                ffmpeg_exe(),
                "-v",
                "error",
                "-f",
                "lavfi",
                "-i",
                "testsrc=size=96x96",
                "-frames:v",
                "1",
                str(covers[ext]),
            ],
            check=True,
        )
    return {"dir": d, "wavs": wavs, "covers": covers}


def decode(path: Path) -> np.ndarray:
    raw = subprocess.run(
        [ffmpeg_exe(), "-v", "error", "-i", str(path), "-f", "f32le", "-ac", "1", "-"],
        capture_output=True,
        check=True,
    ).stdout
    return np.frombuffer(raw, dtype=np.float32)


def assert_acx(path: Path) -> None:
    """ffmpeg's own reading of the encoded file sits in ACX's window."""
    loud = measure_file_loudness(path)
    assert -23.0 <= loud["rms_dbfs"] <= -18.0, loud
    assert loud["peak_dbfs"] <= -3.0, loud
    assert -26.0 <= loud["lufs"] <= -14.0, loud
    assert noise_floor_dbfs(decode(path), 44100) <= -60.0


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if TEMP_MARK in p.name or ".partial" in p.name)


# ---------------------------------------------------------------- MP3


@pytest.mark.parametrize("cover_ext", ["png", "jpg"])
def test_mp3_format_tags_and_cover(book: dict, tmp_path: Path, cover_ext: str) -> None:
    wav = book["wavs"][1]
    cover = book["covers"][cover_ext]
    out = encode_mp3(
        wav,
        tmp_path / "out" / "02.mp3",
        tags=TAGS,
        chapter_title=TITLES[1],
        track=2,
        total_tracks=3,
        cover=cover,
    )
    assert out == tmp_path / "out" / "02.mp3" and out.is_file()
    info: Any = MP3(out).info
    assert info.sample_rate == 44100 and info.bitrate == 192000 and info.bitrate_mode == BitrateMode.CBR
    assert info.channels == 1
    assert info.length == pytest.approx(sf.info(str(wav)).duration, abs=0.1)
    assert media_duration_s(out) == pytest.approx(info.length)
    id3 = ID3(out)
    assert id3.version[:2] == (2, 4)
    assert str(id3["TIT2"]) == TITLES[1]
    assert str(id3["TPE1"]) == str(id3["TPE2"]) == TAGS.author
    assert str(id3["TALB"]) == TAGS.title
    assert str(id3["TRCK"]) == "2/3"
    assert str(id3["TCOM"]) == TAGS.narrator
    assert str(id3["TCON"]) == "Audiobook"
    assert str(id3["TDRC"]) == "2024"
    assert id3.getall("COMM")[0].text[0] == TAGS.description
    apic = id3.getall("APIC")
    assert len(apic) == 1 and apic[0].type == 3
    assert apic[0].mime == {"png": "image/png", "jpg": "image/jpeg"}[cover_ext]
    assert apic[0].data == cover.read_bytes()
    assert leftovers(out.parent) == []


def test_mp3_loudness_meets_acx(book: dict, tmp_path: Path) -> None:
    for i, wav in enumerate(book["wavs"]):
        out = encode_mp3(
            wav,
            tmp_path / f"{i}.mp3",
            tags=TAGS,
            chapter_title=TITLES[i],
            track=i + 1,
            total_tracks=3,
            cover=None,
        )
        assert "APIC" not in "".join(ID3(out).keys())
        assert_acx(out)


def test_mp3_bad_input_leaves_no_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.wav"
    bad.write_text("not audio")
    old = tmp_path / "01.mp3"
    old.write_bytes(b"previous good file")
    with pytest.raises(AudiobookError, match="ffmpeg failed") as info:
        encode_mp3(bad, old, tags=TAGS, chapter_title="x", track=1, total_tracks=1, cover=None)
    assert not isinstance(info.value, OutputError)
    assert old.read_bytes() == b"previous good file"  # an existing output is never half-replaced
    assert leftovers(tmp_path) == []
    with pytest.raises(AudiobookError, match="missing"):
        encode_mp3(
            tmp_path / "nope.wav",
            tmp_path / "n.mp3",
            tags=TAGS,
            chapter_title="x",
            track=1,
            total_tracks=1,
            cover=None,
        )


def test_mp3_full_disk_is_an_output_error(
    book: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full_disk(src: object, dst: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(OutputError) as info:
        encode_mp3(
            book["wavs"][0],
            tmp_path / "01.mp3",
            tags=TAGS,
            chapter_title="x",
            track=1,
            total_tracks=1,
            cover=None,
        )
    assert str(tmp_path) in str(info.value) and "disk is full" in str(info.value)
    assert info.value.fix
    assert list(tmp_path.iterdir()) == []


def test_bad_cover_is_a_source_error(book: dict, tmp_path: Path) -> None:
    gif = tmp_path / "cover.gif"
    gif.write_bytes(b"GIF89a....")
    with pytest.raises(SourceError, match="neither JPEG nor PNG"):
        encode_mp3(
            book["wavs"][0],
            tmp_path / "a.mp3",
            tags=TAGS,
            chapter_title="x",
            track=1,
            total_tracks=1,
            cover=gif,
        )
    with pytest.raises(SourceError, match="cannot read the cover"):
        encode_m4b(book["wavs"], TITLES, tmp_path / "a.m4b", tags=TAGS, cover=tmp_path / "none.jpg")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cover.gif"]


# ---------------------------------------------------------------- M4B


@pytest.fixture(scope="module")
def m4b(book: dict) -> Path:
    return encode_m4b(
        book["wavs"], TITLES, book["dir"] / "out" / "The Book.m4b", tags=TAGS, cover=book["covers"]["jpg"]
    )


def test_m4b_chapters_match_wav_durations(book: dict, m4b: Path) -> None:
    chapters = read_m4b_chapters(m4b)
    assert [title for title, _ in chapters] == TITLES
    durations = [sf.info(str(w)).frames / sf.info(str(w)).samplerate for w in book["wavs"]]
    expected_starts = np.concatenate([[0.0], np.cumsum(durations)[:-1]])
    np.testing.assert_allclose([start for _, start in chapters], expected_starts, atol=0.05)
    assert media_duration_s(m4b) == pytest.approx(sum(durations), abs=0.1)
    assert leftovers(m4b.parent) == []


def test_m4b_tags_and_cover(book: dict, m4b: Path) -> None:
    tags = MP4(m4b).tags
    assert tags is not None
    assert tags["©nam"] == [TAGS.title] and tags["©alb"] == [TAGS.title]
    assert tags["©ART"] == [TAGS.author] and tags["aART"] == [TAGS.author]
    assert tags["©wrt"] == [TAGS.narrator]
    assert tags["©gen"] == ["Audiobook"] and tags["©day"] == ["2024"]
    assert tags["©cmt"] == [TAGS.description]
    assert tags["stik"] == [2]
    covers = tags["covr"]
    assert len(covers) == 1 and covers[0].imageformat == MP4Cover.FORMAT_JPEG
    assert bytes(covers[0]) == book["covers"]["jpg"].read_bytes()
    assert MP4(m4b).info.codec.startswith("mp4a")


def test_m4b_loudness_meets_acx(m4b: Path) -> None:
    assert_acx(m4b)


def test_m4b_png_cover_and_no_cover(book: dict, tmp_path: Path) -> None:
    with_png = encode_m4b(
        book["wavs"][:1], ["Only"], tmp_path / "p.m4b", tags=TAGS, cover=book["covers"]["png"]
    )
    tags = MP4(with_png).tags
    assert tags is not None and tags["covr"][0].imageformat == MP4Cover.FORMAT_PNG
    bare = encode_m4b(
        book["wavs"][:1],
        ["Only"],
        tmp_path / "b.m4b",
        tags=BookTags(title="T", author="A", genre=None),
        cover=None,
    )
    bare_tags = MP4(bare).tags
    assert bare_tags is not None and "covr" not in bare_tags and "©gen" not in bare_tags
    assert read_m4b_chapters(bare) == [("Only", 0.0)]


def fake_ffmpeg(tmp_path: Path, stderr_line: str) -> str:
    """An ffmpeg that does all the work (the temp output is complete) and then fails."""
    script = tmp_path / "bin" / "ffmpeg"
    script.parent.mkdir()
    script.write_text(f'#!/bin/sh\n"{ffmpeg_exe()}" "$@"\necho "{stderr_line}" >&2\nexit 1\n')
    script.chmod(0o755)
    return str(script)


@pytest.mark.parametrize(
    ("stderr_line", "error"),
    [
        ("Conversion failed!", AudiobookError),
        ("Error writing trailer: No space left on device", OutputError),
    ],
)
def test_m4b_ffmpeg_failure_in_the_middle_leaves_nothing(
    book: dict, tmp_path: Path, stderr_line: str, error: type, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = fake_ffmpeg(tmp_path, stderr_line)
    monkeypatch.setattr(encode, "ffmpeg_exe", lambda: fake)
    out_dir = tmp_path / "out"
    with pytest.raises(error) as info:
        encode_m4b(book["wavs"], TITLES, out_dir / "book.m4b", tags=TAGS, cover=book["covers"]["jpg"])
    assert stderr_line in str(info.value) if error is AudiobookError else str(out_dir) in str(info.value)
    assert list(out_dir.iterdir()) == []
    with pytest.raises(error):
        encode_mp3(
            book["wavs"][0],
            out_dir / "01.mp3",
            tags=TAGS,
            chapter_title="x",
            track=1,
            total_tracks=1,
            cover=None,
        )
    assert list(out_dir.iterdir()) == []


def test_m4b_unreadable_chapter_or_full_disk_leaves_nothing(
    book: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = tmp_path / "bad.wav"
    bad.write_text("garbage, not a wav")
    with pytest.raises(AudiobookError, match="unreadable"):
        encode_m4b([*book["wavs"], bad], [*TITLES, "bad"], tmp_path / "book.m4b", tags=TAGS, cover=None)
    assert not (tmp_path / "book.m4b").exists() and leftovers(tmp_path) == []

    def read_only(src: object, dst: object) -> None:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(os, "replace", read_only)
    with pytest.raises(OutputError, match="read-only"):
        encode_m4b(book["wavs"], TITLES, tmp_path / "book.m4b", tags=TAGS, cover=book["covers"]["jpg"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.wav"]


def test_m4b_rejects_mismatched_titles(book: dict, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="titles"):
        encode_m4b(book["wavs"], TITLES[:2], tmp_path / "x.m4b", tags=TAGS, cover=None)
    with pytest.raises(ValueError):
        encode_m4b([], [], tmp_path / "x.m4b", tags=TAGS, cover=None)


# ---------------------------------------------------------------- helpers


def test_ffmetadata_escapes_specials() -> None:
    assert encode._ffmeta_escape("a=b;c#d\\e\nf") == "a\\=b\\;c\\#d\\\\e\\\nf"
    text = encode._ffmetadata(TAGS, ["x=1"], [(0, 1500)])
    assert text.startswith(";FFMETADATA1\n")
    assert "[CHAPTER]\nTIMEBASE=1/1000\nSTART=0\nEND=1500\ntitle=x\\=1\n" in text


def test_missing_ffmpeg_is_a_dependency_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import imageio_ffmpeg

    def no_binary() -> str:
        raise RuntimeError("No ffmpeg exe could be found")

    encode.ffmpeg_exe.cache_clear()
    monkeypatch.setattr(encode.shutil, "which", lambda name: None)
    monkeypatch.setattr(imageio_ffmpeg, "get_ffmpeg_exe", no_binary)
    try:
        with pytest.raises(DependencyError) as info:
            encode.ffmpeg_exe()
        assert "imageio-ffmpeg" in str(info.value) and "apt-get install ffmpeg" in str(info.value)
    finally:
        encode.ffmpeg_exe.cache_clear()
    monkeypatch.undo()
    assert Path(encode.ffmpeg_exe()).is_file()
