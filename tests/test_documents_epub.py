"""EPUB reading: publisher matter, parts, notes, split headings, metadata, covers and hostile files.

Every book here is built in the test from invented text, in the shapes real publishers use
(Standard Ebooks' EPUB 3, an EPUB 2 converted from it, Project Gutenberg's EpubMaker).
"""

from __future__ import annotations

import base64
import zipfile
from pathlib import Path

import pytest

from tasks.documents import ReadOptions, read_document
from tasks.errors import SourceError

# a 1x1 PNG
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
JPEG = b"\xff\xd8\xff\xe0" + b"\x00\x10JFIF" + b"\x00" * 40 + b"\xff\xd9"

CONTAINER = """<?xml version="1.0"?>
<container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container">
<rootfiles><rootfile full-path="{opf}" media-type="application/oebps-package+xml"/></rootfiles></container>"""


def _zip(path: Path, files: dict[str, str | bytes], *, opf: str = "OEBPS/content.opf") -> Path:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(zipfile.ZipInfo("mimetype"), "application/epub+zip")
        if "META-INF/container.xml" not in files:
            z.writestr("META-INF/container.xml", CONTAINER.format(opf=opf))
        for name, data in files.items():
            z.writestr(name, data, compress_type=zipfile.ZIP_DEFLATED)
    return path


def _xhtml(body: str, *, body_type: str = "bodymatter", title: str = "x") -> str:
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<html xmlns="http://www.w3.org/1999/xhtml" '
        'xmlns:epub="http://www.idpf.org/2007/ops" xml:lang="en-GB">'
        f'<head><title>{title}</title></head><body epub:type="{body_type}">{body}</body></html>'
    )


# --- an EPUB 3 in the Standard Ebooks shape --------------------------------------------------

SVG_COVER = (
    '<?xml version="1.0" encoding="utf-8"?><svg xmlns="http://www.w3.org/2000/svg" '
    'xmlns:xlink="http://www.w3.org/1999/xlink" viewBox="0 0 1 1"><title>Cover</title>'
    f'<image width="1" height="1" xlink:href="data:image/png;base64,{base64.b64encode(PNG).decode()}"/></svg>'
)

EPUB3_FILES: dict[str, str] = {
    "titlepage.xhtml": _xhtml(
        '<section epub:type="titlepage"><h1 epub:type="title">The Lantern Keeper</h1>'
        '<p>By <b>Ada Quill</b>.</p><img alt="" src="../images/titlepage.svg"/></section>', body_type="frontmatter"
    ),
    "imprint.xhtml": _xhtml(
        '<section epub:type="imprint"><header><h2 epub:type="title">Imprint</h2>'
        '<img alt="The press logo." src="../images/logo.svg"/></header>'
        '<p>This edition was made by volunteers at <a href="https://press.example.org/">Example Press</a>.</p>'
        "</section>",
        body_type="frontmatter",
    ),
    "dedication.xhtml": _xhtml(
        '<section epub:type="dedication"><p>For<br/><b>Tomas Reed</b>,<br/>who kept the light.</p></section>',
        body_type="frontmatter",
    ),
    "epigraph.xhtml": _xhtml(
        '<section epub:type="epigraph z3998:poem"><h2 epub:type="title">On Lamps</h2>'
        '<p><span>A wick, a flame,</span><br/><span class="i1">a patient hand,</span><br/>'
        "<span>and night gives way.</span></p></section>",
        body_type="frontmatter",
    ),
    "halftitlepage.xhtml": _xhtml(
        '<section epub:type="halftitlepage"><h2 epub:type="fulltitle">The Lantern Keeper</h2></section>',
        body_type="frontmatter",
    ),
    "part-1.xhtml": _xhtml(
        '<section id="part-1" epub:type="part"><hgroup><h2><span epub:type="se:label">Part</span> '
        '<span epub:type="z3998:roman">I</span></h2><p epub:type="title">The Shore</p></hgroup></section>'
    ),
    "chapter-1.xhtml": _xhtml(
        '<section id="chapter-1" epub:type="chapter"><hgroup><h3 epub:type="z3998:roman">I</h3>'
        '<p epub:type="title">The Tide<a href="endnotes.xhtml#note-2" id="noteref-2" epub:type="noteref">2</a>'
        "</p></hgroup>"
        "<p>The water came in slowly over the flat grey stones.</p>"
        '<blockquote epub:type="z3998:song"><p><span>“Roll on, roll in,</span><br/>'
        '<span class="i1">the sea will have its due!”</span></p></blockquote>'
        '<p class="continued">sang the keeper, “and I have had enough.”'
        '<a href="endnotes.xhtml#note-1" id="noteref-1" epub:type="noteref">1</a> Then he slept.</p></section>'
    ),
    "chapter-2.xhtml": _xhtml(
        '<section id="chapter-2" epub:type="chapter"><h3>II: The Fog</h3>'
        "<p>Fog lay on the harbour for three days.</p></section>"
    ),
    "part-2.xhtml": _xhtml(
        '<section id="part-2" epub:type="part"><hgroup><h2><span>Part</span> <span>II</span></h2>'
        '<p epub:type="title">The Tower</p></hgroup></section>'
    ),
    "chapter-3.xhtml": _xhtml(
        '<section id="chapter-3" epub:type="chapter"><hgroup><h3>III</h3><p epub:type="title">The Light</p>'
        "</hgroup><p>At last the lamp was lit, and the ships came home.</p></section>"
    ),
    "endnotes.xhtml": _xhtml(
        '<section epub:type="endnotes"><h2 epub:type="title">Endnotes</h2><ol>'
        '<li id="note-1"><p>The keeper never sang in tune. '
        '<a href="chapter-1.xhtml#noteref-1" epub:type="backlink">↩</a></p></li>'
        '<li id="note-2"><p>The tide in this bay runs twice a day. '
        '<a href="chapter-1.xhtml#noteref-2" epub:type="backlink">↩</a></p></li></ol></section>',
        body_type="backmatter",
    ),
    "colophon.xhtml": _xhtml(
        '<section epub:type="colophon"><h2 epub:type="title">Colophon</h2><p>Set in a typeface at '
        '<a href="https://press.example.org/">press.example.org</a>.</p></section>',
        body_type="backmatter",
    ),
    "uncopyright.xhtml": _xhtml(
        '<section epub:type="copyright-page"><h2 epub:type="title">Uncopyright</h2>'
        "<p>Nobody owns the words in this little book.</p></section>",
        body_type="backmatter",
    ),
}
SPINE3 = [
    "titlepage", "imprint", "dedication", "epigraph", "halftitlepage", "part-1", "chapter-1", "chapter-2",
    "part-2", "chapter-3", "endnotes", "colophon", "uncopyright",
]  # fmt: skip
NAV3 = _xhtml(
    '<nav epub:type="toc" id="toc"><h2 epub:type="title">Table of Contents</h2><ol>'
    '<li><a href="text/titlepage.xhtml">Titlepage</a></li><li><a href="text/imprint.xhtml">Imprint</a></li>'
    '<li><a href="text/dedication.xhtml">Dedication</a></li><li><a href="text/epigraph.xhtml">On Lamps</a></li>'
    '<li><a href="text/halftitlepage.xhtml">The Lantern Keeper</a><ol>'
    '<li><a href="text/part-1.xhtml">Part <span epub:type="z3998:roman">I</span>: The Shore</a><ol>'
    '<li><a href="text/chapter-1.xhtml"><span epub:type="z3998:roman">I</span>: The Tide</a></li>'
    '<li><a href="text/chapter-2.xhtml"><span epub:type="z3998:roman">II</span>: The Fog</a></li></ol></li>'
    '<li><a href="text/part-2.xhtml">Part <span epub:type="z3998:roman">II</span>: The Tower</a><ol>'
    '<li><a href="text/chapter-3.xhtml"><span epub:type="z3998:roman">III</span>: The Light</a></li>'
    "</ol></li></ol></li>"
    '<li><a href="text/endnotes.xhtml">Endnotes</a></li><li><a href="text/colophon.xhtml">Colophon</a></li>'
    '<li><a href="text/uncopyright.xhtml">Uncopyright</a></li></ol></nav>'
    '<nav epub:type="landmarks"><ol><li><a href="text/part-1.xhtml" epub:type="bodymatter">Start</a></li>'
    "</ol></nav>",
    body_type="frontmatter",
)


def _opf3(cover: tuple[str, str] | None = ("images/cover.svg", "image/svg+xml")) -> str:
    items = "".join(
        f'<item id="{n}" href="text/{n}.xhtml" media-type="application/xhtml+xml"/>' for n in SPINE3
    )
    if cover:
        items += f'<item id="cover" href="{cover[0]}" media-type="{cover[1]}" properties="cover-image"/>'
    return (
        '<?xml version="1.0" encoding="utf-8"?><package xmlns="http://www.idpf.org/2007/opf" version="3.0" '
        'unique-identifier="uid"><metadata xmlns:dc="http://purl.org/dc/elements/1.1/">'
        '<dc:identifier id="uid">urn:test:lantern</dc:identifier><dc:title id="title">The Lantern Keeper</dc:title>'
        '<dc:creator id="author">Ada Quill</dc:creator><meta property="role" refines="#author" '
        'scheme="marc:relators">aut</meta><dc:creator id="artist">Ben Inkwell</dc:creator>'
        '<meta property="role" refines="#artist" scheme="marc:relators">ill</meta>'
        "<dc:language>en-GB</dc:language>"
        "<dc:description>A keeper &lt;i&gt;tends&lt;/i&gt; a lamp.</dc:description></metadata>"
        f'<manifest><item id="nav" href="toc.xhtml" media-type="application/xhtml+xml" properties="nav"/>{items}'
        "</manifest><spine>" + "".join(f'<itemref idref="{n}"/>' for n in SPINE3) + "</spine></package>"
    )


def _epub3(path: Path, *, cover_svg: str = SVG_COVER, extra: dict[str, str | bytes] | None = None) -> Path:
    files: dict[str, str | bytes] = {"OEBPS/content.opf": _opf3(), "OEBPS/toc.xhtml": NAV3}
    files.update({f"OEBPS/text/{name}": body for name, body in EPUB3_FILES.items()})
    files["OEBPS/images/cover.svg"] = cover_svg
    files.update(extra or {})
    return _zip(path, files)


def _all_text(doc: object) -> str:
    return "\n".join(p for c in doc.chapters for p in c.paragraphs)  # type: ignore[attr-defined]


def test_epub3_chapters_parts_and_front_matter(tmp_path: Path) -> None:
    doc = read_document(_epub3(tmp_path / "lantern.epub"))
    assert [c.title for c in doc.chapters] == [
        "Dedication",
        "On Lamps",
        "Part I: The Shore: I: The Tide",
        "Part I: The Shore: II: The Fog",
        "Part II: The Tower: III: The Light",
    ]
    by_title = {c.title: c.paragraphs for c in doc.chapters}
    assert by_title["Dedication"] == ("For Tomas Reed, who kept the light.",)
    assert by_title["On Lamps"] == ("A wick, a flame, a patient hand, and night gives way.",)  # one line per span
    assert by_title["Part I: The Shore: I: The Tide"] == (
        "The water came in slowly over the flat grey stones.",
        "“Roll on, roll in, the sea will have its due!”",
        "sang the keeper, “and I have had enough.” Then he slept.",  # no "1" after the quote
    )
    assert by_title["Part I: The Shore: II: The Fog"] == ("Fog lay on the harbour for three days.",)
    text = _all_text(doc)
    for boilerplate in ("Example Press", "press.example.org", "Uncopyright", "never sang", "↩", "Imprint"):
        assert boilerplate not in text
    assert doc.warnings == ()


def test_epub3_skipped_parts_are_listed_with_reasons(tmp_path: Path) -> None:
    doc = read_document(_epub3(tmp_path / "lantern.epub"))
    skipped = {s.what: s for s in doc.skipped if s.kind not in ("footnote marker", "image")}
    assert set(skipped) == {
        "titlepage.xhtml (titlepage)",
        "imprint.xhtml (imprint)",
        "halftitlepage.xhtml (halftitlepage)",
        "endnotes.xhtml (endnotes)",
        "colophon.xhtml (colophon)",
        "uncopyright.xhtml (copyright-page)",
    }
    assert "add 'imprint' to reading.keep" in skipped["imprint.xhtml (imprint)"].reason
    assert "add 'copyright' to reading.keep" in skipped["uncopyright.xhtml (copyright-page)"].reason
    assert "reading.notes" in skipped["endnotes.xhtml (endnotes)"].reason
    assert skipped["imprint.xhtml (imprint)"].words == len(
        "Imprint This edition was made by volunteers at Example Press.".split()
    )


def test_epub3_keep_reads_publisher_matter(tmp_path: Path) -> None:
    doc = read_document(_epub3(tmp_path / "lantern.epub"), options=ReadOptions(keep=frozenset({"imprint", "colophon"})))
    titles = [c.title for c in doc.chapters]
    assert titles[:2] == ["Imprint", "Dedication"] and titles[-1] == "Colophon"
    assert doc.chapters[0].paragraphs == ("This edition was made by volunteers at Example Press.",)
    assert "imprint.xhtml (imprint)" not in {s.what for s in doc.skipped}


def test_epub3_notes_at_chapter_end(tmp_path: Path) -> None:
    doc = read_document(_epub3(tmp_path / "lantern.epub"), options=ReadOptions(notes="end"))
    tide = next(c for c in doc.chapters if c.title.endswith("The Tide"))
    assert tide.paragraphs[-1] == "Footnote 1: The keeper never sang in tune."
    assert "↩" not in _all_text(doc)
    assert sum("Footnote" in p for c in doc.chapters for p in c.paragraphs) == 1  # only the chapter that refers


def test_epub3_part_titles_option(tmp_path: Path) -> None:
    doc = read_document(_epub3(tmp_path / "lantern.epub"), options=ReadOptions(part_titles="{chapter} ({part})"))
    assert doc.chapters[2].title == "I: The Tide (Part I: The Shore)"
    doc = read_document(_epub3(tmp_path / "lantern.epub"), options=ReadOptions(part_titles="{chapter}"))
    assert [c.title for c in doc.chapters][2:] == ["I: The Tide", "II: The Fog", "III: The Light"]


def test_epub3_metadata_and_svg_cover(tmp_path: Path) -> None:
    meta = read_document(_epub3(tmp_path / "lantern.epub")).metadata
    assert meta.title == "The Lantern Keeper"
    assert meta.authors == ("Ada Quill",)  # the illustrator is not an author
    assert meta.language == "en-GB"
    assert meta.description == "A keeper tends a lamp."
    assert (meta.cover, meta.cover_media_type) == (PNG, "image/png")  # the picture inside the SVG


def test_epub3_svg_cover_linking_a_jpeg_and_vector_only_cover(tmp_path: Path) -> None:
    linked = '<svg xmlns="http://www.w3.org/2000/svg"><image href="art.jpg" width="1" height="1"/></svg>'
    doc = read_document(_epub3(tmp_path / "a.epub", cover_svg=linked, extra={"OEBPS/images/art.jpg": JPEG}))
    assert (doc.metadata.cover, doc.metadata.cover_media_type) == (JPEG, "image/jpeg")
    vector = '<svg xmlns="http://www.w3.org/2000/svg"><rect width="1" height="1"/></svg>'
    doc = read_document(_epub3(tmp_path / "b.epub", cover_svg=vector))
    assert doc.metadata.cover is None and len(doc.chapters) == 5
    assert any("cover" in w and "SVG" in w for w in doc.warnings)


# --- an EPUB 2 built from SE XHTML: class names for semantics, NCX, guide -----------------


def _epub2_se(path: Path) -> Path:
    def page(body: str, cls: str = "bodymatter") -> str:
        return (
            '<?xml version="1.0" encoding="utf-8"?>\n<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.1//EN" '
            '"http://www.w3.org/TR/xhtml11/DTD/xhtml11.dtd">\n<html xmlns="http://www.w3.org/1999/xhtml">'
            f'<head><title>x</title></head><body class="{cls}">{body}</body></html>'
        )

    text = {
        "cover": page('<div class="cover"><img alt="Cover" src="../images/cover.jpg"/></div>', ""),
        "titlepage": page('<div class="titlepage"><h1 class="title">Salt Roads</h1><p>By Ida Marsh.</p></div>'),
        "contents": page(
            '<div><h2>Contents</h2><p><a href="preface.xhtml">Preface</a></p>'
            '<p><a href="chapter-1.xhtml">Chapter I</a></p><p><a href="chapter-2.xhtml">Chapter II</a></p></div>',
            "",
        ),
        "preface": page('<div class="preface"><h2 class="title">Preface</h2><p>I wrote this by the sea.</p></div>'),
        "chapter-1": page(
            '<div class="chapter"><h2><span class="se-label">Chapter</span> <span class="z3998-roman">I</span></h2>'
            '<p>The road was white with salt.<a class="noteref" href="notes.xhtml#note-1">1</a></p></div>'
        ),
        "chapter-2": page(
            '<div class="chapter"><h2><span>Chapter</span> <span>II</span></h2><p>Morning on the flats.</p>'
            '<div class="z3998-subchapter" id="evening"><h3 class="title">Later, <i>in the Evening</i></h3>'
            "<p>The wind turned.</p><hr/><p>Nobody slept.</p></div></div>"
        ),
        "notes": page(
            '<div class="endnotes"><ol><li id="note-1"><p>Salt from the old pans. '
            '<a class="backlink" href="chapter-1.xhtml">↩</a></p></li></ol></div>'
        ),
    }
    names = list(text)
    points = [
        ("Titlepage", "titlepage.xhtml", []),
        ("Preface", "preface.xhtml", []),
        ("Salt Roads", "titlepage.xhtml#x", [
            ("Chapter I", "chapter-1.xhtml", []),
            ("Chapter II", "chapter-2.xhtml", [("Later, in the Evening", "chapter-2.xhtml#evening", [])]),
        ]),
        ("Endnotes", "notes.xhtml", []),
    ]  # fmt: skip

    def nav(entries: list, counter: list[int]) -> str:
        out = ""
        for label, src, children in entries:
            counter[0] += 1
            out += (
                f'<navPoint id="np{counter[0]}" playOrder="{counter[0]}"><navLabel><text>{label}</text></navLabel>'
                f'<content src="text/{src}"/>{nav(children, counter)}</navPoint>'
            )
        return out

    ncx = (
        '<?xml version="1.0"?><ncx xmlns="http://www.daisy.org/z3986/2005/ncx/" version="2005-1"><head/>'
        f"<docTitle><text>Salt Roads</text></docTitle><navMap>{nav(points, [0])}</navMap></ncx>"
    )
    opf = (
        '<?xml version="1.0"?><package xmlns="http://www.idpf.org/2007/opf" version="2.0" unique-identifier="id">'
        '<metadata xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:opf="http://www.idpf.org/2007/opf">'
        '<dc:title>Salt Roads</dc:title><dc:creator opf:role="aut" opf:file-as="Marsh, Ida">Ida Marsh</dc:creator>'
        '<dc:language>en</dc:language><meta name="cover" content="cover-image"/></metadata><manifest>'
        '<item id="ncx" href="toc.ncx" media-type="application/x-dtbncx+xml"/>'
        '<item id="cover-image" href="images/cover.jpg" media-type="image/jpeg"/>'
        + "".join(f'<item id="{n}" href="text/{n}.xhtml" media-type="application/xhtml+xml"/>' for n in names)
        + '</manifest><spine toc="ncx">'
        + "".join(f'<itemref idref="{n}"/>' for n in names)
        + '</spine><guide><reference type="toc" title="Contents" href="text/contents.xhtml"/>'
        '<reference type="cover" title="Cover" href="text/cover.xhtml"/></guide></package>'
    )
    files: dict[str, str | bytes] = {"OEBPS/content.opf": opf, "OEBPS/toc.ncx": ncx, "OEBPS/images/cover.jpg": JPEG}
    files.update({f"OEBPS/text/{n}.xhtml": body for n, body in text.items()})
    return _zip(path, files)


def test_epub2_class_semantics_guide_and_mid_file_section(tmp_path: Path) -> None:
    doc = read_document(_epub2_se(tmp_path / "salt.epub"))
    assert [c.title for c in doc.chapters] == ["Preface", "Chapter I", "Chapter II"]
    assert doc.chapters[1].paragraphs == ("The road was white with salt.",)
    # the third-level entry pointing mid-file stays inside its chapter, its heading read as text
    assert doc.chapters[2].paragraphs == (
        "Morning on the flats.",
        "Later, in the Evening",
        "The wind turned.",
        "Nobody slept.",
    )
    whats = {s.what for s in doc.skipped}
    assert {"titlepage.xhtml (titlepage)", "contents.xhtml (toc)", "notes.xhtml (endnotes)"} <= whats
    assert (doc.metadata.title, doc.metadata.authors, doc.metadata.cover) == ("Salt Roads", ("Ida Marsh",), JPEG)
    assert doc.metadata.cover_media_type == "image/jpeg"


# --- Project Gutenberg's EPUB 2: NCX only, split headings, header and licence as text ------------

PG_HEADER = (
    '<div class="pgmonospaced pgheader"><br/>The Project Gutenberg EBook of Tin Harbour, by Lee Cole<br/>'
    "This eBook is for the use of anyone anywhere at no cost.<br/>"
    "*** START OF THIS PROJECT GUTENBERG EBOOK TIN HARBOUR ***<br/></div>"
)
PG_LICENCE = (
    '<div class="pgmonospaced pgheader">End of the Project Gutenberg EBook of Tin Harbour<br/>'
    "*** END OF THIS PROJECT GUTENBERG EBOOK TIN HARBOUR ***<br/>"
    "Please read this before you distribute: http://www.gutenberg.org/license<br/></div>"
)


def _pg_epub(path: Path) -> Path:
    def chunk(body: str) -> str:
        return (
            "<?xml version='1.0' encoding='utf-8'?>\n<!DOCTYPE html PUBLIC '-//W3C//DTD XHTML 1.1//EN' "
            "'http://www.w3.org/TR/xhtml11/DTD/xhtml11.dtd'>\n<html xmlns=\"http://www.w3.org/1999/xhtml\">"
            "<head><title>The Project Gutenberg eBook of Tin Harbour, by Lee Cole</title></head>"
            f"<body>{body}</body></html>"
        )

    c0 = chunk(
        PG_HEADER + '<h1 id="id0">Tin Harbour</h1><h1>by Lee Cole [1901]</h1>'
        '<div class="pgmonospaced">   Ships come in and ships go out .  .  .<br/>   --OLD SAYING<br/></div>'
        '<h2 class="booknum" id="id1">BOOK ONE</h2><h2 id="id2">THE OLD QUAY</h2>'
        '<h3 class="chapnum" id="id3">CHAPTER ONE</h3><h3 class="chaptitle" id="id4">THE FIRST BOAT</h3>'
        "<p>The boat came in at dawn.</p><p>Nobody met it.</p>"
        '<h3 class="chapnum" id="id5">CHAPTER TWO</h3><h3 class="chaptitle" id="id6">THE NETS</h3>'
        "<p>The nets were torn.</p>"
    )
    c1 = chunk(
        '<h2 class="booknum" id="id7">BOOK TWO</h2><h2 id="id8">THE NEW QUAY</h2>'
        '<h3 class="chapnum" id="id9">CHAPTER ONE</h3><h3 class="chaptitle" id="id10">THE CRANE</h3>'
        "<p>They built a crane.</p>"
    )
    c2 = chunk(PG_LICENCE)
    f = ["c0.html", "c1.html", "c2.html"]

    def point(n: int, label: str, src: str, children: str = "") -> str:
        return (
            f'<navPoint id="np-{n}" playOrder="{n}"><navLabel><text>{label}</text></navLabel>'
            f'<content src="{src}"/>{children}</navPoint>'
        )

    ncx = (
        "<?xml version='1.0'?><ncx xmlns=\"http://www.daisy.org/z3986/2005/ncx/\" version=\"2005-1\"><head/>"
        "<docTitle><text>Tin Harbour</text></docTitle><navMap>"
        + point(1, "Tin Harbour", f"{f[0]}#id0")
        + point(2, "BOOK ONE", f"{f[0]}#id1")
        + point(3, "THE OLD QUAY", f"{f[0]}#id2", point(4, "CHAPTER ONE", f"{f[0]}#id3")
                + point(5, "THE FIRST BOAT", f"{f[0]}#id4") + point(6, "CHAPTER TWO", f"{f[0]}#id5")
                + point(7, "THE NETS", f"{f[0]}#id6"))
        + point(8, "BOOK TWO", f"{f[1]}#id7")
        + point(9, "THE NEW QUAY", f"{f[1]}#id8", point(10, "CHAPTER ONE", f"{f[1]}#id9")
                + point(11, "THE CRANE", f"{f[1]}#id10"))
        + "</navMap></ncx>"
    )  # fmt: skip
    opf = (
        "<?xml version='1.0'?><package xmlns=\"http://www.idpf.org/2007/opf\" version=\"2.0\" unique-identifier=\"id\">"
        '<metadata xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>Tin Harbour</dc:title>'
        "<dc:creator>Lee Cole</dc:creator><dc:language>en</dc:language>"
        "<dc:source>http://www.example.orgfiles/9/9-h.htm</dc:source></metadata><manifest>"
        + "".join(f'<item id="i{i}" href="{n}" media-type="application/xhtml+xml"/>' for i, n in enumerate(f))
        + '<item id="ncx" href="toc.ncx" media-type="application/x-dtbncx+xml"/></manifest><spine toc="ncx">'
        + "".join(f'<itemref idref="i{i}" linear="yes"/>' for i in range(3))
        + "</spine></package>"
    )
    files: dict[str, str | bytes] = {"9/content.opf": opf, "9/toc.ncx": ncx}
    files.update({f"9/{n}": body for n, body in zip(f, (c0, c1, c2), strict=True)})
    return _zip(path, files, opf="9/content.opf")


def test_gutenberg_epub2_split_headings_books_and_licence(tmp_path: Path) -> None:
    doc = read_document(_pg_epub(tmp_path / "pg.epub"))
    assert [c.title for c in doc.chapters] == [
        "Epigraph",
        "Book One: The Old Quay: Chapter One: The First Boat",
        "Book One: The Old Quay: Chapter Two: The Nets",
        "Book Two: The New Quay: Chapter One: The Crane",
    ]
    assert doc.chapters[0].paragraphs == ("Ships come in and ships go out . . . --OLD SAYING",)
    assert doc.chapters[1].paragraphs == ("The boat came in at dawn.", "Nobody met it.")
    text = _all_text(doc)
    assert "Gutenberg" not in text and "http" not in text and "Lee Cole" not in text
    kinds = {s.what.split(" (")[0]: s for s in doc.skipped}
    assert kinds["Project Gutenberg header"].words > 10 and "'header'" in kinds["Project Gutenberg header"].reason
    assert "'license'" in kinds["Project Gutenberg licence"].reason
    assert doc.warnings == ()
    kept = read_document(_pg_epub(tmp_path / "pg.epub"), options=ReadOptions(keep=frozenset({"license"})))
    assert "END OF THIS PROJECT GUTENBERG" in _all_text(kept)


# --- broken and hostile files ---------------------------------------------------------------


def test_malformed_epubs_are_source_errors(tmp_path: Path) -> None:
    no_container = _zip(tmp_path / "a.epub", {"META-INF/container.xml": "", "x.txt": "hi"})
    with pytest.raises(SourceError, match="a.epub"):
        read_document(no_container)
    missing_opf = _zip(tmp_path / "b.epub", {"x.txt": "hi"})
    with pytest.raises(SourceError, match=r"b.epub.*package file .*missing"):
        read_document(missing_opf)
    broken_opf = _zip(tmp_path / "c.epub", {"OEBPS/content.opf": "<package><metadata>"})
    with pytest.raises(SourceError, match=r"c.epub.*malformed OEBPS/content.opf") as info:
        read_document(broken_opf)
    assert info.value.fix
    empty_spine = _zip(tmp_path / "d.epub", {"OEBPS/content.opf": '<package xmlns="http://www.idpf.org/2007/opf"/>'})
    with pytest.raises(SourceError, match="d.epub.*no readable documents"):
        read_document(empty_spine)


BOMB_OPF = """<?xml version="1.0"?>
<!DOCTYPE package [
 <!ENTITY a "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa">
 <!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
 <!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">
 <!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">
 <!ENTITY e "&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;">
 <!ENTITY f "&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;">
]>
<package xmlns="http://www.idpf.org/2007/opf" version="2.0"><metadata xmlns:dc="http://purl.org/dc/elements/1.1/">
<dc:title>&f;</dc:title></metadata><manifest/><spine/></package>"""

XXE_OPF = """<?xml version="1.0"?>
<!DOCTYPE package [<!ENTITY secret SYSTEM "file:///etc/hostname">]>
<package xmlns="http://www.idpf.org/2007/opf" version="2.0"><metadata xmlns:dc="http://purl.org/dc/elements/1.1/">
<dc:title>&secret;</dc:title></metadata><manifest/><spine/></package>"""


@pytest.mark.parametrize("opf", [BOMB_OPF, XXE_OPF], ids=["entity-bomb", "external-entity"])
def test_entity_declarations_in_the_package_are_refused(tmp_path: Path, opf: str) -> None:
    path = _zip(tmp_path / "evil.epub", {"OEBPS/content.opf": opf})
    with pytest.raises(SourceError, match=r"evil.epub.*declaring XML entities") as info:
        read_document(path)
    assert "aaaa" not in str(info.value)


def test_entities_in_a_content_document_are_never_expanded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOPSECRET", encoding="utf-8")
    evil = (
        f'<?xml version="1.0"?><!DOCTYPE html [<!ENTITY s SYSTEM "file://{secret}"><!ENTITY w "wordwordword">]>'
        '<html xmlns="http://www.w3.org/1999/xhtml"><body><p>Before &s; &w; after.</p></body></html>'
    )
    path = _epub3(tmp_path / "x.epub", extra={"OEBPS/text/chapter-2.xhtml": evil})
    text = _all_text(read_document(path))
    assert "TOPSECRET" not in text and "wordwordword" not in text
    assert "Before" in text and "after." in text


def test_drm_protected_epub_is_a_clear_error(tmp_path: Path) -> None:
    encryption = (
        '<encryption xmlns="urn:oasis:names:tc:opendocument:xmlns:container" '
        'xmlns:enc="http://www.w3.org/2001/04/xmlenc#"><enc:EncryptedData><enc:CipherData>'
        '<enc:CipherReference URI="OEBPS/text/chapter-1.xhtml"/></enc:CipherData></enc:EncryptedData></encryption>'
    )
    path = _epub3(tmp_path / "drm.epub", extra={"META-INF/encryption.xml": encryption})
    with pytest.raises(SourceError, match="drm.epub.*DRM") as info:
        read_document(path)
    assert info.value.fix and "DRM-free" in info.value.fix


def test_epub_without_navigation_titles_chapters_by_their_headings(tmp_path: Path) -> None:
    pages = {
        "a.xhtml": _xhtml("<p>Some words before any heading.</p>"),
        "b.xhtml": _xhtml("<h2>THE FIRST MORNING</h2><p>It rained.</p>"),
        "c.xhtml": _xhtml("<p>It kept raining.</p>"),  # no heading: the same chapter goes on
        "d.xhtml": _xhtml('<section epub:type="colophon"><p>Made with care.</p></section>'),
        "e.xhtml": _xhtml("<h2>Evening<a epub:type='noteref' href='#n'>4</a></h2><p>It stopped.</p>"),
    }
    opf = (
        '<?xml version="1.0"?><package xmlns="http://www.idpf.org/2007/opf" version="3.0"><metadata/>'
        "<manifest>"
        + "".join(f'<item id="{n[0]}" href="{n}" media-type="application/xhtml+xml"/>' for n in pages)
        + "</manifest><spine>"
        + "".join(f'<itemref idref="{n[0]}"/>' for n in pages)
        + "</spine></package>"
    )
    files: dict[str, str | bytes] = {"OEBPS/content.opf": opf}
    files.update({f"OEBPS/{n}": body for n, body in pages.items()})
    doc = read_document(_zip(tmp_path / "bare.epub", files), title_hint="Rain")
    assert [(c.title, c.paragraphs) for c in doc.chapters] == [
        ("Rain", ("Some words before any heading.",)),
        ("The First Morning", ("It rained.", "It kept raining.")),
        ("Evening", ("It stopped.",)),
    ]
    assert [s.what for s in doc.skipped if s.kind != "footnote marker"] == ["d.xhtml (colophon)"]


def test_html_entities_in_epub_content_keep_utf8_text(tmp_path: Path) -> None:
    # &nbsp; is not XML: the document is read by the HTML parser, still as UTF-8
    page = (
        '<?xml version="1.0" encoding="utf-8"?><html xmlns="http://www.w3.org/1999/xhtml"><body>'
        "<h3>II: The Fog</h3><p>Caf\u00e9&nbsp;noir \u2014 \u2018quoted\u2019&hellip;</p></body></html>"
    )
    path = _epub3(tmp_path / "ent.epub", extra={"OEBPS/text/chapter-2.xhtml": page})
    fog = next(c for c in read_document(path).chapters if c.title.endswith("The Fog"))
    assert fog.paragraphs == ("Caf\u00e9 noir \u2014 \u2018quoted\u2019\u2026",)
