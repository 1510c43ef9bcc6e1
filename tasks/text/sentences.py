"""Sentence splitting, pinned: the same split on every machine, whatever NLTK data is installed.

Punkt is built from fixed parameters only: the abbreviation list kept in this repository
(tasks/data/abbreviations-<language>.txt) and nothing learned. NLTK's downloadable `punkt_tab` model
is never looked up, so installing it (or not) cannot change a split, and with it every chunk key.
An untrained Punkt with fixed parameters learns nothing from the text it splits, so a paragraph
splits the same wherever it stands in a book.
"""

from __future__ import annotations

import bisect
import functools

from nltk.tokenize.punkt import PunktParameters, PunktSentenceTokenizer

from tasks.text.abbreviations import abbreviation_types
from tasks.text.chunks import PROMPT_RE

__all__ = ["split_sentences"]


@functools.cache
def _tokenizer(language: str = "en") -> PunktSentenceTokenizer:
    """Punkt from fixed parameters: our abbreviations, no collocations, no sentence starters."""
    params = PunktParameters()
    params.abbrev_types = set(abbreviation_types(language))
    return PunktSentenceTokenizer(params)


_WINDOW_CHARS = 20_000  # Punkt reads at most this much at once (NLTK aborts a regex after 5 s)


def _sentence_starts(text: str, language: str) -> list[int]:
    """Offsets where Punkt starts a new sentence (not 0), reading `text` in windows of about
    _WINDOW_CHARS that end at a space. The last sentence of a window (or, when the window holds
    only part of one sentence, its last word) is read again with the next window, so a window
    edge never decides a boundary. Time linear in len(text)."""
    tokenizer = _tokenizer(language)
    starts: list[int] = []
    pos, n = 0, len(text)
    while pos < n:
        end = n
        if n - pos > _WINDOW_CHARS:
            space = text.rfind(" ", pos + _WINDOW_CHARS // 2, pos + _WINDOW_CHARS)
            end = space if space > pos else pos + _WINDOW_CHARS
        try:
            local = [pos + start for start, _ in tokenizer.span_tokenize(text[pos:end])][1:]
        except TimeoutError:  # NLTK's guard against slow regexes: keep the window as one piece
            local = []
        starts.extend(local)
        if end == n:
            break
        if local:
            pos = local[-1]
        else:  # one sentence fills the window: read its last word again, with what follows it
            last_word = text.rfind(" ", pos + 1, end)
            pos = last_word + 1 if last_word > pos else end
    return starts


def split_sentences(text: str, language: str = "en") -> list[str]:
    """Split `text` (ideally normalize_text output) into sentences, in order, each stripped.

    No text is lost or invented: for normalised text, " ".join(split_sentences(t)) == t.
    Abbreviations ("Mr.", "e.g.", "U.S."), decimals and initials do not end a sentence; a piece
    that starts with a lower-case letter ('"Stop!" he cried.') joins the one before it; a closing
    quote stays with its sentence; a "[...]" prompt is never split inside and never split from
    the sentence it starts.
    """
    if not text.strip():
        return []
    prompts = [(m.start(), m.end()) for m in PROMPT_RE.finditer(text)]
    prompt_starts = [start for start, _ in prompts]

    def _cuts_a_prompt(cut: int) -> bool:
        """A cut inside a prompt, or between a prompt and the words it cues."""
        i = bisect.bisect_left(prompt_starts, cut) - 1
        if i < 0:
            return False
        end = prompts[i][1]
        return cut < end or not text[end:cut].strip()

    # Cut only at sentence starts after whitespace, so whatever lies between two spans stays with
    # a sentence and joining the sentences with " " gives back normalised text.
    starts = _sentence_starts(text, language)
    cuts = [0, *(c for c in starts if c > 0 and text[c - 1].isspace() and not _cuts_a_prompt(c)), len(text)]
    sentences: list[str] = []
    for a, b in zip(cuts, cuts[1:], strict=False):
        piece = text[a:b].strip()
        if not piece:
            continue
        if sentences and piece[0].islower():
            sentences[-1] = f"{sentences[-1]} {piece}"
        else:
            sentences.append(piece)
    return sentences
