"""Chapter and part heading lines of plain text: what they look like and how their titles read.

    classify_heading(lines) -> Heading | None     (lines: one paragraph of text, stripped)
    tidy_title(text)        -> str                 ("MARLEY'S GHOST" -> "Marley's Ghost")
    heading_key(text)       -> str                 (compares a Contents entry with a heading)

Forms recognised: `Chapter 1`, `CHAPTER ONE`, `Chapter IV.` with its title on the next line,
`Chapter 12: The Storm`, `STAVE I:  MARLEY'S GHOST`, `Letter 3`, `BOOK ONE` / `PART II` /
`VOLUME I` (parts, above chapters), `I. A SCANDAL IN BOHEMIA` (a numeral and a title in
capitals), `Preface`, `Prologue`, `Epilogue`, `Introduction`, ... and bare numerals (`II.`), which
are section breaks inside a chapter unless a text has no other headings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from titlecase import titlecase

_NUMBER_WORDS = (
    "one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|"
    "sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety|"
    "hundred"
)
_ORDINALS = (
    "first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|eleventh|twelfth|last|final"
)
_NUMBER = (
    rf"(?:\d+|[ivxlcdm]+|(?:the[ \t]+)?(?:{_ORDINALS})|(?:{_NUMBER_WORDS})(?:[- ](?:{_NUMBER_WORDS}))*)"
)
_CHAPTER_WORDS = ("chapter", "stave", "letter", "canto")
_PART_WORDS = ("book", "part", "volume")
# "Chapter 3", "STAVE I:  MARLEY'S GHOST", "Book the First", "Chapter 1. Loomings"
_NUMBERED_RE = re.compile(
    rf"^(?P<kw>{'|'.join(_CHAPTER_WORDS + _PART_WORDS)})[ \t]+(?P<num>{_NUMBER})(?![\w'\u2019])(?P<rest>.*)$",
    re.IGNORECASE,
)
_NAMED_RE = re.compile(
    r"^(?P<kw>preface|prologue|epilogue|introduction|foreword|afterword|prelude|interlude|postscript)"
    r"(?![\w'\u2019])(?P<rest>.*)$",
    re.IGNORECASE,
)
# "XII. THE ADVENTURE OF THE COPPER BEECHES": upper-case numeral, full stop, a title in capitals
_CAPS_TITLE_RE = re.compile(r"^(?P<num>[IVXLCDM]+|\d{1,3})\.[ \t]+(?P<title>\S.*)$")
_BARE_NUMERAL_RE = re.compile(r"^(?:[IVXLCDM]+|\d{1,3})\.?$")
_ROMAN_RE = re.compile(r"^M{0,4}(?:CM|CD|D?C{0,3})(?:XC|XL|L?X{0,3})(?:IX|IV|V?I{0,3})$")
_NOT_ROMAN = frozenset({"MIX", "DIM", "MID", "LID", "DID", "MILD", "CIVIL", "LIVID", "VIVID", "DI", "MI", "LI"})
_SEPARATORS = ".:-\u2013\u2014"
MAX_TITLE_CHARS = 80

HeadingKind = Literal["chapter", "part", "section"]


@dataclass(frozen=True)
class Heading:
    """A heading found at the top of a paragraph: its kind, its spoken title, how many of the
    paragraph's lines it took, and whether it stands alone (the whole paragraph)."""

    kind: HeadingKind
    title: str
    lines: int
    has_title: bool  # the heading carries words besides its number ("Chapter 3" has none)
    numbered: bool = True  # "Chapter 3", "I. A TITLE"; not "Preface" (nor a part)


def _is_roman(word: str) -> bool:
    return bool(word) and word.upper() not in _NOT_ROMAN and bool(_ROMAN_RE.match(word.upper()))


def _keep_roman(word: str, **_: object) -> str | None:
    """titlecase callback: Roman numerals (II, XIV) stay upper case; the pronoun I too."""
    bare = word.strip(".,:;!?")
    if bare.upper() == "I" or (len(bare) >= 2 and _is_roman(bare)):
        return word.upper()
    return None


def tidy_title(text: str) -> str:
    """Whitespace tidied; a title in capitals becomes title case ("THE RED-HEADED LEAGUE" ->
    "The Red-Headed League"); mixed-case titles are kept as written."""
    title = " ".join(text.split())
    if any(c.isalpha() for c in title) and not any(c.islower() for c in title):
        title = titlecase(title.lower(), callback=_keep_roman)
    return title


def _number(num: str) -> str:
    word = " ".join(num.split())
    if _is_roman(word):
        return word.upper()
    return word if word.isdigit() else titlecase(word.lower())


def _rest_title(rest: str) -> tuple[str, str] | None:
    """What follows a heading's number: ("", "") nothing; (sep, title) for ". Loomings" or
    ":  MARLEY'S GHOST"; None when it is prose ("Chapter 3 of the report said no")."""
    rest = rest.strip()
    if rest in ("", ".", ":"):
        return rest, ""
    if rest[0] in _SEPARATORS and len(rest) <= MAX_TITLE_CHARS + 2:
        title = rest[1:].strip()
        return (rest[0], title) if title else (rest[0], "")
    return None


def _subtitle(line: str, *, more: bool) -> bool:
    """A line under a heading that is its title: short, and in capitals, or (the last line of its
    paragraph) a few words without end punctuation. With `more` lines after it, only capitals will
    do: a mixed-case line there is the first line of a hard-wrapped paragraph."""
    if not line or len(line) > MAX_TITLE_CHARS:
        return False
    named = classify_heading([line], alone=True)
    if named is not None and (named.kind != "chapter" or named.numbered):
        return False  # "CHAPTER I" / "INTRODUCTION": a named heading may be a chapter's title
    if any(c.isalpha() for c in line) and not any(c.islower() for c in line):
        return True
    return not more and len(line.split()) <= 10 and line[-1] not in ".!?,;:\"'\u201d\u2019"


def _join(head: str, sep: str, title: str) -> str:
    """'Chapter I' + '.' + 'Peter Breaks Through' -> 'Chapter I. Peter Breaks Through'."""
    if not title:
        return head
    if title.endswith(".") and not title.endswith(".."):
        title = title[:-1]  # "Chapter 1. Loomings." -> "Chapter 1. Loomings"
    if sep in (".", ":"):
        return f"{head}{sep} {title}"
    return f"{head}: {title}"


def classify_heading(lines: list[str], *, alone: bool | None = None) -> Heading | None:
    """The heading at the top of a paragraph (its stripped lines), or None.

    Keyword headings (`Chapter 3`) may head a longer paragraph; the other forms must be the whole
    paragraph (with its title line, if any). `alone` forces that check for one line."""
    if not lines:
        return None
    first = " ".join(lines[0].split())
    standalone = len(lines) == 1 if alone is None else alone
    if len(first) > MAX_TITLE_CHARS + 20:
        return None
    m = _NUMBERED_RE.match(first) or _NAMED_RE.match(first)
    if m:
        rest = _rest_title(m.group("rest"))
        if rest is None:
            return None
        sep, title = rest
        kw = m.group("kw").lower()
        head = kw.capitalize() + (f" {_number(m.group('num'))}" if "num" in m.groupdict() else "")
        kind: HeadingKind = "part" if kw in _PART_WORDS else "chapter"
        used = 1
        if not title and len(lines) >= 2 and _subtitle(" ".join(lines[1].split()), more=len(lines) > 2):
            title, used = " ".join(lines[1].split()), 2
            third = " ".join(lines[2].split()) if len(lines) >= 3 else ""
            if third and not any(c.islower() for c in title + third) and _subtitle(third, more=len(lines) > 3):
                # a title of two lines in capitals: two sentences ("The Second Tale. The River's Song")
                title, used = f"{title.rstrip('.')}. {third}", 3
        if "num" not in m.groupdict() and len(lines) > used and alone is None:
            return None  # "Introduction" heading a longer paragraph is prose
        numbered = "num" in m.groupdict() and kind == "chapter"
        return Heading(kind, _join(head, sep, tidy_title(title)), used, bool(title), numbered)
    if not standalone:
        return None
    m = _CAPS_TITLE_RE.match(first)
    if m and any(c.isalpha() for c in m.group("title")) and not any(c.islower() for c in m.group("title")):
        if len(m.group("title")) <= MAX_TITLE_CHARS:
            return Heading("chapter", f"{m.group('num')}. {tidy_title(m.group('title'))}", 1, True)
    if _BARE_NUMERAL_RE.match(first):
        return Heading("section", first.rstrip("."), 1, False)
    return None


def heading_key(text: str) -> str:
    """Lower case, letters and digits only, page numbers and dot leaders dropped: 'Stave   I:
    Marley's Ghost ..... 5' and "STAVE I:  MARLEY'S GHOST" give the same key."""
    text = re.sub(r"(?:\s*[.\u00b7\u2026]{2,}\s*|\s{2,})\d+\s*$", "", text.casefold().replace("\u2019", "'"))
    return " ".join(re.sub(r"[^\w']+", " ", text).split())
