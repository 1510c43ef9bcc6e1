"""Every manifest error names the file, the field and the fix; valid manifests load into frozen models."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from tasks.errors import ManifestError
from tasks.manifest import Manifest, load_manifest

GOOD = "title: T\nauthor: A\nsource: book.md\n"


def load(tmp_path: Path, body: str | bytes) -> Manifest:
    path = tmp_path / "m.yaml"
    if isinstance(body, bytes):
        path.write_bytes(body)
    else:
        path.write_text(body, encoding="utf-8")
    return load_manifest(path)


def test_valid_manifest_defaults_and_is_frozen(tmp_path: Path) -> None:
    m = load(tmp_path, GOOD)
    assert (m.engine, m.voice, m.quality, m.outputs, m.language) == ("piper", "joe", "standard", ("m4b", "mp3"), "en")
    assert m.pacing.sentence_pause_ms == 300 and m.pacing.paragraph_pause_ms == 800
    assert m.stem == "m" and m.folder == tmp_path
    with pytest.raises(ValidationError):
        m.title = "x"  # type: ignore[misc]


def test_full_manifest(tmp_path: Path) -> None:
    m = load(tmp_path, """
title: The Quiet Village
author: Jane Doe
narrator: Joe
year: 2024
cover: cover.jpg
engine: tortoise
voice: emma
quality: high
seed: 1234
pacing: {sentence_pause_ms: 250, paragraph_pause_ms: 900, chapter_pause_ms: 3000}
outputs: [mp3]
chapters:
  - {title: Chapter One, file: one.txt}
  - {title: Chapter Two, text: "Inline text."}
""")
    assert m.year == "2024" and m.seed == 1234 and m.outputs == ("mp3",)
    assert [c.title for c in m.chapters or ()] == ["Chapter One", "Chapter Two"]
    assert m.cover_path == (tmp_path / "cover.jpg").resolve()


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        (GOOD + "voise: joe\n", "voise", "did you mean 'voice'"),
        (GOOD + "pacing: {sentance_pause_ms: 3}\n", "pacing.sentance_pause_ms", "did you mean 'sentence_pause_ms'"),
        ("title: T\nsource: a.md\n", "author", "add 'author: ...'"),
        (GOOD + "quality: ultra\n", "quality", "'draft', 'standard' or 'high'"),
        (GOOD + "outputs: [wav]\n", "outputs[0]", "'m4b' or 'mp3'"),
        (GOOD + "outputs: []\n", "outputs", "at least one"),
        (GOOD + "seed: -1\n", "seed", "greater than or equal"),
        (GOOD + "seed: lots\n", "seed", "whole number"),
        (GOOD + "pacing: {sentence_pause_ms: -5}\n", "pacing.sentence_pause_ms", "greater than or equal"),
        (GOOD + "pacing: 3\n", "pacing", "mapping"),
        ("title: T\nauthor: A\nsource: ../outside.md\n", "source", "leaves the manifest's folder"),
        ("title: T\nauthor: A\nsource: /etc/passwd\n", "source", "absolute path"),
        (GOOD + "cover: ../../x.jpg\n", "cover", "leaves"),
        ("title: T\nauthor: A\n", "(top level)", "exactly one of 'source'"),
        (GOOD + "chapters: [{title: a, text: b}]\n", "(top level)", "exactly one of 'source'"),
        ("title: T\nauthor: A\nchapters: []\n", "(top level)", "'chapters' is empty"),
        ("title: T\nauthor: A\nchapters: [{title: a}]\n", "chapters[0]", "exactly one of 'file' or 'text'"),
        ("title: T\nauthor: A\nchapters: [{title: a, text: '  '}]\n", "chapters[0]", "'text' is empty"),
        ("title: T\nauthor: A\nchapters: [{title: a, file: ../x.txt}]\n", "chapters[0].file", "leaves"),
        ("title: ''\nauthor: A\nsource: b.md\n", "title", "at least 1 character"),
    ],
)
def test_manifest_errors_name_field_and_fix(tmp_path: Path, body: str, field: str, words: str) -> None:
    with pytest.raises(ManifestError) as info:
        load(tmp_path, body)
    err = info.value
    assert err.exit_code == 2
    assert err.field == field
    assert words in str(err)
    assert str(tmp_path / "m.yaml") in str(err)
    assert err.fix, "every manifest error carries a fix"
    assert "\n" not in str(err)


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ("title: [unclosed\n", "invalid YAML"),
        ("- a\n- b\n", "not a list"),
        ("", "not an empty file"),
        ("just text\n", "not a str"),
        ("a: &x [1, 2]\nb: *x\n", "aliases"),
        (b"title: \xff\xfe\n", "not valid UTF-8"),
        ("title: !!python/object:os.system ls\n", "invalid YAML"),
        ("1: one\ntitle: T\n", "not text"),
        ("x: " + "[" * 50 + "]" * 50 + "\n", "nest"),
    ],
)
def test_malformed_yaml_is_a_manifest_error(tmp_path: Path, body: str | bytes, words: str) -> None:
    with pytest.raises(ManifestError) as info:
        load(tmp_path, body)
    assert words in str(info.value)


def test_billion_laughs_refused_quickly(tmp_path: Path) -> None:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i, name in enumerate("bcdefghi"):
        prev = "abcdefghi"[i]
        lines.append(f"{name}: &{name} [{', '.join(['*' + prev] * 9)}]")
    with pytest.raises(ManifestError, match="aliases"):
        load(tmp_path, "\n".join(lines) + "\n")


def test_oversized_manifest_refused(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="byte limit"):
        load(tmp_path, GOOD + "description: " + "x" * (2 << 20) + "\n")


def test_missing_manifest_file(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="no such file"):
        load_manifest(tmp_path / "nope.yaml")
    with pytest.raises(ManifestError, match="not a file"):
        load_manifest(tmp_path)
