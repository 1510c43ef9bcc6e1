"""tasks.documents.plain: Project Gutenberg texts and other plain text -> chapters.

The fixtures copy the shapes of real PG files (markers, header fields, Contents lists, heading
forms, wrapping) with invented wording.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tasks.documents import Document, ReadOptions, read_document
from tasks.documents.gutenberg import split_gutenberg
from tasks.documents.headings import classify_heading, tidy_title

LICENCE = """Updated editions will replace the previous one--the old editions will
be renamed. Project Gutenberg is a registered trademark.

{start}

THE FULL PROJECT GUTENBERG LICENSE
PLEASE READ THIS BEFORE YOU DISTRIBUTE OR USE THIS WORK

Section 1. General Terms of Use and Redistributing Project Gutenberg-tm
electronic works, see http://www.gutenberg.org/license for details.

Chapter 2. Not a chapter of the book but of the licence.
"""

# The 2019-style file: THIS markers, an "End of the Project Gutenberg EBook" line that wraps,
# a licence with a bare "START: FULL LICENSE" line, CRLF line ends and a byte-order mark.
OLD_STYLE = (
    """Project Gutenberg's The Lantern Keepers, by Ada Quill

This eBook is for the use of anyone anywhere at no cost and with
almost no restrictions whatsoever. www.gutenberg.net


Title: The Lantern Keepers

Author: Ada Quill

Release Date: March 3, 2003 [EBook #99999]

Character set encoding: UTF-8

*** START OF THIS PROJECT GUTENBERG EBOOK THE LANTERN KEEPERS ***



Produced by a patient volunteer and Some Helper



cover



The Lantern Keepers



by Ada Quill



Contents


   I.     The Salt Road
   II.    A Lamp in the Fog
   III.   The Last Keeper



I. THE SALT ROAD


I.

To the keeper the lamp was always _the_ lamp. He trimmed its wick
every evening before the gulls came home.

“Fog again,” said the keeper’s wife.


II.

By morning the road to the village was white with salt.



II. A LAMP IN THE FOG


 The boat came in late, with one lamp burning at its bow and
 the pilot singing under his breath.



III. THE LAST KEEPER

Nobody climbed the tower after that winter, and the lamp went out
for good.






End of the Project Gutenberg EBook of The Lantern Keepers, by
Ada Quill

*** END OF THIS PROJECT GUTENBERG EBOOK THE LANTERN KEEPERS ***

***** This file should be named 99999-0.txt or 99999-0.zip *****

Produced by a patient volunteer and Some Helper

"""
    + LICENCE.format(start="START: FULL LICENSE")
).replace("Keepers, by\n", "Keepers, by \n")  # the wrapped "End of" line keeps its trailing space

# The 2021-style file: THE markers, "Produced by:" in the header, no "End of" line, a title block
# with a bracketed subtitle, an edition note, a Contents list of two-line headings.
NEW_STYLE = (
    """The Project Gutenberg eBook of Kite Weather, by Bram Oakes

This eBook is for the use of anyone anywhere in the United States and
most other parts of the world at no cost. www.gutenberg.org.

Title: Kite Weather
       Or, The Windy Summer

Author: Bram Oakes

Release Date: May, 1995 [eBook #77777]

Produced by: Some Research

*** START OF THE PROJECT GUTENBERG EBOOK KITE WEATHER ***




Kite Weather

[OR, THE WINDY SUMMER]

by B. Oakes [Bram Oakes]

A Lighthouse Press Edition produced in 1995 by Some Research. This
text is in the public domain in the US.


Contents

 Chapter I. THE FIRST KITE
 Chapter II. STRING AND PAPER
 Chapter III. COME DOWN, COME DOWN!




Chapter I.
THE FIRST KITE


All the children ran to the hill, except one, who stayed to mend a
tail of rags.

She lived at 12, and Mr. Oakes lived at 14.




Chapter III.
COME DOWN, COME DOWN!


The kites came down in the evening, one by one.

THE END

*** END OF THE PROJECT GUTENBERG EBOOK KITE WEATHER ***

"""
    + LICENCE.format(start="*** START: FULL LICENSE ***")
)


def _read(tmp_path: Path, text: str, name: str = "book.txt", *, crlf: bool = False, bom: bool = False,
          **options: object) -> Document:
    data = text.replace("\n", "\r\n") if crlf else text
    path = tmp_path / name
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + data.encode("utf-8"))
    return read_document(path, title_hint=None, options=ReadOptions(**options))  # type: ignore[arg-type]


def _spoken(doc: Document) -> str:
    return "\n".join(p for c in doc.chapters for p in c.paragraphs)


def test_old_style_gutenberg_text(tmp_path: Path) -> None:
    doc = _read(tmp_path, OLD_STYLE, crlf=True, bom=True)
    assert [c.title for c in doc.chapters] == ["I. The Salt Road", "II. A Lamp in the Fog", "III. The Last Keeper"]
    first = doc.chapters[0].paragraphs
    # bare "I." / "II." inside the story are section breaks: not chapters, not read
    assert first == (
        "To the keeper the lamp was always the lamp. He trimmed its wick every evening before the gulls came home.",
        "“Fog again,” said the keeper’s wife.",
        "By morning the road to the village was white with salt.",
    )
    assert doc.chapters[1].paragraphs == (
        "The boat came in late, with one lamp burning at its bow and the pilot singing under his breath.",
    )
    assert doc.chapters[2].paragraphs[-1].endswith("the lamp went out for good.")
    spoken = _spoken(doc)
    for boilerplate in ("Gutenberg", "http", "www", "Produced", "cover", "Contents", "Ada Quill", "LICENSE", "_"):
        assert boilerplate not in spoken
    assert doc.metadata.title == "The Lantern Keepers" and doc.metadata.authors == ("Ada Quill",)
    assert [s.what for s in doc.skipped] == [
        "Project Gutenberg header",
        "'Produced by a patient volunteer and Some Helper'",
        "'cover'",
        "title block",
        "Contents list",
        "2 section number(s)",
        "Project Gutenberg footer and licence",
    ]
    contents = doc.skipped[4]
    assert "3 entries" in contents.reason and contents.words == 15
    assert doc.warnings == ()


def test_new_style_gutenberg_text(tmp_path: Path) -> None:
    doc = _read(tmp_path, NEW_STYLE)
    assert [c.title for c in doc.chapters] == ["Chapter I. The First Kite", "Chapter III. Come Down, Come Down!"]
    assert doc.chapters[0].paragraphs == (
        "All the children ran to the hill, except one, who stayed to mend a tail of rags.",
        "She lived at 12, and Mr. Oakes lived at 14.",
    )
    assert doc.chapters[1].paragraphs == ("The kites came down in the evening, one by one.", "THE END")
    spoken = _spoken(doc)
    for boilerplate in ("Gutenberg", "Lighthouse Press", "WINDY", "Contents", "licence", "Section 1"):
        assert boilerplate not in spoken
    assert doc.metadata.title == "Kite Weather" and doc.metadata.authors == ("Bram Oakes",)
    assert [s.what for s in doc.skipped] == [
        "Project Gutenberg header", "title block", "edition note", "Contents list",
        "Project Gutenberg footer and licence",
    ]


def test_licence_start_line_is_not_the_start_marker() -> None:
    """'*** START: FULL LICENSE ***' sits in the footer; an unanchored '*** START' search finds it."""
    pg = split_gutenberg(NEW_STYLE)
    assert pg is not None
    assert "All the children" in pg.body and "FULL LICENSE" not in pg.body
    assert pg.footer.startswith("*** END OF THE PROJECT GUTENBERG EBOOK")


def test_wrapped_start_marker_and_footer_only() -> None:
    text = (
        "Header words.\n\n*** START OF THIS PROJECT GUTENBERG EBOOK A VERY LONG TITLE THAT\nWRAPS ***\n\n"
        "Story.\n\nEnd of Project Gutenberg's A Very Long Title, by Someone\n\nLicence words.\n"
    )
    pg = split_gutenberg(text)
    assert pg is not None and pg.body.strip() == "Story." and pg.footer.startswith("End of Project")
    pg = split_gutenberg("Story only.\n\n*** END OF THE PROJECT GUTENBERG EBOOK X ***\nLicence.\n")
    assert pg is not None and pg.header == "" and pg.body.strip() == "Story only."
    assert split_gutenberg("Chapter 1\n\nA book that never mentions its publisher.\n") is None


STAVES = """*** START OF THIS PROJECT GUTENBERG EBOOK A WINTER SONG ***




Produced by Some Volunteer




A WINTER SONG

IN VERSE
BEING
A Tale of the Frost

by Nora Vale



PREFACE

I HAVE tried in this small book to raise a little
warmth for the long nights.

Your faithful Friend,
                                   N. V.
January, 1901.



CONTENTS

Stave   I: The Cold House
Stave  II: The Thaw
Stave III: The Song



STAVE I:  THE COLD HOUSE

FROST was on everything: to begin with. The pump
was frozen--the well was frozen--

and the geese were cross.


STAVE III:  THE SONG

YES! and the kettle sang.

End of the Project Gutenberg EBook of A Winter Song, by Nora Vale
"""


def test_staves_preface_and_contents_after_it(tmp_path: Path) -> None:
    doc = _read(tmp_path, STAVES, "song.txt")
    assert [c.title for c in doc.chapters] == ["Preface", "Stave I: The Cold House", "Stave III: The Song"]
    assert doc.chapters[0].paragraphs == (
        "I HAVE tried in this small book to raise a little warmth for the long nights.",
        "Your faithful Friend, N. V. January, 1901.",
    )
    # drop caps ("FROST was") stay as they are and are not headings
    assert doc.chapters[1].paragraphs[0].startswith("FROST was on everything")
    assert doc.chapters[2].paragraphs == ("YES! and the kettle sang.",)
    contents = next(s for s in doc.skipped if s.what == "Contents list")
    assert contents.chapter == "Preface" and "3 entries" in contents.reason
    assert "IN VERSE" not in _spoken(doc)


PARTS = """BOOK ONE
THE ARRIVAL

CHAPTER ONE
THE HARBOUR

Ships came in.

CHAPTER TWO
THE TOWN

People walked.

BOOK TWO
THE DEPARTURE

A short word before the second book.

CHAPTER ONE
THE ROAD

They left.
"""


def test_parts_fold_into_chapter_titles(tmp_path: Path) -> None:
    doc = _read(tmp_path, PARTS)
    assert [c.title for c in doc.chapters] == [
        "Book One: The Arrival: Chapter One: The Harbour",
        "Book One: The Arrival: Chapter Two: The Town",
        "Book Two: The Departure",  # the part's own text is a chapter of its own
        "Book Two: The Departure: Chapter One: The Road",
    ]
    assert doc.chapters[2].paragraphs == ("A short word before the second book.",)
    doc = _read(tmp_path, PARTS, part_titles="{chapter}")
    assert [c.title for c in doc.chapters][:2] == ["Chapter One: The Harbour", "Chapter Two: The Town"]
    doc = _read(tmp_path, "PART I\n\nChapter 1\n\nOne.\n\nPART II\n\nChapter 1\n\nTwo.\n",
                part_titles="{part}, {chapter}")
    assert [c.title for c in doc.chapters] == ["Part I, Chapter 1", "Part II, Chapter 1"]


def test_contents_with_page_numbers_and_headings_on_their_own(tmp_path: Path) -> None:
    text = (
        "TABLE OF CONTENTS\n\nCHAPTER I. The Start .......... 1\n\nCHAPTER II. The Middle ...... 9\n\n"
        "EPILOGUE ........ 20\n\n\n"
        "PROLOGUE\n\nBefore it all.\n\n"
        "CHAPTER I.\n\nTHE START\n\nIt began.\n\nCHAPTER II\n\nIt went on.\n\nEpilogue: After\n\nIt ended.\n"
    )
    doc = _read(tmp_path, text)
    assert [c.title for c in doc.chapters] == ["Prologue", "Chapter I. The Start", "Chapter II", "Epilogue: After"]
    assert [c.paragraphs for c in doc.chapters] == [("Before it all.",), ("It began.",), ("It went on.",),
                                                    ("It ended.",)]


def test_illustrations_emphasis_and_breaks(tmp_path: Path) -> None:
    text = (
        "Chapter 1\n\n[Illustration]\n\nShe said _never_ and *meant* it.\n\n"
        "[Illustration: A fox on a\nwall]\n\n*       *       *       *       *\n\nA snake_case_name stays.\n"
    )
    doc = _read(tmp_path, text)
    assert doc.chapters[0].paragraphs == ("She said never and meant it.", "A snake_case_name stays.")
    assert any(s.what == "2 illustration marker(s)" for s in doc.skipped)
    doc = _read(tmp_path, text, image_alt=True)
    assert "A fox on a wall" in doc.chapters[0].paragraphs


def test_keep_reads_publisher_matter(tmp_path: Path) -> None:
    doc = _read(tmp_path, OLD_STYLE, keep=frozenset({"license", "toc", "titlepage"}))
    titles = [c.title for c in doc.chapters]
    assert titles[0] == "Opening" and titles[-1] == "Project Gutenberg License"
    assert "The Lantern Keepers by Ada Quill" in " ".join(doc.chapters[0].paragraphs)
    assert "I. The Salt Road" in " ".join(doc.chapters[0].paragraphs)  # the Contents, read
    assert "FULL PROJECT GUTENBERG LICENSE" in " ".join(doc.chapters[-1].paragraphs)
    doc = _read(tmp_path, NEW_STYLE, keep=frozenset({"toc"}))  # " Chapter I. THE FIRST KITE" entries
    assert [c.title for c in doc.chapters] == ["Opening", "Chapter I. The First Kite", "Chapter III. Come Down, Come Down!"]
    assert doc.chapters[0].paragraphs[0] == "Contents"


def test_bare_numerals_are_chapters_when_nothing_else_is(tmp_path: Path) -> None:
    doc = _read(tmp_path, "I.\n\nFirst part.\n\nII.\n\nSecond part.\n", "parts.txt")
    assert [(c.title, c.paragraphs) for c in doc.chapters] == [("I", ("First part.",)), ("II", ("Second part.",))]
    # a preface or parts do not make them section breaks; numbered chapters do
    doc = _read(tmp_path, "PREFACE\n\nA word.\n\nBOOK I\n\nI.\n\nOne.\n\nII.\n\nTwo.\n", "parts.txt")
    assert [c.title for c in doc.chapters] == ["Preface", "Book I: I", "Book I: II"]


def test_heading_repeated_under_itself_is_read_once(tmp_path: Path) -> None:
    text = "I. THE DARK TOWER\n\nThe Dark Tower\n\nText.\n\nII. THE WELL\n\nThe well was short.\n"
    doc = _read(tmp_path, text)
    assert [(c.title, c.paragraphs) for c in doc.chapters] == [("I. The Dark Tower", ("Text.",)),
                                                              ("II. The Well", ("The well was short.",))]
    assert doc.warnings == ()


def test_heading_above_a_hard_wrapped_paragraph(tmp_path: Path) -> None:
    text = "CHAPTER I\nIt was a cold night and the rain fell on the roofs of the town all\nthrough the dark.\n"
    doc = _read(tmp_path, text)
    assert [(c.title, c.paragraphs) for c in doc.chapters] == [
        ("Chapter I", ("It was a cold night and the rain fell on the roofs of the town all through the dark.",)),
    ]


def test_no_headings_is_one_chapter_and_title_hint_names_it(tmp_path: Path) -> None:
    path = tmp_path / "story.txt"
    path.write_text("Just a story.\n\nWith two paragraphs.\n", encoding="utf-8")
    assert [c.title for c in read_document(path).chapters] == ["story"]
    assert [c.title for c in read_document(path, title_hint="Tale").chapters] == ["Tale"]


@pytest.mark.parametrize(
    ("raw", "title"),
    [
        ("MARLEY'S GHOST", "Marley's Ghost"),
        ("THE RED-HEADED LEAGUE", "The Red-Headed League"),
        ("THE END OF IT", "The End of It"),
        ("WHEN WENDY GREW UP", "When Wendy Grew Up"),
        ("“HOOK OR ME THIS TIME”", "“Hook or Me This Time”"),
        ("HENRY VIII AND I", "Henry VIII and I"),
        ("A Scandal in Bohemia", "A Scandal in Bohemia"),
    ],
)
def test_tidy_title(raw: str, title: str) -> None:
    assert tidy_title(raw) == title


def test_heading_forms() -> None:
    def title(*lines: str) -> str | None:
        heading = classify_heading(list(lines))
        return heading.title if heading else None

    assert title("STAVE I:  MARLEY'S GHOST") == "Stave I: Marley's Ghost"
    assert title("STAVE ONE") == "Stave One"
    assert title("Chapter I.", "PETER BREAKS THROUGH") == "Chapter I. Peter Breaks Through"
    assert title("Chapter 13", "The Boy Who Lived") == "Chapter 13: The Boy Who Lived"
    assert title("XII. THE ADVENTURE OF THE COPPER BEECHES") == "XII. The Adventure of the Copper Beeches"
    assert title("Chapter 3 of the report said no.") is None
    assert title("I. went home.") is None  # a numbered title must be in capitals
    assert title("MARLEY was dead: to begin with.") is None
    assert title("Introduction", "This book is about kites and the wind.", "More words.") is None
    bare = classify_heading(["II."])
    assert bare is not None and bare.kind == "section"
    part = classify_heading(["BOOK THE FIRST"])
    assert part is not None and part.kind == "part" and part.title == "Book The First"


NOTES = """CHAPTER 1. Loomings.

[Transcriber's Note: Spelling as in the original.]

The ship sailed at dawn.[1] It came back in June.[2]

[Footnote 1: A brig, in fact.]

[Footnote 2: Of the next
year.

A second paragraph of the same note.]

CHAPTER 2

Home again.
"""


def test_gutenberg_footnotes_and_transcriber_notes(tmp_path: Path) -> None:
    doc = _read(tmp_path, NOTES)
    assert [(c.title, c.paragraphs) for c in doc.chapters] == [
        ("Chapter 1. Loomings", ("The ship sailed at dawn. It came back in June.",)),
        ("Chapter 2", ("Home again.",)),
    ]
    assert {s.what for s in doc.skipped} >= {"2 footnote(s)", "'[Transcriber's Note: Spelling as in the original.]'"}
    doc = _read(tmp_path, NOTES, notes="end")
    assert doc.chapters[0].paragraphs == (
        "The ship sailed at dawn. It came back in June.",
        "Footnote 1: A brig, in fact.",
        "Footnote 2: Of the next year. A second paragraph of the same note.",
    )


_WORD = st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=2, max_size=9)


@st.composite
def _gutenberg_text(draw: st.DrawFn) -> tuple[str, str]:
    """A PG file of random chapters in either marker form; returns (text, its last paragraph)."""
    the = draw(st.sampled_from(["THE", "THIS"]))
    blocks: list[str] = []
    for n in range(draw(st.integers(1, 4))):
        blocks.append(draw(st.sampled_from([f"CHAPTER {n + 1}", f"Chapter {n + 1}.\nA TITLE", f"{'I' * (n + 1)}."])))
        for _ in range(draw(st.integers(1, 3))):
            lines = [" ".join(draw(st.lists(_WORD, min_size=1, max_size=10))) for _ in range(draw(st.integers(1, 3)))]
            blocks.append("\n".join(lines) + ".")
    last = " ".join(blocks[-1].split())
    footer = draw(st.sampled_from([
        f"End of the Project Gutenberg EBook of X, by \nY\n\n*** END OF {the} PROJECT GUTENBERG EBOOK X ***\n",
        f"*** END OF {the} PROJECT GUTENBERG EBOOK X ***\n",
    ]))
    text = (
        f"The Project Gutenberg EBook of X\n\nTitle: X\n\nAuthor: Y\n\n*** START OF {the} PROJECT GUTENBERG EBOOK X ***"
        f"\n\nProduced by Z\n\n" + "\n\n".join(blocks) + "\n\n\n" + footer
        + LICENCE.format(start=draw(st.sampled_from(["START: FULL LICENSE", "*** START: FULL LICENSE ***"])))
    )
    return text, last


@settings(deadline=None, max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(case=_gutenberg_text(), crlf=st.booleans())
def test_gutenberg_boilerplate_never_read(case: tuple[str, str], crlf: bool) -> None:
    import tempfile

    text, last = case
    with tempfile.TemporaryDirectory() as folder:
        doc = _read(Path(folder), text, crlf=crlf, bom=crlf)
    spoken = _spoken(doc)
    for boilerplate in ("Gutenberg", "GUTENBERG", "LICENSE", "Produced", "http", "Section 1", "Title:"):
        assert boilerplate not in spoken
    assert spoken.endswith(last)
    assert all(p.strip() for c in doc.chapters for p in c.paragraphs)
