"""Numbers that name things rather than count them, read as a careful reader says them (English):

    "RFC 9110"            -> "RFC nine one one zero"          (standards: digit by digit)
    "issue #12808"        -> "issue number one two eight zero eight"   (references of four digits or more)
    "bug entry 123456"    -> "bug entry one two three four five six"
    "No. 12345", "#4521"  -> "number one two three four five", "number four five two one"
    "version 1.14"        -> "version one point fourteen"     ("v1.2.3" -> "version one point two point three")
    "Go 1.8", "OS X 10.8" -> "Go one point eight", "OS X ten point eight"  (a dotted number after a name)
    "HTTP/2"              -> "HTTP two"
    "X25519", "SHA-256"   -> "X two five five one nine", "SHA-two fifty-six"
    "vol. xx", "Pl. v"    -> "vol. 20", "Pl. 5" (then "volume twenty", "Pl. five")
    "`-ssa=0`", "`1024`"  -> "-ssa equals zero", "one zero two four"  (in a code span, digit by digit)

Shorter references ("issue 12", "No. 5") and decimals after ordinary words ("about 3.14") are left to
the number rules (tasks/text/spoken.py). Dates are read there too.
"""

from __future__ import annotations

import re

from tasks.text.roman import roman_value
from tasks.text.spoken import cardinal, digit_by_digit

__all__ = ["speak_code_numbers", "speak_identifiers"]

_DOTTED = r"\d+(?:\.\d+)+"
_END = r"(?![\w]|\.\d)"  # the number ends here: "1.8." ends a sentence, "1.8.1" goes on

_PROTOCOL_RE = re.compile(rf"(?<![\w/])([A-Z]{{2,}})/(\d+(?:\.\d+)*){_END}")
_STANDARD_RE = re.compile(rf"\b(RFCs?|ISO|IEC|IEEE|ECMA|PEP)(\s?-?\s?)(\d+(?:\.\d+)*){_END}")
_REFERENCE_RE = re.compile(
    rf"\b((?i:issues?|bugs?|entry|entries|tickets?|CLs?|PRs?|pull requests?|change lists?)\s+)"
    rf"(#\s?|(?i:No\.|number)\s)?(\d{{4,}}){_END}"
)
_NUMBER_RE = re.compile(rf"(?<![\w#])(?:#|No\.\s?)(\d{{4,}}){_END}")
_VERSION_RE = re.compile(rf"\b((?i:version|ver\.|release)\s+)(\d+(?:\.\d+)*){_END}")
_V_RE = re.compile(rf"(?<![\w.])v({_DOTTED}){_END}")
# A dotted number after a capitalised name: "Go 1.8", "Python 3.10", "OS X 10.8", "DragonFly 4.4.4".
_NAMED_RE = re.compile(rf"(?<![\w.])([A-Z][\w+#-]*) ({_DOTTED}){_END}(?!\s?%)")
# Capitalised words that start sentences and are no names: "About 3.14 metres", "In 1.5 seconds".
_NOT_NAMES = frozenset(
    "The A An And But Or Nor For Yet So Of In On At By To Up From With Into Onto Upon Over Under About Above Below "
    "Around Nearly Almost Approximately Roughly Exactly Only Just Some Less More Than Then When Where While Which "
    "What Who Why How This That These Those Their There They She He It Its His Her Our Your We You I Was Were Is "
    "Are Has Had Have Not All Any Each Every Also Even Here Now Yes No Between Among Within Without After Before "
    "Since Until Till Per Plus Minus Times Multiply Divide Add Subtract Take Give Costs Cost Total Was".split()
)
_PLURAL_AFTER_RE = re.compile(r" [a-z]{2,}s\b")
# Digits in a name: "X25519" (five digits or more: digit by digit), "SHA-256", "AES-128" (a letters-then-
# number name: "two fifty-six").
_GLUED_LONG_RE = re.compile(r"(?<=[^\W\d_])(\d{5,})(?!\d|[.,]\d)")
_CAPS_NUMBER_RE = re.compile(r"\b([A-Z]{2,})-([1-9]\d\d)\b(?![.,]\d)")
# A volume or plate in lower-case roman numerals ("vol. xx", "Pl. xxviii"): its number, for the rules after.
_VOLUME_RE = re.compile(r"\b((?:[Vv]ols?|[Pp]l)\.\s?)([ivxlc]{1,8})\b(?![\w'])")
_CODE_RE = re.compile(r"`([^`\n]*\d[^`\n]*)`")


def version(number: str) -> str:
    """ "1.14" -> "one point fourteen", "4.4.4" -> "four point four point four", "1.05" -> "one point zero five"."""
    return " point ".join(cardinal(part) for part in number.split("."))


def _reference(m: re.Match[str]) -> str:
    if _PLURAL_AFTER_RE.match(m.string, m.end()) and m.group(1)[0].islower():
        return m.group(0)  # "they issue 5000 permits": a count
    mark = " number " if m.group(2) else " "
    return f"{m.group(1).rstrip()}{mark}{digit_by_digit(m.group(3))}"


def _number(m: re.Match[str]) -> str:
    head = m.string[:m.start()].rstrip(" \"'(")
    word = "Number" if m.group(0).startswith("No") and (not head or head[-1] in ".!?") else "number"
    return f"{word} {digit_by_digit(m.group(1))}"


def _volume(m: re.Match[str]) -> str:
    value = roman_value(m.group(2).upper())
    return f"{m.group(1)}{value}" if value is not None else m.group(0)


def _caps_number(m: re.Match[str]) -> str:
    digits = m.group(2)
    # The hyphen stays: "AES-one" opening a paragraph is no drop cap to re-case.
    if digits[1:] == "00":
        return f"{m.group(1)}-{cardinal(digits)}"  # "XX-100": "XX-one hundred"
    tail = cardinal(digits[1:]) if digits[1] != "0" else f"oh {cardinal(digits[2])}"
    return f"{m.group(1)}-{cardinal(digits[0])} {tail}"


def _named(m: re.Match[str]) -> str:
    if m.group(1) in _NOT_NAMES:
        return m.group(0)
    return f"{m.group(1)} {version(m.group(2))}"


def speak_identifiers(text: str) -> str:
    """Identifiers, references and versions in words (see the module docstring); other digits stay."""
    if "l." in text or "ls." in text:
        text = _VOLUME_RE.sub(_volume, text)
    if not any("0" <= c <= "9" for c in text):
        return text
    text = _PROTOCOL_RE.sub(lambda m: f"{m.group(1)} {version(m.group(2))}", text)
    text = _STANDARD_RE.sub(
        lambda m: f"{m.group(1)} {' point '.join(digit_by_digit(p) for p in m.group(3).split('.'))}", text
    )
    text = _REFERENCE_RE.sub(_reference, text)
    text = _NUMBER_RE.sub(_number, text)
    text = _VERSION_RE.sub(lambda m: f"{m.group(1)}{version(m.group(2))}", text)
    text = _V_RE.sub(lambda m: f"version {version(m.group(1))}", text)
    text = _GLUED_LONG_RE.sub(lambda m: f" {digit_by_digit(m.group(1))}", text)
    text = _CAPS_NUMBER_RE.sub(_caps_number, text)
    return _NAMED_RE.sub(_named, text)


def _code(m: re.Match[str]) -> str:
    inner = re.sub(
        rf"{_DOTTED}|\d+",
        lambda d: " " + " point ".join(digit_by_digit(p) for p in d.group(0).split(".")) + " ",
        m.group(1),
    )
    return "`" + " ".join(inner.split()) + "`"


def speak_code_numbers(text: str) -> str:
    """Numbers inside a code span read digit by digit: "`-ssa=0`" -> "`-ssa= zero`" (the backticks stay
    for the markup step), "`go1.8`" -> "`go one point eight`", "`1024`" -> "`one zero two four`"."""
    return _CODE_RE.sub(_code, text) if "`" in text else text
