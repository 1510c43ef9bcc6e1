"""tasks.documents.markdown: Markdown (Jekyll/kramdown lessons, Pandoc manuscripts) -> chapters.

The fixtures copy the shapes of real Markdown books (front matter, Liquid tags, wrapped links,
footnotes defined mid-document, tables in HTML wrappers, indented code) with invented wording.
"""

from __future__ import annotations

import re
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tasks.documents import Document, ReadOptions, read_document

BOOK = """---
title: "Lamps: A Short History"
authors:
  - Ida Wren
  - Tom Ash
abstract: "An abstract that is never read."
sequence: 2
---

{% include toc.html %}



# Beginnings

Oil lamps came first&mdash;long before gas.[^1] See the [museum
catalogue](https://example.org/catalogue) and [the
archive][arch] for _more_ on **wicks**.

Inline code such as `<www.example.org>` and `*stars*` is not markup.

{% include figure.html filename="lamp.png" alt="A brass lamp on a shelf" caption="Lamp, 1850" %}

![A glass chimney](chimney.png)

## Wicks

Wicks were cut by hand.

    indented code with [a link](http://example.com/code) and
    # Not a heading

```python
print("fenced code")
```

<div class="table-wrapper" markdown="block">
<WS>
| kind | year |
| ---- | ---- |
| oil  | 1800 |
<WS>
</div>

<table class="dataframe"><tr><td>raw table cell</td></tr></table>

<div class="alert">
A raw note with <a href='https://example.com/q'>a quoted link</a>.
</div>

[^mid]: A definition in the middle
  with an indented line
and a lazy one.

# Gas Light

Gas came later[^mid] and brighter^[An inline footnote.].[^1]

# Endnotes

[^1]: The first note, with [a link](https://example.com/n).

[arch]: https://example.org/archive
""".replace("<WS>", "  ")  # whitespace-only lines inside the table wrapper, as Jekyll lessons have them


def _read(tmp_path: Path, text: str, name: str = "book.md", **options: object) -> Document:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return read_document(path, options=ReadOptions(**options))  # type: ignore[arg-type]


def _spoken(doc: Document) -> str:
    return "\n".join(p for c in doc.chapters for p in c.paragraphs)


def test_markdown_book(tmp_path: Path) -> None:
    doc = _read(tmp_path, BOOK)
    assert [c.title for c in doc.chapters] == ["Beginnings", "Gas Light"]  # "Endnotes" is not a chapter
    assert doc.chapters[0].paragraphs == (
        "Oil lamps came first\u2014long before gas. See the museum catalogue and the archive for more on wicks.",
        "Inline code such as www.example.org and stars is not markup.",
        "Wicks",  # a sub-heading is read as a short paragraph; the chapter heading is not
        "Wicks were cut by hand.",
        "A raw note with a quoted link.",
    )
    assert doc.chapters[1].paragraphs == ("Gas came later and brighter.",)
    assert doc.metadata.title == "Lamps: A Short History"
    assert doc.metadata.authors == ("Ida Wren", "Tom Ash")
    assert doc.metadata.description == "An abstract that is never read."
    spoken = _spoken(doc)
    for markup in ("http", "[", "](", "*", "`", "{%", "#", "_", "&mdash;", "abstract", "fenced", "raw table",
                   "oil", "chimney", "brass", "first note", "Endnotes"):
        assert markup not in spoken, markup
    assert [s.what for s in doc.skipped] == [
        "front matter", "code block", "code block (python)", "table (2 rows)", "HTML table",
        "'Endnotes' heading", "1 Liquid/kramdown tag(s)", "3 footnote(s)", "2 image(s)",
    ]
    assert doc.skipped[3].chapter == "Beginnings"
    assert len(doc.warnings) == 2 and all("book.md" in w and "was not read" in w for w in doc.warnings)


def test_notes_at_chapter_end_and_image_alt(tmp_path: Path) -> None:
    doc = _read(tmp_path, BOOK, notes="end", image_alt=True)
    first, second = (c.paragraphs for c in doc.chapters)
    assert "A brass lamp on a shelf" in first and "A glass chimney" in first
    assert first[-1] == "Footnote 1: The first note, with a link."
    # numbered in the order first referred to; a note read once, where it is first referred to
    assert second == (
        "Gas came later and brighter.",
        "Footnote 2: A definition in the middle with an indented line and a lazy one.",
        "Footnote 3: An inline footnote.",
    )
    assert not any("footnote" in s.what for s in doc.skipped)


def test_title_heading_and_setext_chapters(tmp_path: Path) -> None:
    text = "The Book\n========\n\nIntro.\n\nPart A\n------\n\nText a.\n\nPart B\n------\n\nText b.\n"
    doc = _read(tmp_path, text)
    assert [(c.title, c.paragraphs) for c in doc.chapters] == [
        ("The Book", ("Intro.",)), ("Part A", ("Text a.",)), ("Part B", ("Text b.",)),
    ]
    assert doc.metadata.title == "The Book"
    assert any(s.what == "title heading 'The Book'" for s in doc.skipped)


def test_only_second_level_headings(tmp_path: Path) -> None:
    text = "{% include toc.html %}\n\n## One\n\nFirst, hard\nwrapped.\n\n## Two\n\nSecond.\n\n[^1]: Unused.\n"
    doc = _read(tmp_path, text)
    assert [(c.title, c.paragraphs) for c in doc.chapters] == [("One", ("First, hard wrapped.",)),
                                                              ("Two", ("Second.",))]


def test_heading_repeated_as_first_paragraph_is_not_read(tmp_path: Path) -> None:
    doc = _read(tmp_path, "# One\n\n**One.**\n\nText.\n\n# Two\n\nTwo words, then more.\n")
    assert [(c.title, c.paragraphs) for c in doc.chapters] == [("One", ("Text.",)),
                                                              ("Two", ("Two words, then more.",))]


def test_front_matter_that_is_not_yaml_mapping_is_text(tmp_path: Path) -> None:
    doc = _read(tmp_path, "---\nJust a line\n---\n\nText.\n")
    assert [(c.title, c.paragraphs) for c in doc.chapters] == [("Just a line", ("Text.",))]
    doc = _read(tmp_path, "---\ntitle: [unclosed\n---\n\nText.\n", "broken.md")
    assert doc.chapters[0].paragraphs == ("Text.",)
    assert "broken.md" in doc.warnings[0] and "front matter" in doc.warnings[0]


def test_autolinks_and_liquid_output_tags(tmp_path: Path) -> None:
    doc = _read(tmp_path, "See <https://example.net/page> and {{ site.title }} {: .note}\n")
    # an autolink's text is its address: left in the prose for the text normaliser's URL rule
    assert doc.chapters[0].paragraphs == ("See https://example.net/page and",)


def test_math_is_not_read_but_prices_are(tmp_path: Path) -> None:
    doc = _read(tmp_path, "Tea cost $5 and coffee $10.\n\nThe rule $a^2+b^2$ holds.\n\n$$\nc^2\n$$\n")
    assert doc.chapters[0].paragraphs == ("Tea cost $5 and coffee $10.", "The rule holds.")
    assert {s.what for s in doc.skipped} == {"math", "1 inline formula(s)"}


# --- property: random markup never reaches the paragraphs --------------------------------------

_WORD = st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=8)
_URL = st.builds(lambda a, b: f"https://{a}.example/{b}_{a}*x", _WORD, _WORD)


def _words(draw: st.DrawFn, n: int = 3) -> str:
    return " ".join(draw(st.lists(_WORD, min_size=1, max_size=n)))


@st.composite
def _markdown(draw: st.DrawFn) -> str:
    """A document of random, well-formed markup around plain words."""
    notes: list[str] = []
    refs: list[str] = []

    def inline() -> str:
        kind = draw(st.sampled_from(
            ["word", "em", "strong", "under", "link", "wrapped", "ref", "image", "code", "note", "liquid", "html"]
        ))
        w = _words(draw)
        if kind == "em":
            return f"*{w}*"
        if kind == "strong":
            return f"**{w}**"
        if kind == "under":
            return f"_{w}_"
        if kind == "link":
            return f"[{w}]({draw(_URL)})"
        if kind == "wrapped":
            return f"[{w}\n{_words(draw)}]({draw(_URL)} \"{_words(draw)}\")"
        if kind == "ref":
            label = f"r{len(refs)}"
            refs.append(f"[{label}]: {draw(_URL)}")
            return f"[{w}][{label}]"
        if kind == "image":
            return f"![{w}]({draw(_URL)})"
        if kind == "code":
            return f"`*{w}* <{w}> [{w}]`"
        if kind == "note":
            notes.append(f"[^n{len(notes)}]: {w} [{w}]({draw(_URL)})")
            return f"{w}[^n{len(notes) - 1}]"
        if kind == "liquid":
            return f'{{% include figure.html filename="{draw(_URL)}" alt="{w}" %}}'
        if kind == "html":
            return f"<a href='{draw(_URL)}'>{w}</a>"
        return w

    blocks: list[str] = []
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(["para", "heading", "list", "quote", "fence", "indent", "table", "htmlblock"]))
        text = " ".join(inline() for _ in range(draw(st.integers(1, 6))))
        if kind == "heading":
            blocks.append(f"{'#' * draw(st.integers(1, 3))} {_words(draw)}")
        elif kind == "list":
            blocks.append(f"- {text}\n- {_words(draw)}")
        elif kind == "quote":
            blocks.append(f"> {text}")
        elif kind == "fence":
            blocks.append(f"```\n{text}\n{draw(_URL)} *x* [y](z)\n```")
        elif kind == "indent":
            # a paragraph first: after a list, an indented line would continue the list item
            blocks.append(f"{_words(draw)}\n\n    {draw(_URL)} [{_words(draw)}]({draw(_URL)})")
        elif kind == "table":
            blocks.append(f"| a | b |\n|---|---|\n| {draw(_URL)} | `x` |")
        elif kind == "htmlblock":
            blocks.append(f"<table><tr><td>{draw(_URL)}</td></tr></table>")
        else:
            blocks.append(text)
    blocks.append("Closing words.")
    return "\n\n".join([*blocks, *notes, *refs]) + "\n"


@settings(deadline=None, max_examples=80, suppress_health_check=[HealthCheck.too_slow])
@given(text=_markdown(), end_notes=st.booleans(), image_alt=st.booleans())
def test_markup_and_urls_never_reach_the_paragraphs(text: str, end_notes: bool, image_alt: bool) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        doc = _read(Path(folder), text, notes="end" if end_notes else "skip", image_alt=image_alt)
    for paragraph in (p for c in doc.chapters for p in c.paragraphs):
        for markup in ("[", "](", "*", "`", "{%", "%}", "<", "http", "example"):
            assert markup not in paragraph, (markup, paragraph, text)
        assert not re.search(r"(?:^|\s)_|_(?:\s|$)", paragraph), (paragraph, text)
    assert "Closing words." in _spoken(doc)
