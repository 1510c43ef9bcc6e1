"""The word ledger: every word given to the text stage is in the script (as written or changed) or in
the ledger with a reason; "prompt" is a reason only when the manifest turns prompts on."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from cli import run
from tasks.documents import ChapterText
from tasks.engines.base import EngineInfo
from tasks.manifest import validate_manifest
from tasks.plan import SynthJob, plan_chapters
from tasks.text import normalize_text, strip_prompts
from tasks.text.ledger import WordTracker, ledger_words
from tests.conftest import write_manifest

_PIECES = [
    "Mr.", "No.", "St.", "I", "II.", "MARLEY", "BBC", "was", "the", "and", "3.5", "1998", "$3.50", "21st", "40%",
    "68,365", "#5", "#12808", "RFC 9110", "version 1.14", "Go 1.8", "HTTP/2", "3 May 2019", "June 1, 2017",
    "https://www.rfc-editor.org/rfc/rfc1.txt", "www.gutenberg.net", "jane.doe@example.org", "<!-- CL 31141 -->",
    "<b>", "</i>", "&amp;", "[the docs](https://x.org/a)", "{#ports}", "[^1]", "[12]", "type.[1]", "patterns.1",
    "[are]", "[sadly]", "[I am really sad,]", "Ph[oe]be", "[", "]", "`-ssa=0`", "_it_", "*em*", "\u2014", "--",
    '"', "'", ".", ",", "!", "snake_case", "e=mc\u00b2", "\u2122", "\u00a7 3", "R&D", "A\ud7fcE",
]  # fmt: skip
_TEXT = st.lists(
    st.one_of(st.sampled_from(_PIECES), st.from_regex(r"[A-Za-z]{1,8}", fullmatch=True),
              st.text(st.characters(codec="utf-8"), max_size=5)),
    max_size=25,
).flatmap(lambda parts: st.sampled_from([" ", "", "\n"]).map(lambda sep: sep.join(parts)))
PROPERTY = settings(deadline=None, max_examples=300, suppress_health_check=[HealthCheck.too_slow])


def _key(word: str) -> str:
    return "".join(c for c in word if c.isalnum())


def _account(raw: str, *, prompts: bool, urls: str, strip: bool) -> tuple[str, WordTracker]:
    """The text stage as the plan runs it, with its tracker."""
    track = WordTracker(raw)
    out = normalize_text(raw, urls=urls, prompts=prompts, track=track)  # type: ignore[arg-type]
    if strip:
        out = normalize_text(track.step("prompt", strip_prompts(out)), urls=urls, prompts=prompts,  # type: ignore[arg-type]
                             track=track)
    return out, track


@PROPERTY
@given(_TEXT, st.booleans(), st.sampled_from(["domain", "drop"]))
@example("The people there [are] not, said Ph[oe]be [sadly] <!-- CL 1 --> of RFC 9110.", False, "domain")
@example("[sadly] [softly] Real words. Write to jane.doe@example.org", True, "drop")
def test_every_input_word_is_in_the_script_or_in_the_ledger(raw: str, prompts: bool, urls: str) -> None:
    strip = prompts and "[" in raw  # an engine that cannot take the prompts
    out, track = _account(raw, prompts=prompts, urls=urls, strip=strip)
    statuses = track.statuses()
    assert [word for word, _, _ in statuses] == ledger_words(raw)
    script = Counter(_key(w) for w in ledger_words(out))
    kept = Counter(_key(word) for word, status, _ in statuses if status == "kept")
    assert not kept - script, (kept - script, out)  # a kept word is in the script, as often as it is kept
    for word, status, reason in statuses:
        assert status in ("kept", "changed", "removed")
        assert status == "kept" or reason, (word, status)
        assert reason != "prompt" or prompts, (word, reason)
    if any(status != "removed" for _, status, _ in statuses):
        assert ledger_words(out), out  # a word that reached the script left words there
    ledger = track.ledger()
    assert ledger.words == len(ledger_words(raw))
    assert sum(r.words for r in ledger.removed) == sum(1 for _, s, _ in statuses if s == "removed")
    assert track.text == out


def test_ledger_names_what_the_text_stage_removed_and_changed() -> None:
    raw = ("## Ports {#ports} <!-- CL 30824 --> See [the docs](https://go.dev/doc) and RFC 9110, "
           "Mr. Smith, type.[1] [are] https://example.org/x")
    out, track = _account(raw, prompts=False, urls="drop", strip=False)
    assert out == "Ports See the docs and RFC nine one one zero, Mister Smith, type. are"
    ledger = track.ledger()
    assert ledger.removed_by_reason() == {
        "heading attribute": 1, "HTML comment": 2, "link target": 1, "footnote marker": 1,
        "URL (reading.urls: drop)": 1,
    }
    assert dict(ledger.changed) == {"abbreviation": 1, "identifier": 1}
    assert [r.text for r in ledger.removed][:2] == ["#ports", "CL 30824"]
    assert ledger.kept == len(ledger_words(raw)) - 8


INFO = EngineInfo(name="fake", version="test", max_chars=120, sample_rate_hz=22050, supports_prompts=False)


def _plan(tmp_path: Path, chapters: tuple[ChapterText, ...], **body: Any) -> Any:
    manifest = validate_manifest({"title": "Ledger", "author": "A", "engine": "fake", "source": "b.md", **body},
                                 tmp_path / "book.yaml")
    job = SynthJob(engine="fake", voice="v", settings={}, seed=0, voices_dir=None, cache_dir=str(tmp_path / "c"))
    return plan_chapters(chapters, manifest, INFO, job, "voice")


_PARAGRAPHS = st.lists(_TEXT.filter(lambda t: bool(t.strip())), min_size=1, max_size=3)


@settings(deadline=None, max_examples=60, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.lists(_PARAGRAPHS, min_size=1, max_size=3), st.booleans())
def test_plan_ledger_accounts_for_every_word_of_every_chapter(
    tmp_path: Path, chapters: list[list[str]], prompts: bool
) -> None:
    book = (ChapterText("Anchor", ("Words to speak.",)),) + tuple(
        ChapterText(f"Chapter {i + 1}", tuple(ps)) for i, ps in enumerate(chapters)
    )
    plan = _plan(tmp_path, book, prompts=prompts, credits=False)
    assert [entry.title for entry in plan.ledger] == [ch.title for ch in book]
    for chapter, entry in zip(book, plan.ledger, strict=True):
        assert entry.text.words == sum(len(ledger_words(p)) for p in chapter.paragraphs)
        reasons = {r.reason for r in entry.text.removed} | {reason for reason, _ in entry.text.changed}
        assert prompts or "prompt" not in reasons
        spoken = [c for ch in plan.chapters if ch.title == chapter.title for c in ch.chunks]
        if entry.text.kept or entry.text.changed_words:
            assert spoken, chapter  # words kept or changed are spoken


def test_prompts_off_reads_brackets_and_prompts_on_records_them(tmp_path: Path) -> None:
    chapter = ChapterText("Verse", ("[Sing, O Muse, of the wrath] he said.", "[sadly]", "Ph[oe]be [are] here."))
    off = _plan(tmp_path, (chapter,), credits=False)
    assert [c.text for c in off.chapters[0].chunks][1:] == [
        "Sing, O Muse, of the wrath he said.", "sadly", "Phoebe are here."]
    assert off.ledger[0].text.removed == () and off.prompts_dropped == 0 and not off.warnings
    on = _plan(tmp_path, (chapter,), credits=False, prompts=True)
    assert [c.text for c in on.chapters[0].chunks][1:] == ["he said.", "Phoebe here."]
    assert on.ledger[0].text.removed_by_reason() == {"prompt": 8}
    assert on.prompts_dropped == 3 and "prompt" in on.warnings[0]


def test_check_prints_the_ledger(workdirs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    book = workdirs["book"]
    (book / "notes.md").write_text(
        "---\ntitle: Notes\n---\n\n## Ports {#ports}\n\n<!-- CL 31141 -->\nGo 1.8 supports RFC 7232 [now](#x).\n\n"
        "| a | b |\n|---|---|\n| 1 | 2 |\n",
        encoding="utf-8",
    )
    manifest = write_manifest(book, "title: Notes\nauthor: A\nengine: fake\nsource: notes.md\ncredits: false\n")
    assert run(["check", str(manifest)]) == 0
    out = capsys.readouterr().out
    assert "ledger:" in out
    # "Go 1.8 supports RFC 7232 now." (the reader took the comment); the table is the reader's skip, summed by
    # reason on one line; the front matter lies outside the chapters.
    chapter = re.search(r"^  Ports.*\n      text: 6 words: 4 kept, 2 changed \(identifier 2\), 0 removed\n"
                        r"      reader skipped (\d+) words: (.+)$", out, re.MULTILINE)
    assert chapter, out
    assert int(chapter.group(1)) >= 4 and int(chapter.group(1)) == sum(map(int, re.findall(r" (\d+)(?:,|$)", chapter.group(2))))
    assert re.search(r"^  \(outside the chapters\)\n      reader skipped 2 words: ", out, re.MULTILINE), out
