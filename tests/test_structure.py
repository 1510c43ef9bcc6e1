"""The book's spoken structure: spoken titles, credits, parts, the retail sample, the cover rules.

Plan tests are pure; flow tests render through real Prefect and ffmpeg with the fake engine.
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

import pytest
from mutagen.mp3 import MP3
from mutagen.mp4 import MP4

import tasks.source
from tasks import book, plan
from tasks.audio import AudioStats, read_audio, write_wav_atomic
from tasks.cover import prepare_cover
from tasks.documents import ChapterText, Document, Metadata
from tasks.encode import BookTags, encode_mp3
from tasks.engines.base import EngineInfo
from tasks.errors import SourceError
from tasks.manifest import Manifest, load_manifest, validate_manifest
from tasks.plan import BookPlan, SynthJob, plan_chapters
from tasks.source import read_chapters
from tasks.structure import split_into_parts
from tasks.text import normalize_text
from tests.conftest import fake_engine, write_manifest
from tests.media_probe import media_duration_s, read_m4b_chapters

INFO = EngineInfo(name="piper", version="test", max_chars=400, sample_rate_hz=22050, supports_prompts=False)
STORM = ChapterText("Chapter 4: The Storm", ("Rain came over the hill. It did not stop.", "By night the river rose."))
CALM = ChapterText("Calm", ("The morning was still.",))


def manifest(folder: Path, **body: Any) -> Manifest:
    return validate_manifest({"title": "The Quiet Village", "author": "Jane Doe", "engine": "fake",
                              "voice": "joe", "source": "book.md", **body}, folder / "book.yaml")


def plan_of(chapters: tuple[ChapterText, ...], m: Manifest, info: EngineInfo = INFO) -> BookPlan:
    job = SynthJob(engine="fake", voice="joe", settings={}, seed=0, voices_dir=None, cache_dir=str(m.folder / "c"))
    return plan_chapters(chapters, m, info, job, "voice")


def texts(chapter: plan.ChapterPlan) -> list[str]:
    return [c.text for c in chapter.chunks]


# --- the plan ------------------------------------------------------------------------------------


def test_every_chapter_opens_with_its_title_then_a_longer_pause(tmp_path: Path) -> None:
    m = manifest(tmp_path, credits=False)
    book_plan = plan_of((STORM, CALM), m)
    storm, calm = book_plan.chapters
    assert texts(storm)[0] == "Chapter Four. The Storm." and texts(storm)[1] == "Rain came over the hill. It did not stop."
    assert texts(calm) == ["Calm.", "The morning was still."]
    title_pause = round(m.pacing.paragraph_pause_ms * plan.TITLE_PAUSE_FACTOR)
    assert storm.chunks[0].pause_after_ms == calm.chunks[0].pause_after_ms == title_pause > m.pacing.paragraph_pause_ms
    # The title is a chunk of its own: renaming a chapter leaves its text's chunks (and cache) alone.
    renamed = plan_of((ChapterText("The Flood", STORM.paragraphs), CALM), m).chapters[0]
    assert renamed.chunks[0].key != storm.chunks[0].key
    assert [c.key for c in renamed.chunks[1:]] == [c.key for c in storm.chunks[1:]]


def test_speak_titles_false_leaves_titles_unspoken(tmp_path: Path) -> None:
    book_plan = plan_of((STORM, CALM), manifest(tmp_path, credits=False, speak_titles=False))
    assert [texts(ch) for ch in book_plan.chapters] == [list(STORM.paragraphs), ["The morning was still."]]
    assert [ch.title for ch in book_plan.chapters] == ["Chapter 4: The Storm", "Calm"]


def write_epub(path: Path, chapters: list[tuple[str, str]]) -> None:
    from ebooklib import epub

    doc = epub.EpubBook()
    doc.set_identifier("structure-test")
    doc.set_title("The Quiet Village")
    doc.set_language("en")
    items = []
    for i, (title, text) in enumerate(chapters, start=1):
        item = epub.EpubHtml(title=title, file_name=f"ch{i}.xhtml", lang="en")
        item.content = f"<html><body><h1>{title}</h1><p>{text}</p></body></html>"
        doc.add_item(item)
        items.append(item)
    doc.toc = [epub.Link(f"ch{i}.xhtml", t, f"ch{i}") for i, (t, _) in enumerate(chapters, start=1)]
    doc.add_item(epub.EpubNcx())
    doc.add_item(epub.EpubNav())
    doc.spine = items
    epub.write_epub(str(path), doc)


@pytest.mark.parametrize("source", ["book.txt", "book.md", "book.epub", None])
def test_titles_are_spoken_for_every_source_format(tmp_path: Path, source: str | None) -> None:
    chapters = [("Chapter 1", "The first words."), ("Chapter 2", "The second words.")]
    if source == "book.txt":
        (tmp_path / source).write_text("".join(f"{t}\n\n{x}\n\n" for t, x in chapters))
    elif source == "book.md":
        (tmp_path / source).write_text("".join(f"# {t}\n\n{x}\n\n" for t, x in chapters))
    elif source == "book.epub":
        write_epub(tmp_path / source, chapters)
    body: dict[str, Any] = {"credits": False}
    if source is None:
        body.update(source=None, chapters=[{"title": t, "text": x} for t, x in chapters])
    else:
        body.update(source=source)
    m = manifest(tmp_path, **body)
    book_plan = plan_of(read_chapters(m)[0], m)
    assert [texts(ch) for ch in book_plan.chapters] == [
        [plan.spoken_title("Chapter 1"), "The first words."], [plan.spoken_title("Chapter 2"), "The second words."]]
    assert plan.spoken_title("Chapter 1").startswith("Chapter")


def test_a_heading_repeated_in_the_text_is_spoken_once(tmp_path: Path) -> None:
    m = manifest(tmp_path, credits=False)
    chapters = (
        ChapterText("Chapter IV: The Storm", ("CHAPTER IV.", "THE STORM", "Rain fell.")),  # a two-line heading
        ChapterText("Part One", ("Part One",)),  # a part's title page: the heading alone
        ChapterText("Calm", ("Calm seas", "Calm.")),  # not the heading: every word stays
        ChapterText("Part Two: II: The Flood", ("II", "The Flood", "Water rose.")),  # the part named before it
        ChapterText("Part Three: The Run", ("Run!", "They ran.")),  # too short to be taken for the heading
    )
    book_plan = plan_of(chapters, m)
    assert [texts(ch)[1:] for ch in book_plan.chapters] == [
        ["Rain fell."], [], ["Calm seas", "Calm."], ["Water rose."], ["Run!", "They ran."]]
    assert [ch.title for ch in book_plan.chapters] == [c.title for c in chapters]
    # Titles unspoken: the text is read as it stands.
    unspoken = plan_of(chapters, manifest(tmp_path, credits=False, speak_titles=False))
    assert texts(unspoken.chapters[0]) == ["Chapter Four.", "The Storm", "Rain fell."]  # in its spoken form


def test_credits_open_and_close_the_book(tmp_path: Path) -> None:
    book_plan = plan_of((STORM, CALM), manifest(tmp_path, narrator="Sam Reed."))
    titles = [ch.title for ch in book_plan.chapters]
    assert titles == ["Opening Credits", "Chapter 4: The Storm", "Calm", "End Credits"]
    assert [ch.kind for ch in book_plan.chapters] == ["credits", "chapter", "chapter", "credits"]
    assert [ch.index for ch in book_plan.chapters] == [0, 1, 2, 3]
    assert all(c.chapter_index == ch.index for ch in book_plan.chapters for c in ch.chunks)
    opening, *_, closing = book_plan.chapters
    assert texts(opening) == ["The Quiet Village.", "Written by Jane Doe.", "Narrated by Sam Reed."]
    assert texts(closing) == [
        "The End.", "You have been listening to The Quiet Village, written by Jane Doe, narrated by Sam Reed."]
    # Without a narrator the voice reads: "read by" its name.
    unnamed = plan_of((CALM,), manifest(tmp_path, voice="lessac_medium")).chapters
    assert texts(unnamed[0])[-1] == "Read by Lessac Medium."
    assert texts(unnamed[-1])[-1].endswith("written by Jane Doe, read by Lessac Medium.")
    # credits: false: the book's own chapters only.
    bare = plan_of((STORM, CALM), manifest(tmp_path, credits=False))
    assert [ch.title for ch in bare.chapters] == ["Chapter 4: The Storm", "Calm"]


def test_credits_chunks_fit_the_engine_limit(tmp_path: Path) -> None:
    small = EngineInfo(name="fake", version="t", max_chars=40, sample_rate_hz=24000, supports_prompts=False)
    long = "A Very Long Title That Goes On and On Past Any Engine Limit"
    book_plan = plan_of((CALM,), manifest(tmp_path, title=long), small)
    assert all(0 < len(c.text) <= 40 for c in book_plan.chunks)
    assert " ".join(texts(book_plan.chapters[0])).startswith(long)


def test_empty_chapter_is_left_out_and_the_others_keep_their_titles(tmp_path: Path) -> None:
    (tmp_path / "book.md").write_text(
        "# The Quiet Village\n\n## First\n\nWords of the first.\n\n## Second\n\n<!-- nothing here -->\n\n"
        "## Third\n\nWords of the third.\n\n## Fourth\n\n[only a prompt]\n\n## Fifth\n\nWords of the fifth.\n"
    )
    m = manifest(tmp_path, prompts=True)  # with prompts on, "[only a prompt]" is a prompt the engine cannot use
    chapters, notes = read_chapters(m)
    book_plan = plan_chapters(chapters, m, INFO, plan_of((CALM,), m).job, "voice", notes)
    body = [ch for ch in book_plan.chapters if ch.kind == "chapter"]
    assert [ch.title for ch in body] == ["First", "Third", "Fifth"]
    fourth = next(entry for entry in book_plan.ledger if entry.title == "Fourth")
    assert fourth.text.removed_by_reason() == {"prompt": 3} and fourth.text.kept == 0
    assert [texts(ch) for ch in body] == [["First.", "Words of the first."], ["Third.", "Words of the third."],
                                          ["Fifth.", "Words of the fifth."]]
    assert any("Second" in w for w in book_plan.warnings) and any("Fourth" in w for w in book_plan.warnings)


def test_a_book_of_credits_alone_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no text to speak"):
        plan_of((ChapterText("Only a prompt", ("[sighs]",)),), manifest(tmp_path, prompts=True))
    spoken = plan_of((ChapterText("Only brackets", ("[sighs]",)),), manifest(tmp_path))  # prompts off: text
    assert [c.text for c in spoken.chapters[1].chunks] == ["Only brackets.", "sighs"]


def test_long_chapter_is_split_into_parts_between_paragraphs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    paragraphs = tuple(f"Paragraph {i} begins here. It says a little more, then it ends." for i in range(12))
    long = ChapterText("Chapter Three", paragraphs)
    m = manifest(tmp_path)
    whole = plan_of((STORM, long, CALM), m)
    assert [ch.title for ch in whole.chapters] == ["Opening Credits", "Chapter 4: The Storm", "Chapter Three", "Calm",
                                                   "End Credits"]  # under the limit: not split
    one_paragraph = sum(plan.estimate_seconds(c.text, c.pause_after_ms) for c in whole.chapters[2].chunks[1:2])
    monkeypatch.setattr(plan, "MAX_PART_SECONDS", 4.2 * one_paragraph / plan.ESTIMATE_MARGIN)
    book_plan = plan_of((STORM, long, CALM), m)
    titles = [ch.title for ch in book_plan.chapters]
    assert titles == ["Opening Credits", "Chapter 4: The Storm", "Chapter Three (Part 1)", "Chapter Three (Part 2)",
                      "Chapter Three (Part 3)", "Calm", "End Credits"]
    parts = book_plan.chapters[2:5]
    assert [texts(p)[0] for p in parts] == [f"Chapter Three. Part {n}." for n in ("One", "Two", "Three")]
    # Paragraphs stay whole, in order, each in exactly one part; the parts are about equally long.
    assert [t for p in parts for t in texts(p)[1:]] == [normalize_text(p) for p in paragraphs]
    assert [len(p.chunks) - 1 for p in parts] == [4, 4, 4]
    assert all(p.sentences == 8 for p in parts)
    assert any("split into 3 parts" in w for w in book_plan.warnings)
    # Neighbouring chapters keep their own titles and text.
    assert texts(book_plan.chapters[1])[1:] == list(STORM.paragraphs) and texts(book_plan.chapters[5])[1:] == list(
        CALM.paragraphs)


def test_split_into_parts() -> None:
    assert split_into_parts([10, 10, 10], 30) == []
    assert split_into_parts([10, 10, 10, 10], 30) == [2]  # two parts of 20, not 30 + 10
    assert split_into_parts([1] * 10, 3) == [2, 5, 7]  # ceil(10 / 3) = 4 parts of 2, 3, 2, 3 (ties: earlier)
    assert split_into_parts([50], 10) == []  # one paragraph is never cut
    assert split_into_parts([1, 50, 1], 10) == [1, 2]  # the long paragraph stands alone
    with pytest.raises(ValueError):
        split_into_parts([1, 2], 0)


# --- the sample ----------------------------------------------------------------------------------


def audio(spans: list[tuple[float, float]], duration: float, kind: plan.ChapterKind = "chapter") -> book.ChapterAudio:
    stats = AudioStats(duration, 44100, -20.0, -4.0, -20.0, -75.0)
    return book.ChapterAudio(1, "One", "k", "x.wav", stats, False, kind, tuple(spans))


def test_sample_ends_after_a_chunk_within_five_minutes() -> None:
    # Chunks of 10 s; 0.3 s between sentences; a paragraph ends after every fourth chunk (0.8 s).
    spans, t = [], 0.75
    for i in range(60):
        spans.append((t, t + 10.0))
        t += 10.0 + (0.8 if i % 4 == 3 else 0.3)
    chapter = audio(spans, t + 2.0)
    end = book.sample_end_s(chapter)
    assert end <= book.SAMPLE_MAX_SECONDS
    ends = [e for _, e in spans]
    last = max(i for i, e in enumerate(ends) if e <= end)
    assert end - ends[last] == pytest.approx(0.8)  # in the pause after a paragraph's last chunk
    assert last % 4 == 3 and end > book.SAMPLE_MAX_SECONDS - book.SAMPLE_PREFER_PARAGRAPH_S
    # A short chapter: the sample is all of it, up to a second after its last words.
    short = audio([(0.75, 20.0), (20.3, 40.0)], 42.0)
    assert book.sample_end_s(short) == pytest.approx(41.0)
    assert book.sample_chapter([audio([], 1, "credits"), short, audio([], 1)]) is short
    # A short epigraph before the story: the sample comes from the first chapter of a minute or more.
    story = audio([(0.75, 80.0)], 82.0)
    assert book.sample_chapter([audio([], 9, "credits"), short, story, audio([], 90)]) is story


def test_encode_mp3_until_cuts_and_fades(tmp_path: Path) -> None:
    import numpy as np

    sr = 44100
    tone = (0.3 * np.sin(2 * np.pi * 220 * np.arange(10 * sr) / sr)).astype(np.float32)
    wav = write_wav_atomic(tmp_path / "ch.wav", tone, sr)
    out = encode_mp3(wav, tmp_path / "sample.mp3", tags=BookTags("T", "A"), chapter_title="Sample", track=1,
                     total_tracks=1, until_s=4.0, fade_out_ms=1000)
    assert media_duration_s(out) == pytest.approx(4.0, abs=0.06)
    decoded = tmp_path / "decoded.wav"
    import subprocess

    from tasks.encode import ffmpeg_exe

    subprocess.run([ffmpeg_exe(), "-loglevel", "error", "-i", str(out), str(decoded)], check=True)
    x, rate = read_audio(decoded)
    level = lambda a, b: float(np.sqrt(np.mean(x[int(a * rate):int(b * rate)] ** 2)))  # noqa: E731
    assert level(3.0 - 0.5, 3.0) > 0.15  # before the fade: the tone's own level (0.3 / sqrt 2)
    assert level(3.85, 3.95) < 0.03  # faded almost to nothing


# --- the cover -----------------------------------------------------------------------------------


def image_bytes(size: tuple[int, int], fmt: str) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(out, fmt)
    return out.getvalue()


def test_cover_rules(tmp_path: Path) -> None:
    work = tmp_path / "covers"
    (tmp_path / "big.png").write_bytes(image_bytes((2400, 2400), "PNG"))
    path, notes = prepare_cover(manifest(tmp_path, cover="big.png"), Metadata(), work)
    assert path == (tmp_path / "big.png").resolve() and notes == []
    (tmp_path / "small.jpg").write_bytes(image_bytes((600, 400), "JPEG"))
    path, notes = prepare_cover(manifest(tmp_path, cover="small.jpg"), Metadata(), work)
    assert path == (tmp_path / "small.jpg").resolve()
    assert any("600x400" in n and "2400x2400" in n for n in notes) and any("not square" in n for n in notes)
    # Another raster format is converted to JPEG.
    (tmp_path / "cover.webp").write_bytes(image_bytes((2400, 2400), "WEBP"))
    path, notes = prepare_cover(manifest(tmp_path, cover="cover.webp"), Metadata(), work)
    assert path is not None and path.parent == work and path.read_bytes()[:3] == b"\xff\xd8\xff"
    assert notes == ["the cover 'cover.webp' is not a JPEG or PNG; it was converted to JPEG"]
    # Not an image at all: skipped with a warning, no failure.
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    path, notes = prepare_cover(manifest(tmp_path, cover="broken.jpg"), Metadata(), work)
    assert path is None and "cannot be read as an image" in notes[0]


def test_svg_cover_yields_its_embedded_image_or_is_skipped(tmp_path: Path) -> None:
    png = image_bytes((2400, 2400), "PNG")
    svg = (
        '<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
        'width="2400" height="2400"><image width="2400" height="2400" xlink:href="data:image/png;base64,'
        f'{base64.b64encode(png).decode()}"/></svg>'
    )
    (tmp_path / "cover.svg").write_text(svg)
    path, notes = prepare_cover(manifest(tmp_path, cover="cover.svg"), Metadata(), tmp_path / "covers")
    assert path is not None and path.read_bytes() == png and "SVG" in notes[0]
    (tmp_path / "drawn.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"><circle r="5"/></svg>')
    path, notes = prepare_cover(manifest(tmp_path, cover="drawn.svg"), Metadata(), tmp_path / "covers")
    assert path is None and "SVG without an embedded JPEG or PNG" in notes[0]


def test_document_cover_is_used_when_the_manifest_has_none(tmp_path: Path) -> None:
    jpeg = image_bytes((1000, 1000), "JPEG")
    (tmp_path / "own.png").write_bytes(image_bytes((2400, 2400), "PNG"))
    metadata = Metadata(cover=jpeg, cover_media_type="image/jpeg")
    path, notes = prepare_cover(manifest(tmp_path), metadata, tmp_path / "covers")
    assert path is not None and path.read_bytes() == jpeg
    assert notes == ["the source document's cover is 1000x1000 pixels; ACX asks for at least 2400x2400"]
    path, _ = prepare_cover(manifest(tmp_path, cover="own.png"), metadata, tmp_path / "covers")
    assert path == (tmp_path / "own.png").resolve()  # the manifest's cover wins
    svg_only = Metadata(cover=b"<svg xmlns='http://www.w3.org/2000/svg'/>", cover_media_type="image/svg+xml")
    assert prepare_cover(manifest(tmp_path), svg_only, tmp_path / "covers")[0] is None


# --- the whole flow ------------------------------------------------------------------------------

BOOK = """# Flow Village

## The Road

The road ran west out of the village. Carts used it twice a week.

Nobody walked it after dark. The lamps were few and far apart.

## Empty

<!-- nothing to read -->

## The River

The river was wide and brown. It smelled of rain and mud.

Fish jumped at dusk. The children counted them from the bridge.

A boat came by at noon. It carried bread and letters.

The ferryman waved. His dog barked at the gulls.

Later the water turned grey. The wind rose.

At night the river was loud. Nobody slept well.

## The Hill

The hill was green. Sheep stood on it.
"""


@pytest.mark.usefixtures("prefect_harness")
def test_render_has_credits_titles_parts_sample_and_cover(
    workdirs: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.render import render_book

    folder = workdirs["book"]
    (folder / "book.md").write_text(BOOK)
    manifest_path = write_manifest(folder, "title: Flow Village\nauthor: Ann Writer\nnarrator: Ben Reader\n"
                                           "engine: fake\nvoice: anyone\nseed: 3\nsource: book.md\n")
    cover = image_bytes((800, 800), "JPEG")
    real_read = tasks.source.read_document

    def read_with_cover(path: Path, **kwargs: Any) -> Document:  # as the EPUB and DOCX readers give covers
        document = real_read(path, **kwargs)
        return Document(document.chapters, document.warnings, document.skipped,
                        Metadata(cover=cover, cover_media_type="image/jpeg"))

    monkeypatch.setattr(tasks.source, "read_document", read_with_cover)
    monkeypatch.setattr(book, "SAMPLE_MAX_SECONDS", 6.0)
    with fake_engine(max_chars=60):
        the_manifest = load_manifest(manifest_path)
        whole = plan.make_plan(the_manifest, engine_name=None, cache_dir=workdirs["cache"], voices_dir=workdirs["voices"])
        road, river = (ch.estimated_seconds for ch in whole.chapters[1:3])
        assert 1.5 * road < river  # a limit of 0.6 x The River splits it in two and leaves The Road whole
        monkeypatch.setattr(plan, "MAX_PART_SECONDS", 0.6 * river / plan.ESTIMATE_MARGIN)
        report = render_book(str(manifest_path)).to_dict()
        book_plan = plan.make_plan(the_manifest, engine_name=None, cache_dir=workdirs["cache"],
                                   voices_dir=workdirs["voices"])
    out = workdirs["output"] / "book"
    titles = ["Opening Credits", "The Road", "The River (Part 1)", "The River (Part 2)", "The Hill", "End Credits"]
    assert [c["title"] for c in report["chapters"]] == titles
    chapters = read_m4b_chapters(out / "book.m4b")
    assert [t for t, _ in chapters] == titles
    starts = [0.0]
    for c in report["chapters"][:-1]:
        starts.append(starts[-1] + c["duration_s"])
    assert [s for _, s in chapters] == pytest.approx(starts, abs=0.05)
    assert sorted(p.name for p in (out / "mp3").glob("*.mp3")) == [
        "01-opening-credits.mp3", "02-the-road.mp3", "03-the-river-part-1.mp3", "04-the-river-part-2.mp3",
        "05-the-hill.mp3", "06-end-credits.mp3"]
    assert any("Empty" in w for w in report["warnings"]) and any("split into 2 parts" in w for w in report["warnings"])
    assert any("800x800" in w for w in report["warnings"])
    m4b = MP4(out / "book.m4b")
    assert m4b.tags is not None and bytes(m4b.tags["covr"][0]) == cover
    # Credits are assembled like the chapters: the same loudness.
    for row in report["chapters"]:
        assert -23 <= row["rms_dbfs"] <= -18 and row["peak_dbfs"] <= -3.0, row
        assert row["words"] > 0 and row["words_per_minute"] == pytest.approx(
            row["words"] / (row["duration_s"] / 60), abs=0.1)
    assert report["chapters"][1]["words"] == len("The Road. The road ran west out of the village. Carts used it "
                                                 "twice a week. Nobody walked it after dark. The lamps were few "
                                                 "and far apart.".split())
    # The sample: from the start of the first real chapter, cut after a chunk, within the limit.
    sample = report["sample"]
    assert sample["chapter"] == "The Road" and 0 < sample["duration_s"] <= 6.0
    assert "sample.mp3" in report["files"] and json.loads((out / "report.json").read_text())["sample"] == sample
    assert media_duration_s(out / "sample.mp3") == pytest.approx(sample["duration_s"], abs=0.06)
    assert MP3(out / "sample.mp3").info.sample_rate == 44100
    first = book.cached_chapter_audio(book_plan.chapters[1], book_plan.job, book.chapter_tail_ms(the_manifest))
    assert first is not None and first.title == "The Road"
    clip_ends = [e for _, e in first.clip_spans_s]
    assert any(0 < sample["duration_s"] - e <= book.SAMPLE_TAIL_S + 1e-6 for e in clip_ends)


@pytest.mark.usefixtures("prefect_harness")
def test_render_without_credits_or_spoken_titles(workdirs: dict[str, Path]) -> None:
    from flows.render import render_book

    folder = workdirs["book"]
    (folder / "book.md").write_text(BOOK)
    manifest_path = write_manifest(folder, "title: Flow Village\nauthor: Ann Writer\nengine: fake\nvoice: anyone\n"
                                           "credits: false\nspeak_titles: false\nsource: book.md\n")
    with fake_engine(max_chars=60) as engine:
        report = render_book(str(manifest_path)).to_dict()
    assert [c["title"] for c in report["chapters"]] == ["The Road", "The River", "The Hill"]
    spoken = set(engine.calls)
    assert not any(t.startswith(("The Road.", "Flow Village", "The End")) for t in spoken)
    assert report["sample"]["chapter"] == "The Road"
    assert report["chapters"][0]["duration_s"] >= report["sample"]["duration_s"]
