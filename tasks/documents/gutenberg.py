"""Project Gutenberg plain text: the header, footer and licence around a book, and what the header says.

    split_gutenberg(text) -> Gutenberg | None   (None: no START marker and no footer found)

A PG text is: header (title, author, release notes) / `*** START OF THE|THIS PROJECT GUTENBERG
EBOOK ... ***` / the book / `End of the Project Gutenberg EBook of ...` (may wrap onto the next
line) and/or `*** END OF THE|THIS PROJECT GUTENBERG EBOOK ... ***` / the licence. The licence holds
its own `*** START: FULL LICENSE ***` line, so only a START line that says "START OF" opens the book.
Very old texts open the book after `*END*THE SMALL PRINT! ... *END*` instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_START_RE = re.compile(
    r"^[ \t]*(?:\*{3}[ \t]*START[ \t]+OF[ \t]+(?:THE[ \t]+|THIS[ \t]+)?PROJECT[ \t]+GUTENBERG\b.*"
    r"|\*END\*[ \t]*THE[ \t]+SMALL[ \t]+PRINT.*)$",
    re.IGNORECASE | re.MULTILINE,
)
_END_RE = re.compile(
    r"^[ \t]*(?:\*{3}[ \t]*END[ \t]+OF[ \t]+(?:THE[ \t]+|THIS[ \t]+)?PROJECT[ \t]+GUTENBERG\b"
    r"|End[ \t]+of[ \t]+(?:the[ \t]+)?Project[ \t]+Gutenberg(?:'s|\u2019s)?\b)",
    re.IGNORECASE | re.MULTILINE,
)
_HEADER_FIELD_RE = re.compile(r"^(Title|Author|Language)[ \t]*:[ \t]*(\S.*)$", re.MULTILINE)


@dataclass(frozen=True)
class Gutenberg:
    """A PG text cut in three: what precedes the book, the book, and what follows it."""

    header: str  # "" when the text has no START marker (only a footer was found)
    body: str
    footer: str
    title: str | None
    authors: tuple[str, ...]


def _header_fields(header: str) -> tuple[str | None, tuple[str, ...]]:
    """'Title: X' and 'Author: Y' lines of a PG header (the first line of each; continuation lines
    are subtitles). Several authors are written 'A and B' or 'A; B'."""
    title: str | None = None
    authors: tuple[str, ...] = ()
    for m in _HEADER_FIELD_RE.finditer(header):
        value = " ".join(m.group(2).split())
        if m.group(1).lower() == "title" and title is None:
            title = value
        elif m.group(1).lower() == "author" and not authors:
            authors = tuple(a.strip() for a in re.split(r";| and ", value) if a.strip())
    return title, authors


def split_gutenberg(text: str) -> Gutenberg | None:
    """Find the PG markers in `text` ("\\n" line ends); None when it has neither START nor footer."""
    start = _START_RE.search(text)
    body_from = 0
    header = ""
    if start:
        header = text[: start.start()]
        body_from = start.end()
        # A long marker can wrap: "*** START OF THIS PROJECT GUTENBERG EBOOK THE ADVENTURES\nOF X ***"
        if not start.group(0).rstrip().endswith("*"):
            nxt = re.match(r"\n[^\n]*\*{3}[ \t]*(?=\n|$)", text[body_from:])
            if nxt:
                body_from += nxt.end()
    end = _END_RE.search(text, body_from)
    if not start and not end:
        return None
    body = text[body_from : end.start() if end else len(text)]
    footer = text[end.start() :] if end else ""
    title, authors = _header_fields(header)
    return Gutenberg(header=header, body=body, footer=footer, title=title, authors=authors)
