"""Text for the voice: normalise, split into sentences, pack sentences into engine-sized chunks.

Pure functions, no I/O except reading the abbreviation list once. All lengths are in characters
(Python code points), never bytes or tokens.

    normalize_text(raw)              -> one line of clean text (what the engine reads)
    split_sentences(text)            -> sentences; " ".join(them) == text for normalised text
    pack_chunks(sentences, max_chars)-> chunks of <= max_chars characters
    strip_prompts(text), has_prompt(text)  for engines that cannot take "[...]" prompts

A "prompt" is a bracketed span such as "[I am really sad,]": Tortoise reads it as an emotion cue
and does not speak it. Prompts are never split, and a prompt stays with the words that follow it.
"""

from __future__ import annotations

import bisect
import functools
import re
import unicodedata
from importlib import resources

from nltk.tokenize.punkt import PunktParameters, PunktSentenceTokenizer

__all__ = ["has_prompt", "normalize_heading", "normalize_text", "pack_chunks", "split_sentences", "strip_prompts"]

# --- normalisation ------------------------------------------------------------------------------

# Control characters that are not whitespace (str.isspace() ones such as \n, \t, \x1c-\x1f, \x85
# become spaces later), lone surrogates (they cannot be encoded), and invisible characters that
# confuse engines: zero-width space, word joiner, BOM, soft hyphen. Zero-width (non-)joiners are
# kept: emoji sequences and Persian/Indic spelling need them.
_DROP_RE = re.compile("[\x00-\x08\x0e-\x1b\x7f-\x84\x86-\x9f\ud800-\udfff\u200b\u2060\ufeff\u00ad]")
_QUOTES = str.maketrans(
    {
        "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'", "\u2035": "'",
        "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u2033": '"', "\u2036": '"',
        "\u00ab": '"', "\u00bb": '"', "\u2039": "'", "\u203a": "'",
        "\u2212": "-",  # minus sign
    }
)  # fmt: skip
_WS_RE = re.compile(r"\s+")
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
    if nxt == "" or nxt in _CLOSERS:
        return ""  # "I was—." / trailing "I was—"
    if nxt in "\"'":
        after = text[m.end() + 1] if m.end() + 1 < len(text) else ""
        if after == "" or after == " " or after in _CLOSERS:
            return ","  # a closing quote: '"Wait—" he said' -> '"Wait," he said'
    return ", "


def normalize_text(raw: str) -> str:
    """Return `raw` as one line of plain text for a TTS engine.

    Unicode NFKC; curly quotes and guillemets -> ' and "; the ellipsis character -> "...";
    em/en dashes and "--" -> ", " (a pause every engine reads; a dash between two numbers becomes
    "-"); control and zero-width characters removed; newlines, tabs and runs of whitespace -> one
    space; stripped. Emoji and right-to-left text pass through unchanged. Idempotent.
    """
    text = _DROP_RE.sub("", raw)
    text = unicodedata.normalize("NFKC", text)  # also "…" -> "...", non-breaking space -> " "
    text = _DROP_RE.sub("", text.translate(_QUOTES))
    text = _WS_RE.sub(" ", text).strip()
    text = _RANGE_DASH_RE.sub("-", text)
    text = _DASH_RE.sub(_dash_to_pause, text)
    return _WS_RE.sub(" ", text).strip()


# --- sentences ----------------------------------------------------------------------------------

def normalize_heading(title: str) -> str:
    """A chapter title in the form it is spoken ("Chapter IV: The Storm" -> "Chapter Four. The Storm.")."""
    return normalize_text(title)


_PROMPT_RE = re.compile(r"\[[^\[\]]*\]")  # "[I am really sad,]": innermost brackets, not nested


def _load_abbreviations() -> set[str]:
    """The abbreviation list in tasks/data/abbreviations.txt: lower-case, no trailing dot."""
    raw = resources.files("tasks").joinpath("data/abbreviations.txt").read_text(encoding="utf-8")
    words = (line.strip().lower().rstrip(".") for line in raw.splitlines())
    return {w for w in words if w and not w.startswith("#")}


@functools.cache
def _tokenizer() -> PunktSentenceTokenizer:
    """Punkt, built once: NLTK's trained English model when its punkt_tab data is installed, else
    an untrained Punkt that knows our abbreviations (NLTK 3.9+ ships no model in the wheel)."""
    abbreviations = _load_abbreviations()
    try:
        import nltk.data
        from nltk.tokenize.punkt import PunktTokenizer

        nltk.data.find("tokenizers/punkt_tab/english/")
        tokenizer: PunktSentenceTokenizer = PunktTokenizer("english")
        tokenizer._params.abbrev_types.update(abbreviations)
        return tokenizer
    except (LookupError, ImportError, OSError, ValueError):
        params = PunktParameters()
        params.abbrev_types = abbreviations
        return PunktSentenceTokenizer(params)


_WINDOW_CHARS = 20_000  # Punkt reads at most this much at once (NLTK aborts a regex after 5 s)


def _sentence_starts(text: str) -> list[int]:
    """Offsets where Punkt starts a new sentence (not 0), reading `text` in windows of about
    _WINDOW_CHARS that end at a space. The last sentence of a window is read again with the
    next window, so a window edge never decides a boundary. Time linear in len(text)."""
    tokenizer = _tokenizer()
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
        pos = local[-1] if local else end
    return starts


def split_sentences(text: str) -> list[str]:
    """Split `text` (ideally normalize_text output) into sentences, in order, each stripped.

    No text is lost or invented: for normalised text, " ".join(split_sentences(t)) == t.
    Abbreviations ("Mr.", "e.g.", "U.S."), decimals and initials do not end a sentence; a piece
    that starts with a lower-case letter ('"Stop!" he cried.') joins the one before it; a closing
    quote stays with its sentence; a "[...]" prompt is never split inside and never split from
    the sentence it starts.
    """
    if not text.strip():
        return []
    prompts = [(m.start(), m.end()) for m in _PROMPT_RE.finditer(text)]
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
    starts = _sentence_starts(text)
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
    out = _WS_RE.sub(" ", out).strip()
    return _SPACE_BEFORE_PUNCT_RE.sub("", out)
