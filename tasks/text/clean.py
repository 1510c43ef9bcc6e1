"""Character-level cleaning: Unicode, invisible characters, quotes, whitespace and dashes.

This is the first step of the spoken form (tasks/text/normalize.py) and the whole of what an engine
that must clean a string itself may want: `clean_text` never adds words.
"""

from __future__ import annotations

import re
import unicodedata

# Control characters that are not whitespace (str.isspace() ones such as \n, \t, \x1c-\x1f, \x85
# become spaces later), lone surrogates (they cannot be encoded), and invisible characters that
# confuse engines: zero-width space, word joiner, BOM, soft hyphen. Zero-width (non-)joiners are
# kept: emoji sequences and Persian/Indic spelling need them.
_DROP_RE = re.compile("[\x00-\x08\x0e-\x1b\x7f-\x84\x86-\x9f\ud800-\udfff\u200b\u2060\ufeff\u00ad]")
# Marks that are never spoken, removed before NFKC (which would turn "™" into "TM" and "¹" into "1"):
# trade, registered and copyright signs, superscript digits (footnote marks), the return arrow of
# endnote backlinks, the pilcrow, daggers, the reference mark and the sound-recording copyright sign.
_UNSPOKEN_RE = re.compile("[\u2122\u00ae\u00a9\u2117\u00b9\u00b2\u00b3\u2070\u2074-\u2079\u21a9\u21aa\u00b6\u2020\u2021\u203b]\ufe0f?")
_ANSI_RE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]")  # a terminal colour code pasted with the text: "\x1b[0m"
_QUOTES = str.maketrans(
    {
        "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'", "\u2035": "'",
        "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u2033": '"', "\u2036": '"',
        "\u00ab": '"', "\u00bb": '"', "\u2039": "'", "\u203a": "'",
        "\u2212": "-",  # minus sign
        "\u2044": "/",  # fraction slash: NFKC writes "½" as "1⁄2"
    }
)  # fmt: skip
WS_RE = re.compile(r"\s+")
# A number range ("1990–1995") keeps a plain hyphen; every other dash becomes a pause.
_RANGE_DASH_RE = re.compile(r"(?<=\d)[\u2012\u2013](?=\d)")
_DASH_RE = re.compile(r" ?(?:[\u2012-\u2015\u2e3a\u2e3b\ufe58]+|-{2,}) ?")
_OPENERS = "([{"
_PAUSES = ",.;:!?"
_CLOSERS = ",.;:!?)]}"


def _dash_to_pause(m: re.Match[str]) -> str:
    """A dash becomes ", " (every engine pauses at a comma), or nothing where a pause is already there."""
    text = m.string
    prev = text[m.start() - 1] if m.start() > 0 else ""
    nxt = text[m.end()] if m.end() < len(text) else ""
    if prev == "" or prev in _OPENERS or prev in _PAUSES:
        return "" if prev == "" or prev in _OPENERS else " "  # "—Hello", "(—", "said.— Then"
    if prev in "\"'" and (m.start() < 2 or text[m.start() - 2] == " "):
        return ""  # an opening quote: '"—Hello"'
    if prev in "\"'" and text[m.start() - 2] in _PAUSES + "-\u2012\u2013\u2014\u2015\u2e3a\u2e3b\ufe58":
        return " "  # after a quotation that a pause ended: '"No,"—he began' -> '"No," he began'
    if nxt == "" or nxt in _CLOSERS:
        return ""  # "I was—." / trailing "I was—"
    if nxt in "\"'":
        after = text[m.end() + 1] if m.end() + 1 < len(text) else ""
        if after == "" or after == " " or after in _CLOSERS or _DASH_RE.match(text, m.end() + 1):
            return ","  # a closing quote: '"Wait—" he said' -> '"Wait," he said', '"No—"—he' -> '"No," he'
    return ", "


def clean_unicode(raw: str) -> str:
    """Unicode NFKC, terminal escape codes, unspoken marks and invisible characters removed, curly quotes made straight,
    whitespace collapsed to single spaces and stripped. No dash or word is changed."""
    text = _UNSPOKEN_RE.sub("", _DROP_RE.sub("", _ANSI_RE.sub("", raw)))
    text = unicodedata.normalize("NFKC", text)  # also "…" -> "...", non-breaking space -> " "
    text = _DROP_RE.sub("", text.translate(_QUOTES))
    return WS_RE.sub(" ", text).strip()


def dashes_to_pauses(text: str) -> str:
    """Em/en dashes and "--" -> ", " (a pause every engine reads); a dash between two digits -> "-"."""
    text = _RANGE_DASH_RE.sub("-", text)
    text = _DASH_RE.sub(_dash_to_pause, text)
    return WS_RE.sub(" ", text).strip()


def clean_text(raw: str) -> str:
    """One line of clean text, without spoken-form rewriting: clean_unicode, then dashes_to_pauses.

    Emoji and right-to-left text pass through unchanged. Idempotent.
    """
    return dashes_to_pauses(clean_unicode(raw))
