"""tasks.text: normalisation, sentence splitting, chunk packing, prompts."""

from __future__ import annotations

import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tasks.text import has_prompt, normalize_text, pack_chunks, split_sentences, strip_prompts

# --- normalize_text -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("\u201cHello,\u201d she said. It\u2019s \u2018fine\u2019.", "\"Hello,\" she said. It's 'fine'."),
        ("Wait\u2026 what", "Wait... what"),
        ("He paused\u2014then ran.", "He paused, then ran."),
        ("He paused \u2013 then ran.", "He paused, then ran."),
        ("He paused -- then ran.", "He paused, then ran."),
        ("\u201cWait\u2014\u201d he said.", '"Wait," he said.'),
        ("He said\u2014\u201cGo.\u201d", 'He said, "Go."'),
        ("I was\u2014.", "I was."),
        ("\u2014Hello there.", "Hello there."),
        ("From 1990\u20131995.", "From nineteen ninety to nineteen ninety-five."),
        ("a\x00b\x07c\u200bd\ufeffe", "abcde"),
        ("line one\nline two\ttab\r\n  end  ", "line one line two tab end"),
        ("  many     spaces\u00a0here  ", "many spaces here"),
        ("\ufb01ne \u2460", "fine one"),  # NFKC: ligature, circled digit
        (
            "\u05e9\u05dc\u05d5\u05dd \U0001f468\u200d\U0001f469\u200d\U0001f467 ok",
            "\u05e9\u05dc\u05d5\u05dd \U0001f468\u200d\U0001f469\u200d\U0001f467 ok",
        ),
        ("", ""),
        (" \n\t ", ""),
    ],
)
def test_normalize_text(raw: str, expected: str) -> None:
    assert normalize_text(raw) == expected


@settings(deadline=None, max_examples=200)
@given(st.text())
def test_normalize_text_is_idempotent_and_one_clean_line(raw: str) -> None:
    out = normalize_text(raw)
    assert normalize_text(out) == out
    assert out == out.strip()
    assert "  " not in out
    assert not any(c in out for c in "\n\t\r\x00\u200b\u2014\u2013")


# --- split_sentences ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Mr. Smith met Dr. Who. They talked.", ["Mr. Smith met Dr. Who.", "They talked."]),
        ("Use e.g. this one. And this.", ["Use e.g. this one.", "And this."]),
        ("Pi is 3.14 or so. Nice.", ["Pi is 3.14 or so.", "Nice."]),
        ("He joined the U.S. Army. Then left.", ["He joined the U.S. Army.", "Then left."]),
        ('"Stop!" he cried. Then ran.', ['"Stop!" he cried.', "Then ran."]),
        ('He said "Go." Then left.', ['He said "Go."', "Then left."]),
        (
            "It was fine. [I am really sad,] I lost it. Then...",
            ["It was fine.", "[I am really sad,] I lost it.", "Then..."],
        ),
        ("[Whispering. Very sad.] Bye now. Next one.", ["[Whispering. Very sad.] Bye now.", "Next one."]),
        ("She left. [Sad.] He cried.", ["She left.", "[Sad.] He cried."]),
        ("J. R. R. Tolkien wrote it. Yes.", ["J. R. R. Tolkien wrote it.", "Yes."]),
        ("One. Two! Three? Four.", ["One.", "Two!", "Three?", "Four."]),
        ("", []),
    ],
)
def test_split_sentences_hard_cases(text: str, expected: list[str]) -> None:
    assert split_sentences(text) == expected


def test_split_sentences_keeps_prompt_at_sentence_start() -> None:
    for sentence in split_sentences("Fine. [I am really sad,] I lost it. [calm] Then we went home."):
        if "[" in sentence:
            assert sentence.startswith("[")
            assert sentence.count("[") == sentence.count("]")


_prose = st.lists(
    st.one_of(
        st.sampled_from(
            ["Mr.", "Dr.", "e.g.", "U.S.", "3.14", '"Stop!"', "he", "She", "said.", "Go.", "[sad,]", "[Very. Sad.]",
             "Then...", "end?", "wow!", "(yes.)", "no.", "\u05e9\u05dc\u05d5\u05dd.", "\U0001f600", "A.", "i.e."]
        ),
        st.text(min_size=1, max_size=12),
    ),
    max_size=40,
).map(" ".join)  # fmt: skip


@settings(deadline=None, max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(_prose)
def test_split_sentences_loses_and_invents_nothing(raw: str) -> None:
    text = normalize_text(raw)
    sentences = split_sentences(text)
    assert " ".join(sentences) == text
    assert all(s and s == s.strip() for s in sentences)


# --- pack_chunks --------------------------------------------------------------------------------


def _squash(parts: list[str]) -> str:
    return " ".join(" ".join(parts).split())


def test_pack_chunks_greedy() -> None:
    sentences = ["One two.", "Three four.", "Five six seven."]
    assert pack_chunks(sentences, 20) == ["One two. Three four.", "Five six seven."]
    assert pack_chunks(sentences, 1000) == ["One two. Three four. Five six seven."]
    assert pack_chunks([], 10) == []
    assert pack_chunks(["  ", ""], 10) == []


def test_pack_chunks_splits_long_sentence_at_clauses() -> None:
    sentence = "When the rain came, we ran to the barn; the horses were calm: nobody spoke at all."
    chunks = pack_chunks([sentence], 40)
    assert chunks == [
        "When the rain came, we ran to the barn;",
        "the horses were calm:",
        "nobody spoke at all.",
    ]
    assert all(len(c) <= 40 for c in chunks)


def test_pack_chunks_keeps_prompt_with_sentence_start() -> None:
    chunks = pack_chunks(["Short one.", "[I am really sad,] I lost it, and then it was gone forever."], 30)
    prompt_chunk = next(c for c in chunks if "[" in c)
    assert "[I am really sad,] I" in prompt_chunk
    assert _squash(chunks) == "Short one. [I am really sad,] I lost it, and then it was gone forever."


def test_pack_chunks_hard_splits_only_an_overlong_token() -> None:
    chunks = pack_chunks(["ab " + "x" * 25 + " cd"], 10)
    assert chunks == ["ab", "xxxxxxxxxx", "xxxxxxxxxx", "xxxxx cd"]


def test_pack_chunks_rejects_bad_limit() -> None:
    with pytest.raises(ValueError):
        pack_chunks(["x"], 0)


def test_pack_chunks_one_megabyte_paragraph_is_fast() -> None:
    words = ["alpha", "be", "gamma", "delta", "epsilonic", "z"]
    paragraph = " ".join(words[i % len(words)] + "xyzw"[i % 4] * (1 + i % 3) for i in range(180_000))
    assert len(paragraph) > 1_000_000
    assert normalize_text(paragraph) == paragraph
    began = time.perf_counter()
    chunks = pack_chunks(split_sentences(paragraph), 250)
    assert time.perf_counter() - began < 5.0
    assert all(0 < len(c) <= 250 for c in chunks)
    assert " ".join(chunks) == paragraph  # no word was split
    assert all(len(c) > 200 for c in chunks[:-1])  # greedy: chunks are nearly full


def test_pack_chunks_one_megabyte_token_is_hard_split() -> None:
    token = "x" * 1_000_000
    began = time.perf_counter()
    chunks = pack_chunks(split_sentences(token), 400)
    assert time.perf_counter() - began < 5.0
    assert all(0 < len(c) <= 400 for c in chunks)
    assert "".join(chunks) == token


_words = st.text(st.characters(blacklist_categories=["Zs", "Cc", "Cs"]), min_size=1, max_size=15)
_sentences = st.lists(
    st.lists(st.one_of(_words, st.sampled_from(["and,", "so;", "[sad]", "[very sad,]", "then:", "\u2014"])), min_size=1, max_size=30).map(" ".join),
    max_size=12,
)  # fmt: skip


@settings(deadline=None, max_examples=300)
@given(_sentences, st.integers(min_value=16, max_value=120))
def test_pack_chunks_properties(sentences: list[str], max_chars: int) -> None:
    chunks = pack_chunks(sentences, max_chars)
    assert all(0 < len(c) <= max_chars for c in chunks)
    assert all(c == c.strip() for c in chunks)
    # No word or space lost or invented (tokens here are all shorter than max_chars).
    assert " ".join(chunks) == _squash(sentences)


@settings(deadline=None, max_examples=200)
@given(st.lists(st.text(max_size=80), max_size=8), st.integers(min_value=1, max_value=40))
def test_pack_chunks_any_text_keeps_every_character(sentences: list[str], max_chars: int) -> None:
    chunks = pack_chunks(sentences, max_chars)
    assert all(0 < len(c) <= max_chars for c in chunks)
    assert "".join(chunks).replace(" ", "") == "".join(_squash(sentences).split(" "))


# --- robustness ---------------------------------------------------------------------------------


@settings(deadline=None, max_examples=300)
@given(st.text(alphabet=st.characters(codec=None)), st.integers(min_value=1, max_value=300))
def test_any_text_goes_through_the_whole_text_path(raw: str, max_chars: int) -> None:
    text = normalize_text(raw)
    sentences = split_sentences(text)
    assert " ".join(sentences) == text
    chunks = pack_chunks(sentences, max_chars)
    assert all(0 < len(c) <= max_chars for c in chunks)
    for chunk in chunks:
        strip_prompts(chunk)
        has_prompt(chunk)


# --- prompts ------------------------------------------------------------------------------------


def test_prompts() -> None:
    assert has_prompt("[sad] I lost it.")
    assert not has_prompt("I lost it.")
    assert not has_prompt("an [unclosed bracket")
    assert (
        strip_prompts("[I am really sad,] I lost it [sobbing]. Then [a [nested]] end.")
        == "I lost it. Then end."
    )
    assert strip_prompts("no prompts here") == "no prompts here"
    assert strip_prompts("[only a prompt]") == ""


def test_split_sentences_windows_match_one_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    import tasks.text.sentences as text_module

    prose = normalize_text(
        'Mr. Smith met Dr. Who at 3.14 p.m. today. "Stop!" he cried. [sad,] I lost it. He said "Go." Then left. '
        * 30, prompts=True,
    )
    whole = split_sentences(prose)
    monkeypatch.setattr(text_module, "_WINDOW_CHARS", 64)
    assert split_sentences(prose) == whole
    assert " ".join(whole) == prose and len(whole) == 5 * 30
