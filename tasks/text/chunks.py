"""Chunks and prompts: pack sentences into engine-sized chunks; find and strip "[...]" prompts.

A "prompt" is a bracketed span such as "[I am really sad,]": Tortoise reads it as an emotion cue
and does not speak it. Prompts are never split, and a prompt stays with the words that follow it.
All lengths are in characters (Python code points), never bytes or tokens.
"""

from __future__ import annotations

import bisect
import re

from tasks.text.clean import WS_RE

__all__ = ["PROMPT_RE", "has_prompt", "pack_chunks", "strip_prompts"]

PROMPT_RE = re.compile(r"\[[^\[\]]*\]")  # "[I am really sad,]": innermost brackets, not nested
_PROMPT_RE = PROMPT_RE

# --- chunks -------------------------------------------------------------------------------------

# A space after a clause mark (, ; : or a dash), past any closing quotes or brackets.
_CLAUSE_BREAK_RE = re.compile(r"[,;:\u2013\u2014]['\")\]]* ")


def _split_long(sentence: str, max_chars: int) -> list[str]:
    """Split one sentence longer than max_chars into pieces of <= max_chars characters.

    `sentence` has single spaces and no outer whitespace. Pieces end at a space (dropped; joining
    the pieces with " " restores the sentence): preferably one after a clause mark, if that keeps
    the piece at least half full, else the last space that fits. Spaces inside a "[...]" prompt or
    right after one are avoided. Only a run without spaces longer than max_chars is cut inside
    (its pieces re-join without a space). Time O(len(sentence) log len(sentence)).
    """
    n = len(sentence)
    forbidden: set[int] = set()
    for m in _PROMPT_RE.finditer(sentence):
        forbidden.update(i for i in range(m.start(), m.end()) if sentence[i] == " ")
        forbidden.add(m.end())  # the space after "]": a prompt stays with the words it cues
    allowed = [m.start() for m in re.finditer(" ", sentence) if m.start() not in forbidden]
    clause = [m.end() - 1 for m in _CLAUSE_BREAK_RE.finditer(sentence) if m.end() - 1 not in forbidden]
    pieces: list[str] = []
    start = 0
    while n - start > max_chars:
        limit = start + max_chars  # a space at `limit` still gives a piece of max_chars
        brk = -1
        i = bisect.bisect_right(clause, limit) - 1
        if i >= 0 and clause[i] - start >= max_chars // 2:
            brk = clause[i]
        else:
            i = bisect.bisect_right(allowed, limit) - 1
            if i >= 0 and allowed[i] > start:
                brk = allowed[i]
            else:
                brk = sentence.rfind(" ", start + 1, limit + 1)  # a prompt too long to keep whole
        if brk > start:
            pieces.append(sentence[start:brk])
            start = brk + 1
        else:  # one token longer than max_chars: the only cut inside a word
            pieces.append(sentence[start:limit])
            start = limit
    pieces.append(sentence[start:])
    return pieces


def pack_chunks(sentences: list[str], max_chars: int) -> list[str]:
    """Pack consecutive sentences, greedily and in order, into chunks of at most max_chars characters.

    Sentences in a chunk are joined by one space; whitespace inside a sentence is collapsed to
    single spaces and empty sentences are skipped. A sentence longer than max_chars is split
    (see _split_long): at clause marks, else at spaces, never inside a word, except a single
    token longer than max_chars, which is cut into max_chars pieces. So
    " ".join(chunks) == " ".join(sentences) (whitespace collapsed) unless such a token was cut.
    A sentence that starts with a "[...]" prompt keeps it in the chunk with its first words.
    Time roughly linear in the total length.
    """
    if max_chars < 1:
        raise ValueError(f"max_chars must be at least 1, got {max_chars}")
    chunks: list[str] = []
    current = ""
    for sentence in sentences:
        tidy = " ".join(sentence.split())
        if not tidy:
            continue
        pieces = [tidy] if len(tidy) <= max_chars else _split_long(tidy, max_chars)
        for piece in pieces:
            if current and len(current) + 1 + len(piece) <= max_chars:
                current = f"{current} {piece}"
            else:
                if current:
                    chunks.append(current)
                current = piece
    if current:
        chunks.append(current)
    return chunks


# --- prompts ------------------------------------------------------------------------------------

_SPACE_BEFORE_PUNCT_RE = re.compile(r" +(?=[,.;:!?])")


def has_prompt(text: str) -> bool:
    """True when `text` holds a "[...]" prompt span."""
    return _PROMPT_RE.search(text) is not None


def strip_prompts(text: str) -> str:
    """Remove every "[...]" prompt (nested ones too) and tidy the spaces left behind.

    For engines that would read the prompt aloud. Unbalanced brackets are left alone.
    """
    out = text
    while True:
        stripped = _PROMPT_RE.sub(" ", out)
        if stripped == out:
            break
        out = stripped
    out = WS_RE.sub(" ", out).strip()
    return _SPACE_BEFORE_PUNCT_RE.sub("", out)
