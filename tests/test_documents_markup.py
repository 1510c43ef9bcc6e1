"""Book structure and Project Gutenberg markup in plain text, HTML and Markdown: title pages and
contents lists skipped (never chapters), chapter headings found anywhere with their whole titles,
footnotes read with their numbers or skipped, bracket markup handled as what it is and every other
bracket kept as text. The fixtures are invented, in the shapes of real editions."""

from __future__ import annotations

from pathlib import Path

from tasks.documents import Document, ReadOptions, read_document


def _read(path: Path, text: str, **options: object) -> Document:
    path.write_text(text, encoding="utf-8")
    return read_document(path, options=ReadOptions(**options))  # type: ignore[arg-type]


def _kinds(doc: Document) -> dict[str, int]:
    out: dict[str, int] = {}
    for s in doc.skipped:
        out[s.kind] = out.get(s.kind, 0) + s.words
    return out


PG_HEADER = "Title: The Fen Road\n\nAuthor: Ewan Marsh\n\n*** START OF THIS PROJECT GUTENBERG EBOOK THE FEN ROAD ***\n\n"
PG_FOOTER = "\n\n*** END OF THIS PROJECT GUTENBERG EBOOK THE FEN ROAD ***\n\nSection 1. General Terms of Use.\n"

TITLE_PAGE = """


 THE FEN ROAD

 BY
 EWAN MARSH

 FELLOW OF THE SOCIETY OF FEN WALKERS
 KEEPER OF MAPS AT THE COUNTY MUSEUM


 _WITH FOUR MAPS_


 REEDS & SONS, LIMITED,
 12 WATER LANE, ELY
 1911

"""

CONTENTS = """
CONTENTS


                                                              PAGE
 CHAPTER I,                                                      1
   The dykes; Where the water went; Pumps and mills
   of the old drainers.

 CHAPTER II,                                                    19
   Eels; Willow baskets.

 INDEX,                                                         40

"""


def test_title_page_contents_and_chapter_after_a_signed_preface(tmp_path: Path) -> None:
    body = (
        TITLE_PAGE + "PREFACE\n\nI walked the fen road for ten years.\n\n"
        "                                        E. M.\nEly, November, 1910.\n"
        "CHAPTER I\nTHE DYKES\n\nThe dykes were cut by hand.\n\n"
        + CONTENTS.replace("CONTENTS", "LIST OF MAPS")
        + "CHAPTER II\n\nTHE SECOND TALE\n\nTHE RIVER'S SONG\n\nThe river sang.\n\n"
        "CHAPTER III\nTHE THIRD TALE\nTHE EEL'S SONG\n\nThe eels sang.\n"
    )
    doc = _read(tmp_path / "fen.txt", PG_HEADER + body.replace("PREFACE", CONTENTS + "PREFACE", 1) + PG_FOOTER)
    assert [c.title for c in doc.chapters] == [
        "Preface",
        "Chapter I: The Dykes",
        "Chapter II: The Second Tale. The River's Song",
        "Chapter III: The Third Tale. The Eel's Song",
    ]
    assert doc.chapters[0].paragraphs == ("I walked the fen road for ten years.", "E. M. Ely, November, 1910.")
    assert doc.chapters[1].paragraphs == ("The dykes were cut by hand.",)  # the list of maps is not read
    kinds = _kinds(doc)
    assert kinds["title page"] == len(" ".join(TITLE_PAGE.split()).split())
    assert kinds["contents"] > 20 and "empty heading" not in kinds


def test_gutenberg_bracket_markup(tmp_path: Path) -> None:
    text = PG_HEADER + (
        "CHAPTER I\n\nTHE MILL\n\n"
        "The mill ground corn of a fine type.[1] Its wheel was of the old group[2]; "
        "the Balti[Pg 29]more wheelwright said \"it [is] sound.\" Ph[oe]be agreed.\n\n"
        " [1] Proc. Fen Society, vol. xx, p. 6.\n\n"
        " [2] See Marsh, \"Mills,\" p. 9.\n\n"
        " [Illustration: Fig. 4.--The mill at Soham,\n"
        "                seen from the south.]\n\n"
        "[Illustration]\n\n"
        "[Sidenote: The miller's year.] The miller worked from harvest to spring.\n\n"
        "[Transcriber's Note: Spelling of the mill's name is as printed.]\n\n"
        "[Those who came\nto the mill by night\nleft before the dawn.]\n"
    ) + PG_FOOTER
    doc = _read(tmp_path / "mill.txt", text)
    assert [c.title for c in doc.chapters] == ["Chapter I: The Mill"]
    assert doc.chapters[0].paragraphs == (
        "The mill ground corn of a fine type. Its wheel was of the old group; the Baltimore wheelwright said "
        "\"it [is] sound.\" Ph[oe]be agreed.",
        "The miller's year. The miller worked from harvest to spring.",
        "[Those who came to the mill by night left before the dawn.]",
    )
    kinds = _kinds(doc)
    assert kinds["footnote marker"] == 2 and kinds["page number"] == 2 and kinds["transcriber's note"] > 5
    assert kinds["image"] == len("Illustration Fig. 4.--The mill at Soham, seen from the south. Illustration".split())
    assert kinds["footnote"] == len("1 Proc. Fen Society, vol. xx, p. 6. 2 See Marsh, \"Mills,\" p. 9.".split())

    doc = _read(tmp_path / "mill.txt", text, notes="end", image_alt=True)
    assert doc.chapters[0].paragraphs[-2:] == (
        "Footnote 1: Proc. Fen Society, vol. xx, p. 6.", "Footnote 2: See Marsh, \"Mills,\" p. 9.")
    assert "Fig. 4.--The mill at Soham, seen from the south." in doc.chapters[0].paragraphs
    assert "footnote" not in _kinds(doc)


def test_text_table_is_skipped_in_its_chapter(tmp_path: Path) -> None:
    text = (
        "CHAPTER IV\n\nGOLD\n\nThe finds are listed below.\n\n"
        " County.       |No.|   Reference.\n --------------+---+-------------\n"
        " Kerry,        | 2 |  R.I.A. 1889: 20 (1).\n               |   |\n Clare,        | 1 |  Day Coll.\n\n"
        "So ends the list.\n"
    )
    doc = _read(tmp_path / "gold.txt", text)
    assert doc.chapters[0].paragraphs == ("The finds are listed below.", "So ends the list.")
    table = next(s for s in doc.skipped if s.kind == "table")
    assert table.chapter == "Chapter IV: Gold" and "Kerry" in table.text


GUTENBERG_HTML = """<?xml version="1.0" encoding="iso-8859-1"?>
<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Strict//EN" "http://www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd">
<html xmlns="http://www.w3.org/1999/xhtml"><head>
<meta http-equiv="Content-Type" content="text/html;charset=iso-8859-1" />
<title>The Project Gutenberg eBook of Salt Marsh Days, by Nell Dune</title></head><body>
<pre>The Project Gutenberg EBook of Salt Marsh Days, by Nell Dune
*** START OF THIS PROJECT GUTENBERG EBOOK SALT MARSH DAYS ***
Produced by a volunteer</pre>
<div class="figcenter"><img src="images/front.jpg" alt="The marsh at low tide" />
<span class="caption">The marsh at low tide</span></div>
<h1>SALT MARSH DAYS</h1>
<p class='center'><span>A BOOK OF THE COAST BY</span><br />NELL DUNE</p>
<p class='center'>LONDON<br />GULL &amp; CO.<br />1920</p>
<p class='center'>Copyright, 1920, by Gull &amp; Co.</p>
<p class="center">TO MY BROTHER</p>
<h2>FOREWORD</h2>
<p>These pages were written by the sea.</p>
<h2>CONTENTS</h2>
<table><tr><td><a href="#CHAPTER_I">I</a></td><td>THE CREEK</td><td><a href="#Page_3">3</a></td></tr>
<tr><td><a href="#CHAPTER_II">II</a></td><td>THE TIDE</td><td>9</td></tr>
<tr><td><a href="#CHAPTER_III">III</a></td><td>THE GULLS</td><td>14</td></tr></table>
<p><span class='pagenum'><a id="Page_1">[Pg 1]</a></span></p>
<h1>SALT MARSH DAYS</h1>
<h2><a id="CHAPTER_III"></a>CHAPTER III<br />
<br />
THE SECOND TALE<br />THE RIVER'S SONG</h2>
<p>The gulls came in from Balti<span class='pagenum'><a id="Page_29">[Pg 29]</a></span>more
myles."<a href="#Footnote_1_1" class="fnanchor">[1]</a> They stayed.</p>
<p>The <i>Merrimac</i><a href="#Footnote_3_3" class="fnanchor">[3]</a>; "the people there [are] kind."</p>
<h2>FOOTNOTES</h2>
<div class="footnote"><p><a id="Footnote_1_1"></a><a href="#FNanchor_1_1"><span class="label">[1]</span></a> From a guide.</p></div>
<div class="footnote"><p><a id="Footnote_3_3"></a><a href="#FNanchor_3_3"><span class="label">[3]</span></a> A ship.</p></div>
<div class="blockquot"><h3>Transcriber's Notes</h3><p>Page 8: changed "gul" to "gull".</p></div>
<pre>End of the Project Gutenberg EBook of Salt Marsh Days
*** END OF THIS PROJECT GUTENBERG EBOOK SALT MARSH DAYS ***</pre>
</body></html>
"""


def test_gutenberg_html_edition(tmp_path: Path) -> None:
    path = tmp_path / "marsh-h.htm"
    path.write_bytes(GUTENBERG_HTML.encode("latin-1"))
    doc = read_document(path)
    assert [c.title for c in doc.chapters] == [
        "Dedication", "Foreword", "Chapter III: The Second Tale. The River's Song"]
    assert doc.chapters[0].paragraphs == ("TO MY BROTHER",)
    assert doc.chapters[2].paragraphs == (
        'The gulls came in from Baltimore myles." They stayed.', 'The Merrimac; "the people there [are] kind."')
    kinds = _kinds(doc)
    assert kinds["contents"] >= 9 and kinds["title page"] >= 12 and kinds["page number"] == 4
    assert kinds["footnote"] >= 6 and kinds["transcriber's note"] > 5 and kinds["image"] == 5
    assert doc.metadata.title == "Salt Marsh Days" and doc.metadata.authors == ("Nell Dune",)

    doc = read_document(path, options=ReadOptions(notes="end"))
    assert doc.chapters[2].paragraphs[-2:] == ("Footnote 1: From a guide.", "Footnote 3: A ship.")


def test_markdown_heading_anchors_and_comments(tmp_path: Path) -> None:
    text = (
        "---\ntitle: Tern 2.1 Notes\n---\n\n<!--\nA note to editors.\n-->\n\n"
        "## Introduction to Tern 2.1 {#introduction}\n\nTern 2.1 is out. <!-- CL 1234 -->\n\n"
        "## Ports {#ports}\n\n- <!-- CL 55 --> Tern runs on more machines.\n"
    )
    doc = _read(tmp_path / "tern.md", text)
    assert [(c.title, c.paragraphs) for c in doc.chapters] == [
        ("Introduction to Tern 2.1", ("Tern 2.1 is out.",)), ("Ports", ("Tern runs on more machines.",))]
    kinds = _kinds(doc)
    assert kinds["heading anchor"] == 2 and kinds["HTML comment"] == len("A note to editors. CL 1234 CL 55".split())


def test_title_case_title_lines_complete_the_chapter_title(tmp_path: Path) -> None:
    text = (
        "CHAPTER X\n\nThe Man Who Came Back\n\nHe came back in May.\n\n"
        "CHAPTER XI\n\nThe Second Tale\n\nThe River's Song\n\nIt rained.\n\n"
        "CHAPTER XII\n\nIt rained all day.\n\nThen it stopped.\n"
    )
    doc = _read(tmp_path / "novel.txt", text)
    assert [(c.title, c.paragraphs) for c in doc.chapters] == [
        ("Chapter X: The Man Who Came Back", ("He came back in May.",)),
        ("Chapter XI: The Second Tale. The River's Song", ("It rained.",)),
        ("Chapter XII", ("It rained all day.", "Then it stopped.")),
    ]
