"""`audiobook check MANIFEST --text`: exactly what will be spoken, chapter by chapter, lexicon applied."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cli import run
from tests.conftest import write_manifest

BOOK = """\
Chapter I: The Start

MARLEY was dead, in 1843, said Mr. Scrooge's clerk. See https://www.example.org/x_y for more.

Hermione paid $3.50 for _two_ [^1] books at 10:30.

Chapter II: The End

It was Dec. 21st and 40% of the snow had gone.
"""


def test_check_text_prints_the_spoken_chunks(workdirs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    book = workdirs["book"]
    (book / "story.txt").write_text(BOOK, encoding="utf-8")
    (book / "lexicon.yaml").write_text("hermione: her-MY-oh-nee\n", encoding="utf-8")
    manifest = write_manifest(book, "title: Snow\nauthor: A. Writer\nengine: fake\nsource: story.txt\n"
                                    "reading: {urls: domain}\ncredits: false\n")
    assert run(["check", str(manifest), "--text"]) == 0
    out = capsys.readouterr().out
    assert "=== 1. Chapter I: The Start ===" in out and "=== 2. Chapter II: The End ===" in out
    assert "Marley was dead, in eighteen forty-three, said Mister Scrooge's clerk." in out
    assert "See example dot org for more." in out
    assert "Her-MY-oh-nee paid three dollars and fifty cents for two books at ten thirty." in out
    assert "It was December twenty-first and forty percent of the snow had gone." in out
    body = "\n".join(line for line in out.splitlines() if not line.startswith("=== "))
    assert not re.search(r"[0-9]|http|www\.|[*_\[\]{}<>|#`]", body)
    # A blank line ends each paragraph, so the text reads as the book is laid out.
    first = out.split("=== 2.")[0]
    assert "\n\nHer-MY-oh-nee paid" in first


def test_check_text_drops_urls_when_asked(workdirs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    book = workdirs["book"]
    (book / "story.txt").write_text("Read it at www.example.org today.\n", encoding="utf-8")
    manifest = write_manifest(book, "title: Snow\nauthor: A\nengine: fake\nsource: story.txt\n"
                                    "reading: {urls: drop}\n")
    assert run(["check", str(manifest), "--text"]) == 0
    assert "Read it at today." in capsys.readouterr().out


def test_check_text_names_a_bad_lexicon(workdirs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    book = workdirs["book"]
    (book / "story.txt").write_text("Words.\n", encoding="utf-8")
    (book / "lexicon.yaml").write_text("- not\n- a mapping\n", encoding="utf-8")
    manifest = write_manifest(book, "title: Snow\nauthor: A\nengine: fake\nsource: story.txt\n")
    assert run(["check", str(manifest), "--text"]) == 2
    err = capsys.readouterr().err
    assert str(book / "lexicon.yaml") in err and "mapping" in err
