"""Numbers and symbols in words, as a reader says them (English; num2words does the counting).

    "3.5 centuries" -> "three point five centuries"    "1998" -> "nineteen ninety-eight"
    "£5" -> "five pounds"   "$3.50" -> "three dollars and fifty cents"   "$1.5 million" -> "one point
    five million dollars"   "10:30" -> "ten thirty"   "21st" -> "twenty-first"   "40%" -> "forty percent"
    "743-45" -> "seven hundred and forty-three to forty-five"   "68,365" -> "sixty-eight thousand three
    hundred and sixty-five"   "1990s" -> "nineteen nineties"   "#5" -> "number five"   "30°C" ->
    "thirty degrees Celsius"   "mp3" -> "mp three"   "007" -> "zero zero seven"   "R&D" -> "R and D"

A four-digit number from 1100 to 2099 reads as a year ("in 1888", "1888, I was") unless a plural
noun follows it ("1500 soldiers"); a date reads as a date ("3 May 2019" -> "the third of May, twenty
nineteen", "June 1, 2017" -> "June first, twenty seventeen"); a footnote mark glued to a word
("patterns.1", 'bear."1') is dropped. Identifiers (RFC numbers, versions) are read before, in
tasks/text/identifiers.py. Whatever else holds an ASCII digit is read as a number, so no digit ever reaches an engine.
"""

from __future__ import annotations

import functools
import re
from decimal import Decimal

from num2words import num2words

__all__ = ["base_language", "cardinal", "digit_by_digit", "drop_footnote_marks", "speak_numbers", "speak_symbols"]

_DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_MAX_CARDINAL_DIGITS = 15  # longer runs (IDs, ISBNs) are read digit by digit


def _words(text: str) -> str:
    """num2words output without commas ("sixty-eight thousand three hundred and sixty-five")."""
    return text.replace(",", "")


def digit_by_digit(digits: str) -> str:
    """ "9110" -> "nine one one zero"."""
    return " ".join(_DIGITS[int(d)] for d in digits if "0" <= d <= "9")


_digit_by_digit = digit_by_digit


@functools.lru_cache(maxsize=4096)
def cardinal(number: str) -> str:
    """ "14" -> "fourteen", "68,365" -> "sixty-eight thousand ...", "007" -> "zero zero seven"."""
    digits = number.replace(",", "")
    if len(digits) > _MAX_CARDINAL_DIGITS or (len(digits) > 1 and digits[0] == "0"):
        return _digit_by_digit(digits)
    return _words(num2words(int(digits), lang="en"))


def _decimal(whole: str, fraction: str) -> str:
    head = cardinal(whole) if whole else ""
    return f"{head} point {_digit_by_digit(fraction)}".strip()


def _plural(words: str) -> str:
    """ "nineteen ninety" -> "nineteen nineties", "six" -> "sixes"."""
    head, _, last = words.rpartition(" ")
    if last.endswith("y"):
        last = last[:-1] + "ies"
    elif last.endswith(("s", "x")):
        last += "es"
    else:
        last += "s"
    return f"{head} {last}".strip()


@functools.lru_cache(maxsize=4096)
def _year(n: int) -> str:
    return _words(num2words(n, lang="en", to="year"))


@functools.lru_cache(maxsize=4096)
def _ordinal(number: str) -> str:
    digits = number.replace(",", "")
    if len(digits) > _MAX_CARDINAL_DIGITS:
        return _digit_by_digit(digits)
    return _words(num2words(int(digits), lang="en", to="ordinal"))


# --- the rules, in the order they apply --------------------------------------------------------------

_NUM = r"\d{1,3}(?:,\d{3})+|\d+"  # an integer, maybe with thousands separators
# A footnote mark: digits glued after a word's closing punctuation or quote, then a space or the end.
_FOOTNOTE_RE = re.compile(r"(?:(?<=[^\W\d_][.,;:!?])|(?<=[.,;:!?][\"')\]]))\d{1,3}(?=[\s,;:.!?\"')\]]|$)")
# A digit after a letter, or a letter after a digit (not an ordinal suffix or a decade's "s").
_GLUED_RE = re.compile(r"(?<=[^\W\d_])(?=\d)|(?<=\d)(?=[^\W\d_])(?!(?:st|nd|rd|th|ST|ND|RD|TH|s)(?![^\W\d_]))")
_CURRENCIES = {
    "$": ("dollar", "dollars", "cent", "cents"), "£": ("pound", "pounds", "penny", "pence"),
    "€": ("euro", "euros", "cent", "cents"), "¥": ("yen", "yen", "sen", "sen"),
    "₹": ("rupee", "rupees", "paisa", "paise"),
}  # fmt: skip
_SCALES = {"thousand": "thousand", "million": "million", "billion": "billion", "trillion": "trillion",
           "k": "thousand", "m": "million", "bn": "billion"}
_CURRENCY_RE = re.compile(
    rf"([$£€¥₹])\s?({_NUM})(?:\.(\d+))?(?:\s?(thousand|million|billion|trillion|bn|k|m)(?![^\W\d_]))?"
)
_PERCENT_RANGE_RE = re.compile(r"(?<![\d.])(\d{1,3})-(\d{1,3})\s?%")  # "20-30%" -> "twenty to thirty percent"
_PERCENT_RE = re.compile(rf"(?<![\d.])({_NUM})(?:\.(\d+))?\s?(%|per ?cent\b)")
_TIME_RE = re.compile(r"(?<![\d:.,])([01]?\d|2[0-4]):([0-5]\d)(?!\d|\.\d)")
_ORDINAL_RE = re.compile(rf"(?<![\d.,])({_NUM})(st|nd|rd|th|ST|ND|RD|TH)(?![^\W\d_])")
_DECADE_RE = re.compile(r"(?<![\d.,])'?(\d{2}|1[1-9]\d0|20\d0)'?s(?![^\W\d_])")
_DOTTED_RE = re.compile(r"(?<![\d.])\d+(?:\.\d+){2,}(?!\d|\.\d)")
_DECIMAL_RE = re.compile(rf"(?<![\d.,])({_NUM})?\.(\d+)(?!\d|\.\d)")
_CHAIN_RE = re.compile(r"(?<![\d,.-])\d+(?:[-/]\d+)+(?![\d-])")
_NEGATIVE_RE = re.compile(r"(?<![\w).-])-(?=\d)")
_MONTHS = "January|February|March|April|May|June|July|August|September|October|November|December"
# A day after a month is an ordinal ("March 20" -> "March twentieth"), not a year or a count.
_MONTH_DAY_RE = re.compile(rf"\b({_MONTHS}) ([1-9]|[12]\d|3[01])(?![\d:.]\d|\d|[-/]\d)")
# A day before a month is a date too: "3 May 2019" -> "the third of May, twenty nineteen".
_DAY_MONTH_RE = re.compile(
    rf"(?<![\w,.])(?:([Tt]he) )?([1-9]|[12]\d|3[01])(?:st|nd|rd|th)? ({_MONTHS})\b(?:,? (1[1-9]\d\d|20\d\d)(?!\d|[,.]\d))?"
)
_YEAR_RE = re.compile(r"(?<![\d,.])(1[1-9]\d\d|20\d\d)(?![\d]|[,.]\d)")
_INTEGER_RE = re.compile(_NUM)
_FRACTIONS = {2: ("half", "halves"), 4: ("quarter", "quarters")}
# Words ending in "s" that are no plural nouns: "in 1998 was", "1888 as".
_NOT_PLURAL = frozenset(
    "was is has as this its his hers ours yours theirs us thus perhaps always whereas besides towards "
    "afterwards unless across less miss yes plus minus does goes says seems comes becomes remains means makes "
    "takes gives shows lies stands".split()
)


def _currency(m: re.Match[str]) -> str:
    one, many, cent, cents = _CURRENCIES[m.group(1)]
    whole, fraction, scale = m.group(2), m.group(3), m.group(4)
    if scale:
        amount = _decimal(whole, fraction) if fraction else cardinal(whole)
        return f"{amount} {_SCALES[scale.lower()]} {many}"
    if fraction and len(fraction) != 2:
        return f"{_decimal(whole, fraction)} {many}"
    value = int(whole.replace(",", ""))
    parts = []
    if value or not fraction or not int(fraction):
        parts.append(f"{cardinal(whole)} {one if value == 1 else many}")
    if fraction and int(fraction):
        parts.append(f"{cardinal(str(int(fraction)))} {cent if int(fraction) == 1 else cents}")
    return " and ".join(parts)


def _percent(m: re.Match[str]) -> str:
    amount = _decimal(m.group(1), m.group(2)) if m.group(2) else cardinal(m.group(1))
    return f"{amount} percent"


def _time(m: re.Match[str]) -> str:
    hour, minute = int(m.group(1)), int(m.group(2))
    if minute == 0:
        return f"{cardinal(str(hour))} o'clock" if 0 < hour <= 12 else f"{cardinal(str(hour))} hundred"
    tail = f"oh {_DIGITS[minute]}" if minute < 10 else cardinal(m.group(2))
    return f"{cardinal(str(hour))} {tail}"


def _decade(m: re.Match[str]) -> str:
    digits = m.group(1)
    return _plural(_year(int(digits)) if len(digits) == 4 else cardinal(digits.lstrip("0") or "0"))


def _fraction(numerator: str, denominator: str) -> str | None:
    top, bottom = int(numerator), int(denominator)
    if not (0 < top < bottom <= 10) or len(numerator) > 1 and numerator[0] == "0":
        return None
    one, many = _FRACTIONS.get(bottom, ("", ""))
    if not one:
        one = _words(num2words(bottom, lang="en", to="ordinal"))
        many = one + "s"
    return f"{cardinal(numerator)} {one if top == 1 else many}"


def _chain(m: re.Match[str]) -> str:
    """ "743-45" -> "... to ...", "1990-1995" as years, "3/4" a fraction, "12/25/2020" "... slash ..."."""
    text = m.group(0)
    parts = re.split(r"([-/])", text)
    numbers, marks = parts[::2], set(parts[1::2])
    if marks == {"/"} and len(numbers) == 2 and (fraction := _fraction(*numbers)):
        return fraction
    if parts[1::2] == ["-", "/"] and (fraction := _fraction(*numbers[1:])):
        return f"{cardinal(numbers[0])} and {fraction}"  # "2-7/8" inches
    if marks == {"-"} and len(numbers) == 2:
        a, b = numbers
        if len(a) == 4 and 1100 <= int(a) <= 2099 and len(b) in (2, 4):
            return f"{_year(int(a))} to {_year(int(b)) if len(b) == 4 else cardinal(b)}"
        if len(b) <= len(a) <= 4 or len(a) < len(b) <= 3:  # "743-45", "10-20", "5-100"; not "596-1887"
            return f"{cardinal(a)} to {cardinal(b)}"
    if marks == {"/"}:
        return " slash ".join(cardinal(n) for n in numbers)
    return ", ".join(_digit_by_digit(n) for n in numbers)  # a phone or serial number


def _day_month(m: re.Match[str]) -> str:
    the = m.group(1)
    if the is None:
        head = m.string[:m.start()].rstrip(" \"'(")
        the = "The" if not head or head[-1] in ".!?" else "the"
    year = f", {_year(int(m.group(4)))}" if m.group(4) else ""
    return f"{the} {_ordinal(m.group(2))} of {m.group(3)}{year}"


def _year_or_count(m: re.Match[str]) -> str:
    following = m.string[m.end():m.end() + 30]
    word = re.match(r" ([a-z]+)", following)
    if word:
        w = word.group(1)
        if len(w) > 2 and w.endswith("s") and not w.endswith(("ss", "us", "is")) and w not in _NOT_PLURAL:
            return cardinal(m.group(1))  # "1500 soldiers"
    return _year(int(m.group(1)))


def base_language(language: str) -> str:
    """ "en-GB" -> "en"."""
    return language.lower().replace("_", "-").split("-")[0] or "en"


@functools.lru_cache(maxsize=4096)
def _foreign(number: str, language: str) -> str:
    """A number in the words of another language num2words knows ("fr": 3,5 is "trois virgule cinq")."""
    try:
        if "." in number:
            return _words(num2words(Decimal(number), lang=language))
        if len(number) > _MAX_CARDINAL_DIGITS or (len(number) > 1 and number[0] == "0"):
            return " ".join(_words(num2words(int(d), lang=language)) for d in number)
        return _words(num2words(int(number), lang=language))
    except (NotImplementedError, OverflowError, ValueError, KeyError):
        return cardinal(number) if "." not in number else _decimal(*number.split(".", 1))


def _speak_foreign_numbers(text: str, language: str) -> str:
    """Outside English only plain numbers and decimals are read, in the book's language."""
    text = re.sub(r"(?<![\d.,])(\d+)[.,](\d+)(?![\d]|[.,]\d)", lambda m: _foreign(f"{m.group(1)}.{m.group(2)}", language),
                  text)
    return re.sub(r"\d+", lambda m: _foreign(m.group(0), language), text)


def drop_footnote_marks(text: str) -> str:
    """A footnote mark glued after a word's punctuation goes: "patterns.1 And" -> "patterns. And"."""
    return _FOOTNOTE_RE.sub("", text) if any("0" <= c <= "9" for c in text) else text


def speak_numbers(text: str, language: str = "en") -> str:
    """Every ASCII digit in `text` read as words (see the module docstring). English rules; another
    language gets its plain numbers and decimals in its own words (num2words), where num2words knows it."""
    if not any("0" <= c <= "9" for c in text):
        return text
    text = drop_footnote_marks(text)
    text = _GLUED_RE.sub(" ", text)
    if (lang := base_language(language)) != "en":
        return _speak_foreign_numbers(text, lang)
    text = re.sub(r"#\s?(?=\d)", "number ", text)
    text = re.sub(r"§§\s?(?=\d)", "sections ", text)
    text = re.sub(r"§\s?(?=\d)", "section ", text)
    text = re.sub(r"~\s?(?=\d)", "about ", text)
    text = re.sub(r"(?<=\d)\s?°\s?C(?![^\W\d_])", " degrees Celsius", text)
    text = re.sub(r"(?<=\d)\s?°\s?F(?![^\W\d_])", " degrees Fahrenheit", text)
    text = re.sub(r"(?<=\d)\s?°", " degrees", text)
    text = _CURRENCY_RE.sub(_currency, text)
    text = _PERCENT_RANGE_RE.sub(lambda m: f"{cardinal(m.group(1))} to {cardinal(m.group(2))} percent", text)
    text = _PERCENT_RE.sub(_percent, text)
    text = _DAY_MONTH_RE.sub(_day_month, text)
    text = _TIME_RE.sub(_time, text)
    text = _ORDINAL_RE.sub(lambda m: _ordinal(m.group(1)), text)
    text = _DECADE_RE.sub(_decade, text)
    text = _DOTTED_RE.sub(lambda m: " point ".join(cardinal(p) for p in m.group(0).split(".")), text)
    text = _DECIMAL_RE.sub(lambda m: _decimal(m.group(1) or "", m.group(2)), text)
    text = _CHAIN_RE.sub(_chain, text)
    text = _NEGATIVE_RE.sub("minus ", text)
    text = _MONTH_DAY_RE.sub(lambda m: f"{m.group(1)} {_ordinal(m.group(2))}", text)
    text = _YEAR_RE.sub(_year_or_count, text)
    return _INTEGER_RE.sub(lambda m: cardinal(m.group(0)), text)


# --- symbols -------------------------------------------------------------------------------------------

_SYMBOL_WORDS = {
    "&": "and", "+": "plus", "=": "equals", "@": "at", "×": "times", "±": "plus or minus", "÷": "divided by",
    "%": "percent", "°": "degrees",
}  # fmt: skip
_SYMBOL_RE = re.compile(r"\s*([&+=@×±÷%°])\s*")
_COMPARE_RE = re.compile(r"(?<=\w) ([<>]) (?=\w)")


def speak_symbols(text: str) -> str:
    """Symbols read as words: & + = @ × ± ÷ % °, and a spaced < or > ("a < b" -> "a less than b")."""
    text = _COMPARE_RE.sub(lambda m: " less than " if m.group(1) == "<" else " greater than ", text)

    def _word(m: re.Match[str]) -> str:
        before = m.string[m.start() - 1] if m.start() > 0 else ""
        after = m.string[m.end()] if m.end() < len(m.string) else ""
        left = "" if not before or before in "([{" else " "
        right = "" if not after or after in ".,;:!?)]}" else " "
        return f"{left}{_SYMBOL_WORDS[m.group(1)]}{right}"

    return _SYMBOL_RE.sub(_word, text)
