"""Project Gutenberg bracket markup inside a paragraph, for the plain-text and HTML readers.

    bracket_markup(text, image_alt=False) -> (text, [(kind, skipped text), ...])

Known forms are handled as what they are: `[Illustration]` / `[Illustration: caption]` (an image:
skipped, or its caption read with image_alt; the caption may run over several lines),
`[Pg 12]` / `[Page xii]` (a page number: skipped), `[Transcriber's Note: ...]` (skipped),
`[Sidenote: text]` (read as its text). Every other bracket stays in the text as text: an editor's
`[are]`, a ligature `Ph[oe]be`, a verse block: the text stage decides how to read it. Each span
left out comes back with its kind, so the word ledger can account for it.
"""

from __future__ import annotations

import re

# Bounded spans keep these linear on long paragraphs full of unmatched brackets.
_ILLUSTRATION_RE = re.compile(
    r"\[(?P<label>Illustration|Picture|Image|Frontispiece)(?:[ \t]*[:.][ \t]*(?P<caption>[^\]]{0,2000}))?\]",
    re.IGNORECASE,
)
_PAGE_RE = re.compile(r"\[(?:Pg|Page|p\.)[ \t]*[\divxlcdm]{1,6}\]", re.IGNORECASE)
_TRANSCRIBER_RE = re.compile(r"\[Transcriber['\u2019]?s[ \t]+Notes?[ \t]*[:.]?[^\]]{0,3000}\]", re.IGNORECASE)
_SIDENOTE_RE = re.compile(r"\[(?P<label>Sidenote|Side-note|Margin(?:al)?[ \t]+note)[ \t]*:[ \t]*(?P<text>[^\]]{0,2000})\]",
                          re.IGNORECASE)


def bracket_markup(text: str, *, image_alt: bool = False) -> tuple[str, list[tuple[str, str]]]:
    """`text` with PG markup resolved, and what was left out as (kind, text) pairs."""
    dropped: list[tuple[str, str]] = []
    if "[" not in text:
        return text, dropped

    def illustration(m: re.Match[str]) -> str:
        caption = " ".join((m.group("caption") or "").split())
        if image_alt and caption:
            dropped.append(("image", m.group("label")))
            return f" {caption} "
        dropped.append(("image", f"{m.group('label')} {caption}".strip()))
        return " "

    def page(m: re.Match[str]) -> str:
        dropped.append(("page number", m.group(0)))
        return ""

    def transcriber(m: re.Match[str]) -> str:
        dropped.append(("transcriber's note", m.group(0)))
        return " "

    def sidenote(m: re.Match[str]) -> str:
        dropped.append(("markup label", m.group("label")))
        return f" {m.group('text')} "

    text = _ILLUSTRATION_RE.sub(illustration, text)
    text = _PAGE_RE.sub(page, text)
    text = _TRANSCRIBER_RE.sub(transcriber, text)
    text = _SIDENOTE_RE.sub(sidenote, text)
    return text, dropped
