"""tasks.text.lexicon: pronunciations from the manifest, the book's lexicon.yaml and the voice's lexicon.yaml,
and what adding an entry does to a plan's chunk keys."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tasks.engines.base import EngineInfo
from tasks.errors import ManifestError
from tasks.manifest import Manifest, validate_manifest
from tasks.plan import BookPlan, SynthJob, plan_chapters
from tasks.source import read_chapters
from tasks.text import Lexicon, book_lexicon, load_lexicon_file

INFO = EngineInfo(name="fake", version="test", max_chars=120, sample_rate_hz=22050, supports_prompts=False)


def manifest_in(folder: Path, **body: Any) -> Manifest:
    return validate_manifest({"title": "Words", "author": "A", "engine": "fake", "voice": "narrator", **body},
                             folder / "book.yaml")


# --- matching ---------------------------------------------------------------------------------------


def test_whole_words_only_and_case_rules() -> None:
    lexicon = Lexicon.of({"Hermione": "her-MY-oh-nee", "gif": "jif", "Reading": "REDD-ing"})
    assert lexicon.apply("Hermione's wand, not Hermiones or xHermione.") == "her-MY-oh-nee's wand, not Hermiones or xHermione."
    # An all-lower-case key matches any capitalisation; a capitalised match gets a capital.
    assert lexicon.apply("a gif, a GIF, Gif files") == "a jif, a Jif, Jif files"
    # A key with a capital matches only that spelling.
    assert lexicon.apply("Reading is in Berkshire; reading is fun.") == "REDD-ing is in Berkshire; reading is fun."


def test_keys_and_respellings_are_normalised() -> None:
    lexicon = Lexicon.of({"Dr. Who": "Doctor Hoo", "R2-D2": "Artoo Deetoo", "Smaug": "smowg the 1st",
                          "Thames": "TEMZ"})
    assert lexicon.entries == {"Doctor Who": "Doctor Hoo", "R two-D two": "Artoo Deetoo", "Smaug": "smowg the first",
                               "Thames": "TEMZ"}  # capitals in a respelling (stress) are kept
    assert lexicon.apply("Doctor Who met R two-D two and Smaug.") == "Doctor Hoo met Artoo Deetoo and smowg the first."


def test_longest_entry_wins() -> None:
    lexicon = Lexicon.of({"New": "noo", "New York": "noo YORK"})
    assert lexicon.apply("New York is new.") == "noo YORK is new."


def test_a_key_without_words_is_refused() -> None:
    with pytest.raises(ManifestError, match="no words"):
        Lexicon.of({"\u2122": "tee em"}, file="book.yaml")


def test_grown_chunk_is_split_again() -> None:
    lexicon = Lexicon.of({"Ng": "ing " * 20})
    chunks = lexicon.apply_to_chunks(["Ng said hello. Ng left.", "Other words."], 60)
    assert all(len(c) <= 60 for c in chunks)
    assert chunks[-1] == "Other words." and len(chunks) > 2


# --- files ----------------------------------------------------------------------------------------------


def test_book_entries_override_voice_entries(tmp_path: Path) -> None:
    voices = tmp_path / "voices"
    (voices / "narrator").mkdir(parents=True)
    (voices / "narrator" / "lexicon.yaml").write_text("Hermione: her-MEE-own\nThames: temz\nLeicester: LESS-ter\n")
    (tmp_path / "lexicon.yaml").write_text("Hermione: her-MY-oh-nee\nThames: tems\n")
    manifest = manifest_in(tmp_path, source="book.txt", pronunciations={"Thames": "TEMZ"})
    lexicon = book_lexicon(manifest, voices)
    assert lexicon.entries == {"Hermione": "her-MY-oh-nee", "Thames": "TEMZ", "Leicester": "LESS-ter"}
    assert book_lexicon(manifest).entries == {"Hermione": "her-MY-oh-nee", "Thames": "TEMZ"}  # no voices folder


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("- Hermione\n- Ron\n", "mapping"),
        ("Hermione: [a, b]\n", "respelling is a list"),
        ("Hermione:\n", "respelling is nothing"),
        ("Hermione: {x: 1}\n", "respelling is a dict"),
        ("Hermione: 'unclosed\n", "invalid YAML"),
        ("a: &x b\nc: *x\n", "alias"),
        (f"{'x' * 150}: y\n", "too long"),
    ],
)
def test_bad_lexicon_file_names_the_file(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "lexicon.yaml"
    path.write_text(content)
    with pytest.raises(ManifestError, match=message) as caught:
        load_lexicon_file(path)
    assert str(path) in str(caught.value)
    manifest = manifest_in(tmp_path, source="book.txt")
    with pytest.raises(ManifestError) as again:
        book_lexicon(manifest)
    assert str(path) in str(again.value)


def test_empty_lexicon_file_is_empty(tmp_path: Path) -> None:
    path = tmp_path / "lexicon.yaml"
    path.write_text("# nothing yet\n")
    assert load_lexicon_file(path) == {}
    path.write_text("1984: nineteen eighty-four\n")
    assert load_lexicon_file(path) == {"1984": "nineteen eighty-four"}


# --- plans ------------------------------------------------------------------------------------------------


def _plan(folder: Path, **body: Any) -> BookPlan:
    manifest = manifest_in(folder, source="book.txt", **body)
    chapters, notes = read_chapters(manifest)
    job = SynthJob(engine="fake", voice="narrator", settings={}, seed=0, voices_dir=None,
                   cache_dir=str(folder / "cache"))
    return plan_chapters(chapters, manifest, INFO, job, "voice", notes)


def test_adding_an_entry_changes_only_the_chunks_that_hold_the_word(tmp_path: Path) -> None:
    sentences = [f"Sentence {i} tells of the quiet river and the old stone bridge near town." for i in range(12)]
    sentences[3] = "Then Hermione crossed the old stone bridge, and the river was quiet."
    sentences[9] = "Later hermione came back across it alone."
    paragraphs = [" ".join(sentences[:6]), " ".join(sentences[6:])]
    (tmp_path / "book.txt").write_text("\n\n".join(paragraphs) + "\n\nA last paragraph without the name.\n")
    before = _plan(tmp_path)
    # A respelling as long as the name, so that no chunk grows past the limit and is split again.
    after = _plan(tmp_path, pronunciations={"hermione": "hurmynee"})
    assert len(before.chunks) == len(after.chunks)
    changed = [(a.text, b.text) for a, b in zip(before.chunks, after.chunks, strict=True) if a.key != b.key]
    assert 0 < len(changed) < len(before.chunks) / 3
    for a, b in zip(before.chunks, after.chunks, strict=True):
        if "ermione" in a.text:
            assert a.key != b.key and "urmynee" in b.text and "ermione" not in b.text
        else:
            assert (a.key, a.text) == (b.key, b.text)
    assert any(new.startswith("Then Hurmynee") for _, new in changed)  # a capital stays a capital
    # A lexicon.yaml beside the manifest does the same, and the manifest's entry overrides it.
    (tmp_path / "lexicon.yaml").write_text("hermione: hurmynee\n")
    assert [c.key for c in _plan(tmp_path).chunks] == [c.key for c in after.chunks]
    overridden = _plan(tmp_path, pronunciations={"hermione": "hur-mee-OWN"})
    assert "hur-mee-OWN" in " ".join(c.text for c in overridden.chunks)
