"""The readers' word ledger: every word of a source is either read (a chapter's title or text) or
listed as skipped with a reason. Property tests build small books of every format from random words,
with the shapes real books have (title pages, contents lists, chapter headings of several forms,
footnotes, bracketed text, Project Gutenberg markup, page numbers, images, tables, code, comments),
and check that no word goes missing between the file and the Document. The examples are drawn
the same way on every run (the fixed profile); shrinking is off because a failing book of random words
shrinks for minutes: the failure message prints the book and its ledger as drawn.
"""

from __future__ import annotations

import tempfile
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from tasks.documents import ReadOptions, read_document
from tasks.documents.ledger import ledger, ledger_lines, source_words, totals, words
from tasks.documents.model import Document

# Words that shape a book are drawn on purpose below, never at random.
_KEYWORDS = frozenset(
    "chapter chapters part book volume stave letter canto preface prologue epilogue introduction foreword afterword "
    "prelude interlude postscript contents index illustration illustrations picture image frontispiece footnote "
    "footnotes note notes sidenote transcriber produced cover edition copyright published printed page pg list "
    "by the of and table figures plates maps start end project gutenberg ebook title".split()
)
WORD = st.from_regex(r"[a-z]{3,9}", fullmatch=True).filter(
    lambda w: w not in _KEYWORDS and not set(w) <= set("ivxlcdm")
)
PHRASE = st.lists(WORD, min_size=1, max_size=6)
SENTENCE = st.lists(WORD, min_size=3, max_size=14)
ROMAN = ["I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX", "X", "XI", "XII"]


@dataclass
class Para:
    """A paragraph: plain words with, between them, optional pieces of markup."""

    words: list[str]
    bracket: list[str] = field(default_factory=list)  # "[an editor's insertion]": text
    note: list[str] = field(default_factory=list)  # a footnote's words (referred to at the paragraph's end)
    image: list[str] = field(default_factory=list)  # a figure's caption
    page: int = 0  # a page number of the printed book, mid-paragraph
    sidenote: list[str] = field(default_factory=list)  # "[Sidenote: ...]" opening the paragraph
    transcriber: list[str] = field(default_factory=list)  # "[Transcriber's Note: ...]" closing it
    pg_note: bool = False  # plain text: the note as a "[Footnote 1: ...]" block, not a " [1] ..." line

    def extras(self) -> tuple[str, str]:
        """The PG bracket pieces that open and close the paragraph's words."""
        side = f"[Sidenote: {' '.join(self.sidenote)}] " if self.sidenote else ""
        note = f" [Transcriber's Note: {' '.join(self.transcriber)}]" if self.transcriber else ""
        return side, note

    def labels(self) -> list[str]:
        """Words of the markup labels themselves."""
        return words(("Sidenote " if self.sidenote else "") + ("Transcriber's Note" if self.transcriber else ""))


@dataclass
class Chapter:
    title: list[str]
    paras: list[Para]
    form: int  # which heading form a format uses
    table: list[list[str]] = field(default_factory=list)  # rows of one-word cells
    code: list[str] = field(default_factory=list)  # a code block (Markdown) / comment (HTML-ish)


@dataclass
class Book:
    title: list[str]
    author: list[str]
    contents: bool
    preface: list[Para]
    chapters: list[Chapter]


@st.composite
def paras(draw: st.DrawFn) -> Para:
    kind = draw(st.sampled_from(["plain", "plain", "bracket", "note", "image", "page", "sidenote", "transcriber"]))
    para = Para(draw(SENTENCE), pg_note=draw(st.booleans()))
    if kind == "sidenote":
        para.sidenote = draw(PHRASE)
    elif kind == "transcriber":
        para.transcriber = draw(PHRASE)
    if kind == "bracket":
        para.bracket = draw(PHRASE)
    elif kind == "note":
        para.note = draw(SENTENCE)
    elif kind == "image":
        para.image = draw(PHRASE)
    elif kind == "page":
        para.page = draw(st.integers(1, 400))
    return para


@st.composite
def books(draw: st.DrawFn) -> Book:
    chapters = [
        Chapter(
            title=draw(PHRASE),
            paras=draw(st.lists(paras(), min_size=1, max_size=4)),
            form=draw(st.integers(0, 2)),
            table=draw(st.lists(st.lists(WORD, min_size=2, max_size=2), max_size=3)),
            code=draw(st.lists(WORD, max_size=4)),
        )
        for _ in range(draw(st.integers(1, 4)))
    ]
    return Book(draw(PHRASE), draw(st.lists(WORD, min_size=1, max_size=3)), draw(st.booleans()),
                draw(st.lists(paras(), max_size=2)), chapters)


def caps(ws: list[str]) -> str:
    return " ".join(ws).upper()


def title_case(ws: list[str]) -> str:
    return " ".join(w.capitalize() for w in ws)


def _expected(book: Book, *, markers: bool, code: bool = False) -> Counter[str]:
    """Every word the book's text holds, keywords and numbers written in it included (`markers`:
    the format shows footnote numbers as text)."""
    found: Counter[str] = Counter()
    found.update(words(" ".join(book.title + book.author)))
    for i, chapter in enumerate(book.chapters):
        found.update(words(" ".join(chapter.title)))
        for para in [*chapter.paras, *(book.preface if i == 0 else [])]:
            found.update(para.words + para.bracket + para.note + para.image + para.sidenote + para.transcriber
                         + para.labels())
        for row in chapter.table:
            found.update(row)
        if code:
            found.update(chapter.code)
    if markers:
        found.update(str(n + 1) for n in range(sum(bool(p.note) for c in book.chapters for p in c.paras)))
    return found


def _footnote_labels(book: Book) -> Counter[str]:
    """Plain text: "Footnote" in each "[Footnote 1: ...]" block, and its number written twice."""
    pg = [p for c in book.chapters for p in c.paras if p.note]
    return Counter({"footnote": sum(p.pg_note for p in pg)})


def check(doc: Document, expected: Counter[str]) -> None:
    """The invariant, and the ledger's arithmetic."""
    accounted = source_words(doc)
    missing = {w: n - accounted[w] for w, n in expected.items() if accounted[w] < n}
    assert not missing, f"words neither read nor in the ledger: {missing}\n" + "\n".join(ledger_lines(doc))
    kept, skipped = totals(doc)
    assert kept == sum(len(c.title.split()) + sum(len(p.split()) for p in c.paragraphs) for c in doc.chapters)
    assert sum(skipped.values()) == sum(s.words for s in doc.skipped)
    assert all(s.kind and s.words == len(s.text.split()) for s in doc.skipped)
    assert [r.title for r in ledger(doc)][: len(doc.chapters)] == [c.title for c in doc.chapters]


def _read(name: str, data: str | bytes, options: ReadOptions) -> Document:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / name
        path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
        return read_document(path, options=options)


OPTIONS = st.builds(ReadOptions, notes=st.sampled_from(["skip", "end"]), image_alt=st.booleans())


# --- plain text (Project Gutenberg shapes) ------------------------------------------------------


def plain_text(book: Book) -> str:
    notes = 0
    out = [caps(book.title), f"by {title_case(book.author)}"]
    if book.contents:
        out.append("CONTENTS")
        out.append("\n".join(f"  CHAPTER {ROMAN[i]}.    {caps(c.title)}" for i, c in enumerate(book.chapters)))
    if book.preface:
        out.append("PREFACE")
    for para in book.preface:
        out.append(_plain_para(para, 0)[0])
    for i, chapter in enumerate(book.chapters):
        heading = [f"CHAPTER {ROMAN[i]}\n\n{caps(chapter.title)}", f"Chapter {i + 1}: {title_case(chapter.title)}",
                   f"{ROMAN[i]}. {caps(chapter.title)}"][chapter.form]
        out.append(heading)
        for para in chapter.paras:
            text, notes = _plain_para(para, notes)
            out.append(text)
        if chapter.table:
            out.append("\n".join(f" {a:<12}| {b}" for a, b in chapter.table) + "\n -------------+------")
    return "\n\n".join(out) + "\n"


def _plain_para(para: Para, notes: int) -> tuple[str, int]:
    ws = list(para.words)
    half = len(ws) // 2
    middle = []
    if para.bracket:
        middle.append(f"[{' '.join(para.bracket)}]")
    if para.page:
        middle.append(f"[Pg {para.page}]")
    side, tail = para.extras()
    text = side + " ".join(ws[:half] + middle + ws[half:]) + "." + tail
    if para.image:
        text += f"\n\n [Illustration: {' '.join(para.image[:2])}\n      {' '.join(para.image[2:])}]"
    if para.note:
        notes += 1
        definition = f"[Footnote {notes}: {' '.join(para.note)}.]" if para.pg_note else f" [{notes}] {' '.join(para.note)}."
        text = text + f"[{notes}]\n\n{definition}"
    return text, notes


@settings(max_examples=40, deadline=None, phases=(Phase.explicit, Phase.reuse, Phase.generate))
@given(books(), OPTIONS)
def test_plain_text_accounts_for_every_word(book: Book, options: ReadOptions) -> None:
    doc = _read("book.txt", plain_text(book), options)
    check(doc, _expected(book, markers=True) + _footnote_labels(book))


# --- Markdown ------------------------------------------------------------------------------------


def markdown_text(book: Book) -> str:
    notes: list[str] = []
    out = [f"---\ntitle: {' '.join(book.title)}\nauthor: {' '.join(book.author)}\n---", f"# {title_case(book.title)}"]
    out.append(f"by {' '.join(book.author)}")
    for i, chapter in enumerate(book.chapters):
        out.append(f"## {title_case(chapter.title)}" + (f" {{#c{i}}}" if chapter.form == 1 else ""))
        for para in chapter.paras:
            ws = list(para.words)
            if para.bracket:
                ws.insert(len(ws) // 2, f"[{' '.join(para.bracket)}](#somewhere)")  # link text is read
            if para.page:
                ws.insert(1, f"<!-- {para.page} -->")
            side, tail = para.extras()
            text = side + " ".join(ws) + tail
            if para.note:
                notes.append(" ".join(para.note))
                text += f"[^{len(notes)}]"
            if para.image:
                text += f"\n\n![{' '.join(para.image)}](img.png)"
            out.append(text)
        if chapter.table:
            out.append("| a | b |\n|---|---|\n" + "\n".join(f"| {a} | {b} |" for a, b in chapter.table))
        if chapter.code:
            out.append("```\n" + " ".join(chapter.code) + "\n```")
    out.extend(f"[^{n + 1}]: {note}" for n, note in enumerate(notes))
    return "\n\n".join(out) + "\n"


@settings(max_examples=40, deadline=None, phases=(Phase.explicit, Phase.reuse, Phase.generate))
@given(books(), OPTIONS)
def test_markdown_accounts_for_every_word(book: Book, options: ReadOptions) -> None:
    book.preface = []
    doc = _read("book.md", markdown_text(book), options)
    expected = _expected(book, markers=False, code=True)
    expected.update(["a", "b"] * sum(bool(c.table) for c in book.chapters))  # the tables' header cells
    check(doc, expected)


# --- HTML (Project Gutenberg's HTML editions) and EPUB ------------------------------------------------


def html_body(book: Book, *, toc: bool) -> str:
    notes: list[str] = []
    out = [f"<h1>{caps(book.title)}</h1>", f"<p>by {title_case(book.author)}</p>"]
    if toc and book.contents:
        rows = "".join(f'<tr><td><a href="#c{i}">{ROMAN[i]}</a></td><td>{caps(c.title)}</td><td>{i * 9 + 1}</td></tr>'
                       for i, c in enumerate(book.chapters))
        out.append(f"<h2>CONTENTS</h2><table>{rows}</table>")
    for i, chapter in enumerate(book.chapters):
        out.append(f'<h2 id="c{i}">' + [f"CHAPTER {ROMAN[i]}<br/><br/>{caps(chapter.title)}",
                                        f"Chapter {i + 1}: {title_case(chapter.title)}",
                                        f"{ROMAN[i]}. {caps(chapter.title)}"][chapter.form] + "</h2>")
        out.extend(_html_para(para, notes) for para in chapter.paras)
        if chapter.table:
            out.append("<table>" + "".join(f"<tr><td>{a}</td><td>{b}</td></tr>" for a, b in chapter.table) + "</table>")
    if notes:
        out.append("<h2>FOOTNOTES</h2>")
        out.extend(f'<div class="footnote"><p><a id="fn{n + 1}"></a><a href="#r{n + 1}">[{n + 1}]</a> {note}</p></div>'
                   for n, note in enumerate(notes))
    return "\n".join(out)


def _html_para(para: Para, notes: list[str]) -> str:
    ws = list(para.words)
    if para.bracket:
        ws.insert(len(ws) // 2, f"[{' '.join(para.bracket)}]")
    if para.page:
        ws.insert(1, f'<span class="pagenum"><a id="Page_{para.page}">[Pg {para.page}]</a></span>')
    side, tail = para.extras()
    text = side + " ".join(ws) + tail
    if para.note:
        notes.append(" ".join(para.note))
        text += f'<a id="r{len(notes)}"></a><a href="#fn{len(notes)}" class="fnanchor">[{len(notes)}]</a>'
    html = f"<p>{text}</p>"
    if para.image:
        caption = " ".join(para.image)
        html += f'<div class="figcenter"><img src="i.jpg" alt="{caption}"/><span class="caption">{caption}</span></div>'
    return html


@settings(max_examples=40, deadline=None, phases=(Phase.explicit, Phase.reuse, Phase.generate))
@given(books(), OPTIONS, st.sampled_from(["utf-8", "iso-8859-1"]))
def test_html_accounts_for_every_word(book: Book, options: ReadOptions, charset: str) -> None:
    book.preface = []
    page = (f'<html><head><meta http-equiv="Content-Type" content="text/html;charset={charset}"/>'
            f"<title>The Project Gutenberg eBook of {title_case(book.title)}, by {title_case(book.author)}</title>"
            f"</head><body>{html_body(book, toc=True)}</body></html>")
    doc = _read("book.html", page.encode(charset), options)
    check(doc, _expected(book, markers=True))


def epub_bytes(book: Book) -> bytes:
    import io

    files: dict[str, str] = {}
    items, spine, nav = [], [], []
    parts = [("title", f"<h1>{caps(book.title)}</h1><p>by {title_case(book.author)}</p>")]
    notes: list[str] = []
    for i, chapter in enumerate(book.chapters):
        body = f"<h2>{['Chapter ' + ROMAN[i], f'{ROMAN[i]}. {caps(chapter.title)}', title_case(chapter.title)][chapter.form]}</h2>"
        body += "".join(_html_para(p, notes) for p in chapter.paras)
        parts.append((f"c{i}", body))
        nav.append(f'<li><a href="c{i}.xhtml">{title_case(chapter.title)}</a></li>')
    if notes:
        parts.append(("notes", '<section epub:type="endnotes"><ol>' + "".join(
            f'<li id="fn{n + 1}"><p>{note}</p></li>' for n, note in enumerate(notes)) + "</ol></section>"))
    for name, body in parts:
        files[f"OEBPS/{name}.xhtml"] = (
            '<?xml version="1.0" encoding="utf-8"?>\n<html xmlns="http://www.w3.org/1999/xhtml" '
            f'xmlns:epub="http://www.idpf.org/2007/ops"><head><title>{name}</title></head><body>{body}</body></html>'
        )
        items.append(f'<item id="{name}" href="{name}.xhtml" media-type="application/xhtml+xml"/>')
        spine.append(f'<itemref idref="{name}"/>')
    files["OEBPS/nav.xhtml"] = (
        '<?xml version="1.0" encoding="utf-8"?>\n<html xmlns="http://www.w3.org/1999/xhtml" '
        'xmlns:epub="http://www.idpf.org/2007/ops"><head><title>toc</title></head><body>'
        f'<nav epub:type="toc"><ol>{"".join(nav)}</ol></nav></body></html>'
    )
    files["OEBPS/content.opf"] = (
        '<?xml version="1.0" encoding="utf-8"?><package xmlns="http://www.idpf.org/2007/opf" version="3.0" '
        'unique-identifier="id"><metadata xmlns:dc="http://purl.org/dc/elements/1.1/">'
        f"<dc:identifier id=\"id\">x</dc:identifier><dc:title>{title_case(book.title)}</dc:title>"
        "<dc:language>en</dc:language></metadata><manifest>"
        '<item id="nav" href="nav.xhtml" media-type="application/xhtml+xml" properties="nav"/>'
        f'{"".join(items)}</manifest><spine>{"".join(spine)}</spine></package>'
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("mimetype", "application/epub+zip")
        z.writestr("META-INF/container.xml", '<?xml version="1.0"?><container version="1.0" '
                   'xmlns="urn:oasis:names:tc:opendocument:xmlns:container"><rootfiles><rootfile '
                   'full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/></rootfiles></container>')
        for name, data in files.items():
            z.writestr(name, data)
    return buffer.getvalue()


@settings(max_examples=25, deadline=None, phases=(Phase.explicit, Phase.reuse, Phase.generate))
@given(books(), OPTIONS)
def test_epub_accounts_for_every_word(book: Book, options: ReadOptions) -> None:
    book.preface = []
    for chapter in book.chapters:
        chapter.table = []
    doc = _read("book.epub", epub_bytes(book), options)
    expected = _expected(book, markers=True)
    expected.update(words(" ".join(["chapter"] * sum(c.form == 0 for c in book.chapters))))
    check(doc, expected)


# --- DOCX ----------------------------------------------------------------------------------------


def docx_bytes(book: Book) -> bytes:
    import io

    import docx

    d = docx.Document()
    d.add_heading(title_case(book.title), level=0)
    d.add_paragraph(f"by {title_case(book.author)}")
    for i, chapter in enumerate(book.chapters):
        d.add_heading([f"Chapter {ROMAN[i]}: {title_case(chapter.title)}", title_case(chapter.title),
                       f"{ROMAN[i]}. {title_case(chapter.title)}"][chapter.form], level=1)
        for para in chapter.paras:
            side, tail = para.extras()
            d.add_paragraph(side + " ".join(para.words + para.bracket + para.image + para.note) + tail)
        if chapter.table:
            table = d.add_table(rows=len(chapter.table), cols=2)
            for r, (a, b) in enumerate(chapter.table):
                table.cell(r, 0).text, table.cell(r, 1).text = a, b
    buffer = io.BytesIO()
    d.save(buffer)
    return buffer.getvalue()


@settings(max_examples=20, deadline=None, phases=(Phase.explicit, Phase.reuse, Phase.generate))
@given(books(), OPTIONS)
def test_docx_accounts_for_every_word(book: Book, options: ReadOptions) -> None:
    book.preface = []
    doc = _read("book.docx", docx_bytes(book), options)
    check(doc, _expected(book, markers=False))


# --- examples --------------------------------------------------------------------------------------


def test_ledger_rows_and_reasons(tmp_path: Path) -> None:
    text = (
        "THE SALT ROAD\n\nby Ann Reed\n\nCONTENTS\n\n  CHAPTER I.   THE WELL\n  CHAPTER II.  THE FORD\n\n"
        "CHAPTER I\n\nTHE WELL\n\nWater rose [Pg 7] in the well.[1]\n\n [1] Deep water.\n\n"
        "[Illustration: A well.]\n\nCHAPTER II\n\nTHE FORD\n\nThey crossed the ford.\n"
    )
    path = tmp_path / "salt.txt"
    path.write_text(text, encoding="utf-8")
    doc = read_document(path, title_hint="The Salt Road")
    rows = ledger(doc)
    assert [r.title for r in rows] == ["Chapter I: The Well", "Chapter II: The Ford", "(outside the chapters)"]
    assert rows[0].kept == len("Chapter I: The Well".split()) + len("Water rose in the well.".split())
    assert rows[0].skipped == {"page number": 2, "footnote marker": 1, "footnote": 3, "image": 3}
    assert rows[-1].skipped == {"title page": 6, "contents": 9}
    assert doc.chapters[0].paragraphs == ("Water rose in the well.",)  # no marker glued into the sentence
