"""Source encodings: a declared encoding wins (Project Gutenberg header, HTML <meta>, XML
declaration), then UTF-8, then charset-normalizer's guess; a UTF-8 byte-order mark never reaches the
text; the Document says which encoding was used."""

from __future__ import annotations

from pathlib import Path

from tasks.documents import read_document
from tasks.documents.__main__ import main

PG_LATIN1 = """The Project Gutenberg EBook of Peat and Stone, by Orla Finn

Title: Peat and Stone

Author: Orla Finn

Character set encoding: ISO-8859-1

*** START OF THIS PROJECT GUTENBERG EBOOK PEAT AND STONE ***

CHAPTER I

THE BOG

The archæology of the bog cost £3 a day; Mr. Bréon paid.

*** END OF THIS PROJECT GUTENBERG EBOOK PEAT AND STONE ***
"""


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_gutenberg_header_declares_latin1(tmp_path: Path) -> None:
    doc = read_document(_write(tmp_path / "peat-8.txt", PG_LATIN1.replace("\n", "\r\n").encode("latin-1")))
    assert [c.title for c in doc.chapters] == ["Chapter I: The Bog"]
    assert doc.chapters[0].paragraphs == ("The archæology of the bog cost £3 a day; Mr. Bréon paid.",)
    assert doc.encoding == "iso-8859-1 (declared)"
    assert doc.warnings == ()


def test_declared_latin1_with_windows_quotes_reads_them_as_quotes(tmp_path: Path) -> None:
    text = PG_LATIN1.replace("The archæology", "\u201cThe archæology").replace("paid.", "paid.\u201d")
    doc = read_document(_write(tmp_path / "peat.txt", text.encode("cp1252")))
    assert doc.chapters[0].paragraphs[0].startswith("\u201cThe arch\u00e6ology")
    assert doc.chapters[0].paragraphs[0].endswith("paid.\u201d")
    assert doc.encoding == "windows-1252 (declared iso-8859-1)"


def test_undeclared_windows_1252_curly_quotes_are_detected(tmp_path: Path) -> None:
    text = "Chapter 1\n\n\u201cWell,\u201d she said \u2014 and that was all. Caf\u00e9 na\u00efve r\u00e9sum\u00e9.\n"
    data = text.encode("cp1252")
    assert b"\x93" in data and b"\x94" in data
    doc = read_document(_write(tmp_path / "quotes.txt", data))
    assert doc.chapters[0].paragraphs == (
        "\u201cWell,\u201d she said \u2014 and that was all. Caf\u00e9 na\u00efve r\u00e9sum\u00e9.",)
    assert doc.encoding == "windows-1252 (detected)"
    assert any("quotes.txt" in w and "windows-1252" in w for w in doc.warnings)
    md = read_document(_write(tmp_path / "quotes.md", data))
    assert md.chapters[0].paragraphs[-1] == doc.chapters[0].paragraphs[-1] and md.encoding == doc.encoding


def test_utf8_bom_is_dropped(tmp_path: Path) -> None:
    doc = read_document(_write(tmp_path / "bom.txt", b"\xef\xbb\xbfChapter 1\n\nCaf\xc3\xa9 at dawn.\n"))
    assert [c.title for c in doc.chapters] == ["Chapter 1"]
    assert doc.chapters[0].paragraphs == ("Café at dawn.",)
    assert doc.encoding == "utf-8 (with byte-order mark)"
    page = b"\xef\xbb\xbf<html><head><title>Dawn</title></head><body><p>Caf\xc3\xa9 at dawn.</p></body></html>"
    html = read_document(_write(tmp_path / "bom.html", page))
    assert html.chapters[0].paragraphs == ("Café at dawn.",)
    assert "\ufeff" not in html.chapters[0].title + "".join(html.chapters[0].paragraphs)
    assert html.encoding == "utf-8 (with byte-order mark)"


def test_html_declarations(tmp_path: Path) -> None:
    body = "<body><h1>Tide</h1><p>\u201cTo sea,\u201d said Ms. Ni\u00f1o \u2014 \u00a35.</p></body></html>"
    http_equiv = ('<html><head><meta http-equiv="Content-Type" content="text/html;charset=iso-8859-1" />'
                  "<title>Tide</title></head>")
    # declared ISO-8859-1, with Windows-1252 quote bytes as real pages have them
    doc = read_document(_write(tmp_path / "tide.htm", (http_equiv + body).encode("cp1252")))
    assert doc.chapters[0].paragraphs == ("\u201cTo sea,\u201d said Ms. Ni\u00f1o \u2014 \u00a35.",)
    assert doc.encoding == "windows-1252 (declared iso-8859-1)"
    ascii_only = (http_equiv + "<body><h1>Tide</h1><p>Ni&ntilde;o &pound;5</p></body></html>").encode("ascii")
    assert read_document(_write(tmp_path / "entities.htm", ascii_only)).encoding == "iso-8859-1 (declared)"
    meta = '<html><head><meta charset="windows-1252"><title>Tide</title></head>' + body
    assert read_document(_write(tmp_path / "meta.html", meta.encode("cp1252"))).chapters == doc.chapters
    xml = ('<?xml version="1.0" encoding="ISO-8859-1"?><html xmlns="http://www.w3.org/1999/xhtml"><head>'
           "<title>Tide</title></head><body><h1>Tide</h1><p>Ni\u00f1o \u00a35.</p></body></html>")
    doc = read_document(_write(tmp_path / "tide.xhtml", xml.encode("latin-1")))
    assert doc.chapters[0].paragraphs == ("Ni\u00f1o \u00a35.",)


def test_documents_command_prints_the_encoding_and_ledger(tmp_path: Path, capsys: object) -> None:
    path = _write(tmp_path / "peat-8.txt", PG_LATIN1.encode("latin-1"))
    assert main([str(path)]) == 0
    out = capsys.readouterr().out  # type: ignore[attr-defined]
    assert "encoding iso-8859-1 (declared)" in out
    assert "word ledger:" in out and "kept  Chapter I: The Bog" in out and "licence" in out
