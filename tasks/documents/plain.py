"""Plain text (.txt) -> chapters of paragraphs."""

from __future__ import annotations

import re
from pathlib import Path

from tasks.documents.files import read_text_file
from tasks.documents.model import OPENING as _OPENING
from tasks.documents.model import Document, ReadOptions, finish_document

_BLANK_LINE_RE = re.compile(r"\n[ \t\f\v]*\n")
_NUMBER_WORDS = (
    "one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|"
    "sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety|"
    "hundred"
)
_CHAPTER_NUMBER = rf"(?:\d+|[ivxlcdm]+|(?:{_NUMBER_WORDS})(?:[- ](?:{_NUMBER_WORDS}))*)"
# "Chapter 3", "CHAPTER THREE", "Chapter IV", "Chapter 12: The Storm", "Chapter 1. Loomings",
# "Prologue", "Epilogue: After". On a line of its own, at most 100 characters.
_HEADING_RE = re.compile(
    rf"^\s*(?:chapter\s+{_CHAPTER_NUMBER}|prologue|epilogue)\b(?:\s*[:.\-\u2013\u2014]\s*\S.*|\s*[.:]?)\s*$",
    re.IGNORECASE,
)
_ROMAN_RE = re.compile(r"^[ivxlcdm]+$", re.IGNORECASE)


def paragraphs_from_text(text: str) -> tuple[str, ...]:
    """Split text at blank lines into paragraphs; line breaks inside a paragraph become spaces.

    Whitespace runs collapse to one space; empty paragraphs are dropped.
    """
    out = (" ".join(block.split()) for block in _BLANK_LINE_RE.split(text.replace("\r\n", "\n")))
    return tuple(p for p in out if p)


def _tidy_title(line: str) -> str:
    """'  CHAPTER IV.  ' -> 'Chapter IV'; 'chapter 12 : the storm' keeps its words, spaces tidied."""
    title = " ".join(line.split()).rstrip(".:")
    if title.isupper():  # shouting headings become title case; Roman numerals stay upper case
        title = " ".join(w.upper() if _ROMAN_RE.match(w) else w.capitalize() for w in title.split(" "))
    return re.sub(r"\s+([:.])", r"\1", title)


def _chapters_from_plain(
    text: str, default_title: str, title_hint: str | None
) -> list[tuple[str, list[str]]]:
    """Chapters start at heading lines (see _HEADING_RE); a short line right after a heading, alone
    before a blank line, is its subtitle ("Chapter 1" + "The Boy Who Lived")."""
    lines = text.split("\n")
    found: list[tuple[str, list[str]]] = []
    title: str | None = None
    body: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if len(line) <= 100 and _HEADING_RE.match(line):
            if title is not None or any(s.strip() for s in body):
                found.append(
                    (
                        title if title is not None else title_hint or _OPENING,
                        list(paragraphs_from_text("\n".join(body))),
                    )
                )
            title, body = _tidy_title(line), []
            nxt = lines[i + 1].strip() if i + 1 < len(lines) else ""
            after = lines[i + 2].strip() if i + 2 < len(lines) else ""
            if (
                nxt
                and not after
                and len(nxt) <= 80
                and nxt[-1] not in ".!?,;\"'"
                and not _HEADING_RE.match(nxt)
            ):
                title = f"{title}: {_tidy_title(nxt)}"
                i += 1
        else:
            body.append(line)
        i += 1
    if title is None:
        return [(default_title, list(paragraphs_from_text("\n".join(body))))]
    found.append((title, list(paragraphs_from_text("\n".join(body)))))
    return found


def read(path: Path, *, title_hint: str | None, options: ReadOptions) -> Document:
    """A .txt file -> Document."""
    found = _chapters_from_plain(read_text_file(path), title_hint or path.stem, title_hint)
    return finish_document(path, found, [])
