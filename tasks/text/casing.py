"""Capitals that are typography, not acronyms: drop-cap first words ("MARLEY was dead") and shouting
headings ("THE EVE OF THE WAR"). Real acronyms ("BBC", "FBI", "U.S.") keep their capitals.

An all-capital word is taken for an acronym when it cannot be read as an English word: it has no
vowel ("BBC"), or it starts with consonants that no English word starts with ("FBI", "NHS"); a
valid roman numeral of two or more letters ("VIII") also keeps its capitals.
"""

from __future__ import annotations

import re

from tasks.text.roman import roman_value

__all__ = ["fix_drop_caps", "is_acronym", "title_case"]

_VOWELS = set("AEIOUYÀÁÂÃÄÅÆÈÉÊËÌÍÎÏÒÓÔÕÖØÙÚÛÜ")
_ONSETS = frozenset(
    "b c d f g h j k l m n p q r s t v w x y z bl br ch cl cr dr dw fl fr gh gl gn gr kl kn kr ph pl pr ps "
    "qu rh sc sh sk sl sm sn sp sq squ st sw th tr tw wh wr sch scr shr sph spl spr str thr chr phr".split()
)
# Short words that start with a vowel and have no other vowel: words, not acronyms ("IN", "AND").
_SHORT_WORDS = frozenset(
    "AH AM AN AS AT AX EH EM EN ER EX IF IN IS IT OF OH OM ON OR OX UH UM UP US ACT ADD ADS AFT ALL AND "
    "ANT ANY APT ARM ART ASH ASK ASS EBB EGG ELF ELK ELM END ERR ILL IMP INK INN ITS ODD OFF OHM OLD OWL "
    "OWN UPS URN".split()
)
_SMALL_WORDS = frozenset("a an the and but or nor for of in on at to by from with as into over upon".split())


def is_acronym(word: str) -> bool:
    """An all-capital word read letter by letter ("BBC", "FBI") rather than as a word ("MARLEY")."""
    letters = "".join(c for c in word if c.isalpha())
    if len(letters) < 2 or not letters.isupper():
        return False
    if "." in word.strip("."):  # "U.S."
        return True
    if len(letters) >= 2 and (value := roman_value(letters)) is not None and value <= 399:
        return True
    upper = letters.upper()
    first_vowel = next((i for i, c in enumerate(upper) if c in _VOWELS and (i > 0 or c != "Y")), None)
    if first_vowel is None:
        return True
    if first_vowel == 0 and len(upper) <= 3 and upper not in _SHORT_WORDS:
        return not any(c in _VOWELS for c in upper[1:])  # "IBM", "UN", "OK"
    onset = upper[:first_vowel].lower()
    return bool(onset) and onset not in _ONSETS


def _caps_word(token: str) -> bool:
    letters = [c for c in token if c.isalpha()]
    return bool(letters) and all(c.isupper() for c in letters)


def _capitalize(token: str) -> str:
    """ "MARLEY'S" -> "Marley's", '"WHY,' -> '"Why,', "RED-HEADED" -> "Red-Headed", "DON'T" -> "Don't".

    Each run of letters not after an apostrophe starts with a capital. The one rule for both the
    drop-cap and the shouting-heading case, so that a word it gives is left alone the next time
    (normalisation is idempotent: "A\ud7fcE" stays as it is)."""
    return re.sub(r"(?<!')[^\W\d_]+", lambda m: m.group(0).capitalize(), token.lower())


def fix_drop_caps(paragraph: str) -> str:
    """At a paragraph's start, a run of all-capital words followed by a word in lower case is
    typography: "MARLEY was dead" -> "Marley was dead", "I HAVE endeavoured" -> "I Have endeavoured",
    "YES! and" -> "Yes! and". Acronyms in the run keep their capitals ("BBC reporters"). A paragraph
    all in capitals is put in title case ("THE END" -> "The End", "BBC NEWS" -> "BBC News")."""
    tokens = paragraph.split(" ")
    run = 0
    while run < len(tokens) and _caps_word(tokens[run]):
        run += 1
    if run == 0:
        return paragraph
    if run == len(tokens):  # a paragraph all in capitals ("THE EVE OF THE WAR"): shouting, not acronyms
        return title_case(paragraph)
    if not any(c.islower() for c in tokens[run]):
        return paragraph
    if not any(sum(c.isalpha() for c in t) >= 2 for t in tokens[:run]):
        return paragraph  # "I went": nothing in capitals to fix
    fixed = []
    for token in tokens[:run]:
        letters = "".join(c for c in token if c.isalpha())
        abbreviation = token.endswith(".") and "." not in token[:-1]  # "MR." is "Mr.", not an acronym
        numeral = roman_value(letters) is not None  # "II." opens a numbered sub-heading: no abbreviation
        keep = letters == "I" or (is_acronym(token) and (numeral or not abbreviation))
        fixed.append(token if keep else _capitalize(token))
    return " ".join(fixed + tokens[run:])


def title_case(text: str) -> str:
    """A shouting heading in title case: "THE ADVENTURE OF THE COPPER BEECHES" -> "The Adventure of
    the Copper Beeches"; acronyms and roman numerals keep their capitals. Text with any lower-case
    letter is returned as it is."""
    if any(c.islower() for c in text) or not any(c.isalpha() for c in text):
        return text
    out: list[str] = []
    for i, token in enumerate(text.split(" ")):
        bare = token.strip("\"'()[],.;:!?").lower()
        if is_acronym(token) or not any(c.isalpha() for c in token):
            out.append(token)
        elif i > 0 and bare in _SMALL_WORDS and not out[-1].endswith((".", ":", "!", "?")):
            out.append(token.lower())
        else:
            out.append(_capitalize(token))
    return " ".join(out)
