"""Chapter titles as they are spoken: numbers in words, each part of the title a sentence of its own.

    "Chapter IV"                                   -> "Chapter Four."
    "I. A Scandal in Bohemia"                      -> "One. A Scandal in Bohemia."
    "XII: The Attack"                              -> "Twelve. The Attack."
    "STAVE I:  MARLEY'S GHOST"                     -> "Stave One. Marley's Ghost."
    "Part I: The Old Buccaneer: I: At the Admiral Benbow"
                                                   -> "Part One. The Old Buccaneer. One. At the Admiral Benbow."
    "Chapter 12: The Storm"                        -> "Chapter Twelve. The Storm."
"""

from __future__ import annotations

import re

from tasks.text.casing import title_case
from tasks.text.clean import clean_unicode
from tasks.text.normalize import normalize_text
from tasks.text.roman import MAX_STRUCTURE, STRUCTURE_WORDS, cardinal_title, roman_value
from tasks.text.urls import UrlMode

__all__ = ["normalize_heading"]

_WORD = "|".join(re.escape(w) for w in STRUCTURE_WORDS)
# A numbered part: "Chapter IV", "CHAPTER 3", "XII", "12", optionally followed by "." and more title.
_NUMBERED_RE = re.compile(rf"^(?:((?i:{_WORD}))\s+)?([IVXLCDM]+|[ivxlcdm]+|\d{{1,3}})(?:\.(?=\s|$)|$)\s*(.*)$")
_PART_SPLIT_RE = re.compile(r"\s*:\s+|\s*:$|\s+[-\u2013\u2014]+\s+")


def _number_part(word: str | None, numeral: str) -> str | None:
    """ "Chapter" + "IV" -> "Chapter Four"; None when `numeral` is no number here."""
    if numeral.isdigit():
        value: int | None = int(numeral)
    else:
        value = roman_value(numeral.upper())
        if numeral.islower() and not word:
            value = None  # a lone "i" or "v" is a word
    if value is None or value > MAX_STRUCTURE:
        return None
    words = cardinal_title(value)
    return f"{word.capitalize()} {words}" if word else words


def _pieces(title: str) -> list[str]:
    """The parts of a title that are spoken as sentences of their own."""
    out: list[str] = []
    for part in _PART_SPLIT_RE.split(title):
        part = part.strip()
        while part:
            m = _NUMBERED_RE.match(part)
            spoken = _number_part(m.group(1), m.group(2)) if m else None
            if m is None or spoken is None:
                out.append(part)
                break
            out.append(spoken)
            part = m.group(3).strip()
    return out


def normalize_heading(title: str, *, urls: UrlMode = "domain", language: str = "en") -> str:
    """A chapter title in its spoken form (see the module docstring): the number and each part of
    the title end with a full stop, shouting capitals become title case, and the rest follows
    normalize_text. An empty title gives ""."""
    text = clean_unicode(title).replace("[", "").replace("]", "")
    spoken: list[str] = []
    for piece in _pieces(text):
        words = normalize_text(title_case(piece), urls=urls, language=language).strip(" ,;:")
        if not words:
            continue
        if words[-1] not in ".!?":
            words += "."
        spoken.append(words[0].upper() + words[1:])
    return " ".join(spoken)
