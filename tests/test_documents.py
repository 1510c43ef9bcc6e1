"""tasks.documents: plain text, Markdown and EPUB sources -> chapters."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tasks.documents import ChapterText, Document, paragraphs_from_text, read_document, read_text_file
from tasks.errors import SourceError, UserError


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _titles(doc: Document) -> list[str]:
    return [c.title for c in doc.chapters]


# --- paragraphs and plain text ------------------------------------------------------------------


def test_paragraphs_from_text() -> None:
    text = "First line\nsecond line.\n\n  \n\nNext   para.\r\n\r\nLast\n"
    assert paragraphs_from_text(text) == ("First line second line.", "Next para.", "Last")
    assert paragraphs_from_text("") == ()
    assert paragraphs_from_text("\n \n\t\n") == ()


def test_txt_chapter_lines(tmp_path: Path) -> None:
    text = (
        "A Tale\nby Someone\n\nA word before the story.\n\n"
        "CHAPTER ONE\n\nIt was\na dark night.\n\nThen rain.\n\n"
        "Chapter IV\n\nFour.\n\n"
        "Chapter 12: The Storm\n\nTwelve.\n\n"
        "Chapter 13\nThe Boy Who Lived\n\nThirteen.\n\n"
        "Chapter 14\n\n\n"
        "Chapter 15\n\nChapter 3 of the report said no.\n"
    )
    doc = read_document(_write(tmp_path / "tale.txt", text), title_hint="A Tale")
    assert _titles(doc) == [
        "A Tale",
        "Chapter One",
        "Chapter IV",
        "Chapter 12: The Storm",
        "Chapter 13: The Boy Who Lived",
        "Chapter 15",
    ]
    assert doc.chapters[0].paragraphs == ("A word before the story.",)  # the title block is not read
    assert [s.what for s in doc.skipped] == ["title block", "heading 'Chapter 14'"]
    assert doc.chapters[1] == ChapterText("Chapter One", ("It was a dark night.", "Then rain."))
    assert doc.chapters[2].paragraphs == ("Four.",)
    assert doc.chapters[-1].paragraphs == ("Chapter 3 of the report said no.",)
    assert len(doc.warnings) == 1 and "Chapter 14" in doc.warnings[0] and "tale.txt" in doc.warnings[0]


def test_txt_without_headings_is_one_chapter(tmp_path: Path) -> None:
    path = _write(tmp_path / "story.txt", "\ufeffOne.\n\nTwo.\n")
    assert read_document(path).chapters == (ChapterText("story", ("One.", "Two.")),)
    assert _titles(read_document(path, title_hint="My Story")) == ["My Story"]


def test_txt_text_before_first_heading_is_opening(tmp_path: Path) -> None:
    doc = read_document(_write(tmp_path / "b.txt", "Preface text.\n\nChapter 1\n\nBody.\n"))
    assert _titles(doc) == ["Opening", "Chapter 1"]


# --- Markdown -----------------------------------------------------------------------------------

_MARKDOWN = """---
title: The Book
author: Someone
---
# The Book

Intro *text* with [a link](http://example.com), ![cover](cover.png) and `code`.

## First

Para **bold**, _it_, ~~gone~~ and snake_case \\*stars\\*.

- item one
* item two
1. item three

> quoted line
> more quote

```python
print("not read")
```

| name | age |
|------|-----|
| Ann  | 30  |

### A Subheading

Deep <em>text</em>.<!-- hidden -->

***

[ref]: http://example.com

## Empty

## Third

Last words.
"""


def test_markdown_title_and_chapters(tmp_path: Path) -> None:
    doc = read_document(_write(tmp_path / "book.md", _MARKDOWN))
    assert _titles(doc) == ["The Book", "First", "Third"]
    assert doc.chapters[0].paragraphs == ("Intro text with a link, and code.",)
    assert doc.chapters[1].paragraphs == (
        "Para bold, it, gone and snake_case *stars*.",
        "item one",
        "item two",
        "item three",
        "quoted line more quote",
        "A Subheading",
        "Deep text.",
    )
    assert doc.chapters[2].paragraphs == ("Last words.",)
    assert doc.metadata.title == "The Book" and doc.metadata.authors == ("Someone",)
    table_warning, empty_warning = doc.warnings  # the table is not read, with a warning
    assert "table (2 rows)" in table_warning and "'First'" in table_warning
    assert "'Empty'" in empty_warning and "book.md" in empty_warning
    spoken = " ".join(p for c in doc.chapters for p in c.paragraphs)
    for markup in ("#", "**", "`", "](", "http", "<", ">", "---", "not read", "hidden", "title:"):
        assert markup not in spoken


def test_markdown_top_level_is_chapter_level(tmp_path: Path) -> None:
    text = "Before.\n\n# One\n\nText one.\n\n## Section\n\nMore.\n\n# Two\n\n# Three\n\nText three.\n"
    doc = read_document(_write(tmp_path / "x.markdown", text), title_hint="Hint")
    assert _titles(doc) == ["Hint", "One", "Three"]  # "Two" is empty; "Three" keeps its own text
    assert doc.chapters[1].paragraphs == ("Text one.", "Section", "More.")
    assert doc.chapters[2].paragraphs == ("Text three.",)
    assert "'Two'" in doc.warnings[0]


def test_markdown_setext_and_no_headings(tmp_path: Path) -> None:
    doc = read_document(_write(tmp_path / "s.md", "One\n===\n\nText.\n\nTwo\n===\n\nMore.\n"))
    assert _titles(doc) == ["One", "Two"]
    doc = read_document(_write(tmp_path / "plain.md", "Just *words*.\n"))
    assert doc.chapters == (ChapterText("plain", ("Just words.",)),)


def test_markdown_keeps_prompts(tmp_path: Path) -> None:
    doc = read_document(_write(tmp_path / "p.md", "[I am really sad,] I lost it.\n"))
    assert doc.chapters[0].paragraphs == ("[I am really sad,] I lost it.",)


# --- EPUB ---------------------------------------------------------------------------------------


def _make_epub(path: Path, chapters: list[tuple[str, str]], *, extra_untitled: str | None = None) -> Path:
    from ebooklib import epub

    book = epub.EpubBook()
    book.set_identifier("test-book")
    book.set_title("Test Book")
    book.set_language("en")
    items = []
    for i, (title, body) in enumerate(chapters, start=1):
        item = epub.EpubHtml(title=title, file_name=f"text/ch{i}.xhtml", lang="en")
        item.content = (
            f"<html><head><title>{title}</title><style>p {{}}</style></head><body>{body}</body></html>"
        )
        book.add_item(item)
        items.append(item)
    spine: list[object] = ["nav", *items]
    if extra_untitled is not None:
        extra = epub.EpubHtml(title="extra", file_name="text/extra.xhtml", lang="en")
        extra.content = f"<html><body>{extra_untitled}</body></html>"
        book.add_item(extra)
        spine.insert(2, extra)  # after chapter 1, not in the toc
    book.toc = [
        epub.Link(f"text/ch{i}.xhtml", title, f"ch{i}") for i, (title, _) in enumerate(chapters, start=1)
    ]
    book.add_item(epub.EpubNcx())
    book.add_item(epub.EpubNav())
    book.spine = spine
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        epub.write_epub(str(path), book)
    return path


def test_epub_chapters_from_nav(tmp_path: Path) -> None:
    path = _make_epub(
        tmp_path / "book.epub",
        [
            (
                "Chapter One",
                "<h1>Chapter One</h1><p>It was <b>a dark</b> night.</p><script>var x;</script><p>Rain<br/>fell.</p>",
            ),
            (
                "Chapter Two",
                "<div>Loose div text<p>Inner para.</p></div><ul><li>Item one</li><li>Item two</li></ul>",
            ),
            ("Chapter Three", "<blockquote><p>Quoted.</p></blockquote><p>End &amp; done.</p>"),
        ],
        extra_untitled="<p>Untitled interlude.</p>",
    )
    doc = read_document(path)
    assert _titles(doc) == ["Chapter One", "Chapter Two", "Chapter Three"]
    assert doc.chapters[0].paragraphs == (  # the heading is the title, not text
        "It was a dark night.",
        "Rain fell.",
        "Untitled interlude.",
    )
    assert doc.chapters[1].paragraphs == ("Loose div text", "Inner para.", "Item one", "Item two")
    assert doc.chapters[2].paragraphs == ("Quoted.", "End & done.")
    assert doc.warnings == ()


def test_epub_toc_fragments_split_one_file(tmp_path: Path) -> None:
    from ebooklib import epub

    book = epub.EpubBook()
    book.set_identifier("frag")
    book.set_title("Frag")
    book.set_language("en")
    cover = epub.EpubHtml(title="Cover", file_name="cover.xhtml")
    cover.content = "<html><body><p>Title page.</p></body></html>"
    body = epub.EpubHtml(title="Body", file_name="body.xhtml")
    body.content = (
        '<html><body><h2 id="c1">One</h2><p>First <a epub:type="noteref" href="#n1">1</a>text.</p>'
        '<section><h2 id="c2">Two</h2><p>Second.</p></section></body></html>'
    )
    for item in (cover, body):
        book.add_item(item)
    book.toc = [
        (
            epub.Section("Part 1", href="body.xhtml#c1"),
            [epub.Link("body.xhtml#c1", "One", "c1"), epub.Link("body.xhtml#c2", "Two", "c2")],
        )
    ]
    book.add_item(epub.EpubNcx())
    book.add_item(epub.EpubNav())
    book.spine = ["nav", cover, body]
    path = tmp_path / "frag.epub"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        epub.write_epub(str(path), book)
    doc = read_document(path, title_hint="Frag")
    assert [(c.title, c.paragraphs) for c in doc.chapters] == [
        ("Frag", ("Title page.",)),  # before the first toc entry
        ("Part 1: One", ("First text.",)),  # the footnote reference is not read
        ("Part 1: Two", ("Second.",)),  # "Part 1" holds both chapters
    ]


def test_epub_empty_chapter_dropped_titles_aligned(tmp_path: Path) -> None:
    path = _make_epub(
        tmp_path / "gaps.epub",
        [("One", "<p>First.</p>"), ("Two", "<p>  </p>"), ("Three", "<p>Third.</p>")],
    )
    doc = read_document(path)
    assert [(c.title, c.paragraphs) for c in doc.chapters] == [("One", ("First.",)), ("Three", ("Third.",))]
    assert "'Two'" in doc.warnings[0] and "gaps.epub" in doc.warnings[0]


def test_epub_corrupt(tmp_path: Path) -> None:
    good = _make_epub(tmp_path / "good.epub", [("One", "<p>First.</p>")]).read_bytes()
    bad = tmp_path / "bad.epub"
    bad.write_bytes(good[: len(good) // 2])
    with pytest.raises(SourceError, match="bad.epub"):
        read_document(bad)
    notzip = tmp_path / "notzip.epub"
    notzip.write_text("hello", encoding="utf-8")
    with pytest.raises(SourceError, match="notzip.epub.*not a zip"):
        read_document(notzip)


# --- errors -------------------------------------------------------------------------------------


def test_undeclared_latin1_is_detected_and_warned(tmp_path: Path) -> None:
    path = tmp_path / "latin.txt"
    path.write_bytes("Caf\u00e9 ok.\nna\u00efve".encode("latin-1"))
    doc = read_document(path)
    assert doc.chapters[0].paragraphs == ("Caf\u00e9 ok. na\u00efve",)
    assert doc.encoding == "windows-1252 (detected)"
    assert any("latin.txt" in w and "windows-1252" in w and "UTF-8" in w for w in doc.warnings)


def test_text_in_no_encoding_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "noise.txt"
    path.write_bytes(bytes(range(0x80, 0x100)) * 4 + b"\xef\xbb\xbf")  # no single-byte code page reads this as text
    with pytest.raises(SourceError) as info:
        read_document(path)
    assert "noise.txt" in str(info.value) and "UTF-8" in str(info.value)
    assert isinstance(info.value, UserError)


def test_binary_and_utf16(tmp_path: Path) -> None:
    binary = tmp_path / "image.md"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    with pytest.raises(SourceError, match="image.md.*binary"):
        read_document(binary)
    utf16 = tmp_path / "wide.txt"
    utf16.write_bytes("Hello".encode("utf-16"))
    with pytest.raises(SourceError, match="wide.txt.*UTF-16"):
        read_document(utf16)


def test_missing_file_and_bad_suffix(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="nowhere.txt.*not found") as info:
        read_document(tmp_path / "nowhere.txt")
    assert info.value.fix
    with pytest.raises(SourceError, match="nowhere.epub.*not found"):
        read_document(tmp_path / "nowhere.epub")
    with pytest.raises(SourceError, match=r"book.pdf.*\.txt, \.md, \.markdown, \.epub"):
        read_document(tmp_path / "book.pdf")
    with pytest.raises(SourceError, match="not a file"):
        read_text_file(tmp_path)


def test_no_text(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="empty.txt.*has no text to read"):
        read_document(_write(tmp_path / "empty.txt", "\n\n   \n"))
    with pytest.raises(SourceError, match="code.md.*has no text to read"):
        read_document(_write(tmp_path / "code.md", "# Title\n\n```\ncode only\n```\n"))


def test_size_cap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tasks.documents.files as files

    monkeypatch.setattr(files, "MAX_TEXT_BYTES", 10)
    with pytest.raises(SourceError, match="big.txt.*too large"):
        read_document(_write(tmp_path / "big.txt", "x" * 11))


# --- any input ends in a Document or a SourceError ----------------------------------------------


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@pytest.fixture(scope="module")
def template_epub(fuzz_dir: Path) -> bytes:
    return _make_epub(
        fuzz_dir / "template.epub", [("One", "<p>First.</p>"), ("Two", "<p>Second.</p>")]
    ).read_bytes()


def _read_or_source_error(path: Path) -> None:
    try:
        doc = read_document(path)
    except SourceError as exc:
        assert path.name in str(exc)
    else:
        assert doc.chapters and all(
            c.paragraphs and all(p.strip() for p in c.paragraphs) for c in doc.chapters
        )


@settings(deadline=None, max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=2000), suffix=st.sampled_from([".txt", ".md", ".markdown", ".epub"]))
def test_any_bytes_give_document_or_source_error(fuzz_dir: Path, data: bytes, suffix: str) -> None:
    path = fuzz_dir / f"fuzz{suffix}"
    path.write_bytes(data)
    _read_or_source_error(path)


@settings(deadline=None, max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.text(max_size=500), suffix=st.sampled_from([".txt", ".md"]))
def test_any_text_gives_document_or_source_error(fuzz_dir: Path, text: str, suffix: str) -> None:
    path = fuzz_dir / f"fuzztext{suffix}"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    _read_or_source_error(path)


@settings(deadline=None, max_examples=100, suppress_health_check=[HealthCheck.too_slow])
@given(edits=st.lists(st.tuples(st.integers(0, 2**20), st.integers(0, 255)), min_size=1, max_size=8))
def test_damaged_epub_gives_document_or_source_error(
    fuzz_dir: Path, template_epub: bytes, edits: list[tuple[int, int]]
) -> None:
    data = bytearray(template_epub)
    for offset, value in edits:
        data[offset % len(data)] = value
    path = fuzz_dir / "damaged.epub"
    path.write_bytes(bytes(data))
    _read_or_source_error(path)
