"""HTML / XHTML reading: a saved web page, a Gutenberg-style HTML book, an EPUB-style chapter."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tasks.documents import ReadOptions, read_document
from tasks.errors import SourceError

WEB_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Keeping Bees | The Garden Log</title>
<meta name="author" content="Ann Apiary"><meta name="description" content="A short guide.">
<style>p { color: red }</style><script>var tracking = "do not read";</script></head>
<body>
<header><a href="/">Home</a><nav><a href="/about">About us</a></nav></header>
<aside>Subscribe to our newsletter today!</aside>
<article>
<header><h1>Keeping Bees</h1></header>
<p>Bees are small.<sup><a href="#fn1" id="r1">1</a></sup> They buzz&nbsp;a lot.</p>
<h2>Choosing a Hive</h2>
<p>Pick a box of wood.</p>
<h3>Wood Types</h3>
<p>Cedar lasts.</p>
<h2>FEEDING IN SPRING</h2>
<p>Sugar water helps.<img src="jar.png" alt="A jar of syrup"></p>
<section role="doc-endnotes"><ol><li id="fn1"><p>Most of them, anyway. <a href="#r1" role="doc-backlink">↩</a></p>
</li></ol></section>
</article>
<footer>Copyright 2024 The Garden Log. <a href="/privacy">Privacy</a></footer>
</body></html>
"""


def _write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def test_web_page_chapters_and_chrome(tmp_path: Path) -> None:
    doc = read_document(_write(tmp_path / "bees.html", WEB_PAGE))
    assert [(c.title, c.paragraphs) for c in doc.chapters] == [
        ("Keeping Bees", ("Bees are small. They buzz a lot.",)),
        ("Choosing a Hive", ("Pick a box of wood.", "Wood Types", "Cedar lasts.")),  # h3: a spoken sub-heading
        ("Feeding in Spring", ("Sugar water helps.",)),  # shouting heading title-cased; images silent
    ]
    text = " ".join(p for c in doc.chapters for p in c.paragraphs)
    for chrome in ("Home", "About us", "Subscribe", "Privacy", "tracking", "Most of them", "↩"):
        assert chrome not in text
    assert doc.metadata.title == "Keeping Bees"
    assert doc.metadata.authors == ("Ann Apiary",)
    assert (doc.metadata.language, doc.metadata.description) == ("en", "A short guide.")
    assert {s.reason for s in doc.skipped} >= {"web page navigation, header, footer or sidebar"}


def test_web_page_options(tmp_path: Path) -> None:
    path = _write(tmp_path / "bees.htm", WEB_PAGE)
    doc = read_document(path, options=ReadOptions(notes="end", image_alt=True))
    assert doc.chapters[0].paragraphs[-1] == "Footnote 1: Most of them, anyway."
    assert doc.chapters[2].paragraphs == ("Sugar water helps.", "A jar of syrup")


def test_gutenberg_style_html_book(tmp_path: Path) -> None:
    page = """<html><head><title>The Project Gutenberg eBook of Reed Hollow, by Kit Lark</title></head><body>
<pre>The Project Gutenberg EBook of Reed Hollow, by Kit Lark
*** START OF THIS PROJECT GUTENBERG EBOOK REED HOLLOW ***</pre>
<h1>REED HOLLOW</h1><h2>by Kit Lark</h2>
<h2>CONTENTS</h2>
<p class="toc"><a href="#c1">I. The Mill</a></p><p class="toc"><a href="#c2">II. The Weir</a></p>
<p class="toc"><a href="#c3">III. The Ford</a></p>
<h2><a id="c1"></a>I. THE MILL</h2><p>The mill wheel turned.</p>
<h2><a id="c2"></a>II. THE WEIR</h2><p>Water fell over the weir.</p>
<pre>*** END OF THIS PROJECT GUTENBERG EBOOK REED HOLLOW ***
Section 1. General Terms of Use, see http://www.gutenberg.org</pre>
</body></html>"""
    doc = read_document(_write(tmp_path / "reed.html", page))
    assert [(c.title, c.paragraphs) for c in doc.chapters] == [
        ("I. The Mill", ("The mill wheel turned.",)),
        ("II. The Weir", ("Water fell over the weir.",)),
    ]
    assert (doc.metadata.title, doc.metadata.authors) == ("Reed Hollow", ("Kit Lark",))
    whats = " ".join(s.what for s in doc.skipped)
    assert "Project Gutenberg header" in whats and "Project Gutenberg licence" in whats
    assert any(s.reason.endswith("add 'toc' to reading.keep to read it") for s in doc.skipped)
    assert doc.warnings == ()


def test_xhtml_chapter_with_epub_semantics(tmp_path: Path) -> None:
    page = """<?xml version="1.0" encoding="utf-8"?>
<html xmlns="http://www.w3.org/1999/xhtml" xmlns:epub="http://www.idpf.org/2007/ops"><head><title>IV</title></head>
<body epub:type="bodymatter"><section epub:type="chapter"><hgroup><h2 epub:type="z3998:roman">IV</h2>
<p epub:type="title">The Well<a epub:type="noteref" href="endnotes.xhtml#note-3">3</a></p></hgroup>
<p>They drew water.<a epub:type="noteref" href="endnotes.xhtml#note-4">4</a></p>
<p><span>Down and down,</span><br/><span>the bucket went.</span></p></section></body></html>"""
    doc = read_document(_write(tmp_path / "chapter-4.xhtml", page))
    assert [(c.title, c.paragraphs) for c in doc.chapters] == [
        ("IV: The Well", ("They drew water.", "Down and down, the bucket went."))
    ]


def test_page_without_headings_and_legacy_encoding(tmp_path: Path) -> None:
    page = "<html><head><title>A Note</title></head><body><p>Caf\u00e9 at noon \u2014 closed.</p></body></html>"
    doc = read_document(_write(tmp_path / "note.html", page, "cp1252"))
    assert [(c.title, c.paragraphs) for c in doc.chapters] == [("A Note", ("Caf\u00e9 at noon \u2014 closed.",))]
    doc = read_document(_write(tmp_path / "note2.html", page), title_hint="Given")
    assert doc.chapters[0].title == "Given"


def test_empty_and_binary_html(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="empty.html.*no text"):
        read_document(_write(tmp_path / "empty.html", "<html><body><script>x()</script></body></html>"))
    binary = tmp_path / "bin.html"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00")
    with pytest.raises(SourceError, match="bin.html.*binary"):
        read_document(binary)


@settings(deadline=None, max_examples=100, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.one_of(st.binary(max_size=1500), st.text(max_size=800).map(lambda t: t.encode("utf-8", "replace"))))
def test_any_bytes_give_document_or_source_error(tmp_path_factory: pytest.TempPathFactory, data: bytes) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "page.html"
    path.write_bytes(b"<html><body><h1>T</h1>" + data)
    try:
        doc = read_document(path)
    except SourceError as exc:
        assert "page.html" in str(exc)
    else:
        assert doc.chapters and all(c.paragraphs and all(p.strip() for p in c.paragraphs) for c in doc.chapters)


def test_title_page_by_line_is_not_a_chapter(tmp_path: Path) -> None:
    page = "<html><body><h1>Moss</h1><p>by Rue Fern</p><h2>One</h2><p>Green and soft.</p></body></html>"
    doc = read_document(_write(tmp_path / "moss.html", page))
    assert [(c.title, c.paragraphs) for c in doc.chapters] == [("One", ("Green and soft.",))]
    assert [(s.what, s.words) for s in doc.skipped] == [("moss.html (title page)", 4)]
