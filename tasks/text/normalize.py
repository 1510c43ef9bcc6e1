"""The spoken form: one paragraph of raw text -> exactly the words an engine reads.

The steps, in order (each its own module):
  1. clean      Unicode NFKC, invisible characters, curly quotes, unspoken marks (™ ® © ↩ ¶ † ¹)
  2. markup     HTML entities, tags and comments, Markdown links and heading attributes, footnote
                references, ligature markers ("Ph[oe]be")
  3. urls       URLs and e-mail addresses -> their domain ("rfc-editor dot org"), or dropped;
                then emphasis markers ("_italic_", "*bold*") go
  4. dashes     em/en dashes and "--" -> a pause (", ")
  5. identifiers    numbers in code spans, "RFC 9110", "issue #12808", "version 1.14", "Go 1.8",
                "HTTP/2" (tasks/text/identifiers.py)
  6. abbreviations  "Mr." -> "Mister", "No. 5" -> "number 5", "St. Paul" -> "Saint Paul"
  7. spoken     numbers and dates, then symbols (& + = @ % ° ...) in words
  8. markup     a last sweep: no markup character survives; square brackets are text ("[are]" ->
                "are"), or, with prompts on, kept only as "[...]" prompts
  9. casing     drop-cap first words ("MARLEY was" -> "Marley was"), then abbreviations again
 10. roman      "Chapter IV" -> "Chapter Four", "Henry VIII" -> "Henry the Eighth"
The result is one line, idempotent: normalize_text(normalize_text(x)) == normalize_text(x).
Each step can report to a WordTracker (tasks/text/ledger.py), which accounts for every input word.
"""

from __future__ import annotations

import re

from tasks.text.abbreviations import expand_abbreviations
from tasks.text.casing import fix_drop_caps
from tasks.text.clean import WS_RE, clean_unicode, dashes_to_pauses
from tasks.text.identifiers import speak_code_numbers, speak_identifiers
from tasks.text.ledger import WordTracker
from tasks.text.markup import MARKUP_STEPS, remove_emphasis, sweep_markup
from tasks.text.roman import speak_roman_numerals
from tasks.text.spoken import base_language, drop_footnote_marks, speak_numbers, speak_symbols
from tasks.text.urls import UrlMode, speak_urls

__all__ = ["normalize_text"]

_SPACE_BEFORE_RE = re.compile(r" +(?=[,.;:!?)](?!\d))")  # not before ".5"
_SPACE_AFTER_OPEN_RE = re.compile(r"(?<=\() +")
_REPEATED_COMMA_RE = re.compile(r"(?:, ?)+,|,(?=[.;:!?])")
_LEADING_PUNCT_RE = re.compile(r"^[,;:]+ ?")
_EMPTY_PARENS_RE = re.compile(r"\( ?\)")  # left by a dropped URL


def _tidy(text: str) -> str:
    """Single spaces, none before closing punctuation, no doubled or dangling commas."""
    for _ in range(3):  # each rule can expose another; three rounds settle every case
        before = text
        text = WS_RE.sub(" ", text).strip()
        text = _SPACE_BEFORE_RE.sub("", text)
        text = _SPACE_AFTER_OPEN_RE.sub("", text)
        text = _REPEATED_COMMA_RE.sub(lambda m: "," if m.group(0).endswith(",") else "", text)
        text = _LEADING_PUNCT_RE.sub("", _EMPTY_PARENS_RE.sub("", text))
        if text == before:
            break
    return text


def normalize_text(
    raw: str, *, urls: UrlMode = "domain", language: str = "en", recase: bool = True, prompts: bool = False,
    track: WordTracker | None = None,
) -> str:
    """`raw` (one paragraph) in its spoken form: one line of words, with no digit, URL or markup
    character left. See the module docstring for the steps; `urls` is the manifest's reading.urls.
    The rules are English; for another `language` its abbreviation list (when the project has one) and
    num2words in that language for plain numbers apply, and roman numerals and symbols are left as written.
    Emoji and right-to-left text pass through unchanged. `recase=False` keeps capitals as written (no
    drop-cap or shouting rule): for respellings such as "her-MY-oh-nee", where capitals mark stress.
    `prompts` (the manifest's `prompts`) keeps balanced "[...]" prompts; without it square brackets are
    text ("[are]" -> "are"). `track`, a WordTracker of `raw`, is given every step, for the word ledger.
    """
    if track is not None and track.text != raw:
        track.step("text", raw)

    def step(reason: str, text: str) -> str:
        return track.step(reason, text) if track is not None else text

    text = step("characters", clean_unicode(raw))
    if not text:
        return ""
    for reason, markup_step in MARKUP_STEPS:
        text = step(reason, markup_step(text))
    url_reason = "URL (reading.urls: drop)" if urls == "drop" else "URL read as its address"
    text = step(url_reason, speak_urls(text, urls))
    english = base_language(language) == "en"
    text = step("code", speak_code_numbers(text) if english else text)
    text = step("markup", remove_emphasis(text))
    text = step("punctuation", dashes_to_pauses(_tidy(text)))
    text = step("identifier", speak_identifiers(text) if english else text)
    text = step("abbreviation", expand_abbreviations(text, language))
    text = step("footnote marker", drop_footnote_marks(text))
    text = step("number", speak_numbers(text, language))
    # Reading numbers can free a host name glued to digits ("0perma.cc" -> "zero perma.cc"): URLs again.
    text = step(url_reason, speak_urls(text, urls))
    text = step("symbol", speak_symbols(text) if english else text)
    text = step("markup", _tidy(sweep_markup(text, prompts=prompts)))
    # Drop caps are judged on the words as they will be spoken (a number or symbol read as words can
    # be the lower-case word that follows a capital run); abbreviations and numerals in the words it
    # re-cases ("MR. SMITH was" -> "Mr. Smith was", "HENRY VIII was") are read after it.
    if recase:
        text = step("capitals", fix_drop_caps(text))
        text = step("abbreviation", expand_abbreviations(text, language))
    text = step("roman numeral", speak_roman_numerals(text) if english else text)
    return step("punctuation", _tidy(text))
