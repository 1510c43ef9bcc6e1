"""DOCX reading with python-docx: the indie-author manuscript layout."""

from __future__ import annotations

import zipfile
from pathlib import Path

import docx
import pytest
from docx.enum.text import WD_BREAK
from docx.oxml import OxmlElement
from docx.oxml.ns import qn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tasks.documents import ReadOptions, read_document
from tasks.errors import SourceError


def _footnote_reference(paragraph: object) -> None:
    """Append a footnote reference mark (as Word writes it) to a paragraph."""
    run = OxmlElement("w:r")
    props = OxmlElement("w:rPr")
    style = OxmlElement("w:rStyle")
    style.set(qn("w:val"), "FootnoteReference")
    props.append(style)
    run.append(props)
    ref = OxmlElement("w:footnoteReference")
    ref.set(qn("w:id"), "1")
    run.append(ref)
    paragraph._p.append(run)  # type: ignore[attr-defined]


def _manuscript(path: Path, *, parts: bool = True) -> Path:
    d = docx.Document()
    d.core_properties.title = "The Glass Orchard"
    d.core_properties.author = "Mira Vale; Jon Vale"
    d.core_properties.language = "en-US"
    d.add_paragraph("The Glass Orchard", style="Title")
    d.add_paragraph("A Novel", style="Subtitle")
    d.add_paragraph("For my sister, who planted the first tree.")
    if parts:
        d.add_paragraph("Part One", style="Heading 1")
    d.add_paragraph("Chapter 1", style="Heading 2")
    p = d.add_paragraph("The orchard was made of glass.")
    _footnote_reference(p)
    p.add_run().add_break(WD_BREAK.PAGE)
    d.add_paragraph("")
    d.add_paragraph("Nobody knew why.")
    d.add_paragraph("Chapter 2", style="Heading 2")
    d.add_paragraph("Morning came.")
    d.add_paragraph("At the Gate", style="Heading 3")
    d.add_paragraph("The gate was open.")
    table = d.add_table(rows=1, cols=2)
    table.cell(0, 0).text = "apples pears"
    table.cell(0, 1).text = "plums"
    d.add_paragraph("EPILOGUE", style="Heading 1")
    d.add_paragraph("It ended well.")
    d.save(str(path))
    return path


def test_docx_manuscript_chapters(tmp_path: Path) -> None:
    doc = read_document(_manuscript(tmp_path / "orchard.docx"))
    assert [(c.title, c.paragraphs) for c in doc.chapters] == [
        ("The Glass Orchard", ("For my sister, who planted the first tree.",)),  # before the first heading
        ("Part One: Chapter 1", ("The orchard was made of glass.", "Nobody knew why.")),  # no footnote mark
        ("Part One: Chapter 2", ("Morning came.", "At the Gate", "The gate was open.")),
        ("Epilogue", ("It ended well.",)),
    ]
    assert doc.metadata.title == "The Glass Orchard"
    assert doc.metadata.authors == ("Mira Vale", "Jon Vale")
    assert doc.metadata.language == "en-US"
    assert [(s.what, s.words) for s in doc.skipped if s.kind == "table"] == [("a table", 3)]
    assert {s.kind for s in doc.skipped} == {"table", "title page"}  # the Title paragraphs are in the ledger


def test_docx_heading1_chapters_and_options(tmp_path: Path) -> None:
    doc = read_document(
        _manuscript(tmp_path / "flat.docx", parts=False),
        title_hint="Orchard",
        options=ReadOptions(part_titles="{chapter}"),
    )
    assert [c.title for c in doc.chapters] == ["Orchard", "Chapter 1", "Chapter 2", "Epilogue"]


def test_docx_title_from_style_when_properties_are_empty(tmp_path: Path) -> None:
    d = docx.Document()
    d.core_properties.title = ""
    d.add_paragraph("Stone Soup", style="Title")
    d.add_paragraph("Chapter One", style="Heading 1")
    d.add_paragraph("Water boiled.")
    path = tmp_path / "soup.docx"
    d.save(str(path))
    doc = read_document(path)
    assert doc.metadata.title == "Stone Soup"
    assert [(c.title, c.paragraphs) for c in doc.chapters] == [("Chapter One", ("Water boiled.",))]


def test_broken_docx_is_a_source_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.docx"
    junk.write_bytes(b"not a zip at all")
    with pytest.raises(SourceError, match="junk.docx.*not a zip"):
        read_document(junk)
    other = tmp_path / "other.docx"
    with zipfile.ZipFile(other, "w") as z:
        z.writestr("hello.txt", "hi")
    with pytest.raises(SourceError, match="other.docx.*word/document.xml is missing"):
        read_document(other)
    good = _manuscript(tmp_path / "good.docx")
    evil = tmp_path / "evil.docx"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(evil, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "word/document.xml":
                data = data.replace(b"?>", b'?><!DOCTYPE w:document [<!ENTITY x "boom">]>', 1)
            dst.writestr(info, data)
    with pytest.raises(SourceError, match="evil.docx.*entities"):
        read_document(evil)
    cut = tmp_path / "cut.docx"
    cut.write_bytes(good.read_bytes()[:2000])
    with pytest.raises(SourceError, match="cut.docx"):
        read_document(cut)


@settings(deadline=None, max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(edits=st.lists(st.tuples(st.integers(0, 2**20), st.integers(0, 255)), min_size=1, max_size=6))
def test_damaged_docx_gives_document_or_source_error(
    tmp_path_factory: pytest.TempPathFactory, edits: list[tuple[int, int]]
) -> None:
    folder = tmp_path_factory.mktemp("fuzz")
    data = bytearray(_manuscript(folder / "good.docx").read_bytes())
    for offset, value in edits:
        data[offset % len(data)] = value
    path = folder / "damaged.docx"
    path.write_bytes(bytes(data))
    try:
        doc = read_document(path)
    except SourceError as exc:
        assert "damaged.docx" in str(exc)
    else:
        assert doc.chapters
