"""The render report as a type (tasks.report) and one read of the book per `audiobook render`."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tasks.engines.fake import FakeEngine
from tasks.report import SCHEMA_VERSION, BookReport
from tests.conftest import fake_engine, write_manifest

pytestmark = pytest.mark.usefixtures("prefect_harness")

# The keys report.json had before it became a type (plus schema_version): readers outside this project
# (scripts, dashboards) keep finding every one of them.
BOOK_KEYS = {
    "schema_version", "title", "author", "manifest", "engine", "engine_version", "device", "voice", "quality",
    "seed", "chunks_total", "chunks_synthesized", "chunks_cached", "rerolls", "retries", "chunks_run_twice",
    "bad_takes", "prompts_dropped", "ledger", "wall_seconds", "engine_seconds", "estimated_cost", "duration_s",
    "chapters", "sample", "files", "warnings", "inputs_digest",
}
CHAPTER_KEYS = {"title", "duration_s", "rms_dbfs", "peak_dbfs", "lufs", "noise_floor_dbfs", "chunks", "kind", "words",
                "words_per_minute", "heard"}
LEDGER_KEYS = {"title", "words", "kept", "changed", "removed", "removed_examples", "skipped"}
SAMPLE_KEYS = {"file", "chapter", "duration_s"}

STORY = "\n\n".join(
    f"Paragraph {n} of the tale goes on for a while. It has two sentences, both plain." for n in range(1, 40)
)


@pytest.fixture
def fake() -> Iterator[FakeEngine]:
    with fake_engine(max_chars=80) as engine:
        yield engine


@pytest.fixture
def book(workdirs: dict[str, Path]) -> Path:
    folder = workdirs["book"]
    (folder / "one.txt").write_text(STORY, encoding="utf-8")
    (folder / "two.md").write_text("# Two\n\nThe second chapter is short. It ends here.\n", encoding="utf-8")
    return write_manifest(folder, """
title: Report Book
author: Test Author
engine: fake
voice: anyone
chapters:
  - {title: One, file: one.txt}
  - {title: Two, file: two.md}
""")


def test_rendered_report_keeps_its_keys_and_reads_back(book: Path, fake: FakeEngine, workdirs: dict[str, Path]) -> None:
    from flows.render import render_book

    report = render_book(str(book))
    path = workdirs["output"] / "book" / "report.json"
    on_disk = json.loads(path.read_text(encoding="utf-8"))
    assert set(on_disk) == BOOK_KEYS
    assert on_disk["schema_version"] == SCHEMA_VERSION
    assert on_disk["chapters"] and all(set(c) == CHAPTER_KEYS for c in on_disk["chapters"])
    assert on_disk["ledger"] and all(set(e) == LEDGER_KEYS for e in on_disk["ledger"])
    assert on_disk["sample"] is not None and set(on_disk["sample"]) == SAMPLE_KEYS
    # The returned report is what was written; it reads back equal, and writes the same bytes again.
    assert report.to_dict() == on_disk
    again = BookReport.from_json(path)
    assert again == report and again.to_json() == path.read_text(encoding="utf-8")
    assert [c.title for c in again.chapters] == ["Opening Credits", "One", "Two", "End Credits"]
    assert again.sample is not None and again.sample.chapter == "One"


def test_a_report_without_a_version_still_reads(tmp_path: Path) -> None:
    """A report written before schema_version (and one with keys from a later version) reads."""
    path = tmp_path / "report.json"
    old: dict[str, Any] = {
        "title": "Old", "author": "A", "manifest": "/books/old.yaml", "engine": "piper", "chunks_total": 3,
        "duration_s": 12.5, "chapters": [{"title": "The Storm", "duration_s": 6.0, "heard": None}],
        "sample": None, "files": ["old.m4b"], "inputs_digest": "abc", "a_later_key": 1,
    }
    path.write_text(json.dumps(old), encoding="utf-8")
    report = BookReport.from_json(path)
    assert report.schema_version == 0 and report.title == "Old" and report.engine == "piper"
    assert report.chapters[0].title == "The Storm" and report.chapters[0].duration_s == 6.0
    assert report.inputs_digest == "abc" and report.files == ["old.m4b"] and report.sample is None


@pytest.mark.parametrize("text", ["[1, 2]", '{"chapters": "none"}', '{"chunks_total": "many"}'])
def test_what_is_not_a_report_is_refused(tmp_path: Path, text: str) -> None:
    path = tmp_path / "report.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError):
        BookReport.from_json(path)


def test_cli_render_reads_each_source_once(
    book: Path, fake: FakeEngine, workdirs: dict[str, Path], monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """One `audiobook render`: the manifest is parsed once, every source document once and the book
    planned once (the CLI's checks read and plan it; the flow takes that plan: the fake engine's worker
    facts change none of its keys)."""
    import tasks.manifest
    import tasks.plan
    import tasks.source
    from cli import run

    for handler in ("CONSOLE", "CONSOLE_FLOW_RUNS", "CONSOLE_TASK_RUNS"):  # cli sets these: undo afterwards
        monkeypatch.setenv(f"PREFECT_LOGGING_HANDLERS_{handler}_LEVEL", "CRITICAL")
    monkeypatch.setattr("flows.prefect_server.server_healthy", lambda *a, **k: False)
    documents: Counter[str] = Counter()
    manifests: Counter[str] = Counter()
    plans = 0
    read_document, validate_manifest = tasks.source.read_document, tasks.manifest.validate_manifest
    plan_chapters = tasks.plan.plan_chapters

    def counted_plan(*args: Any, **kwargs: Any) -> Any:
        nonlocal plans
        plans += 1
        return plan_chapters(*args, **kwargs)

    def counted_read(path: Path, *args: Any, **kwargs: Any) -> Any:
        documents[Path(path).name] += 1
        return read_document(path, *args, **kwargs)

    def counted_validate(data: Any, path: Path, *args: Any, **kwargs: Any) -> Any:
        manifests[Path(path).name] += 1
        return validate_manifest(data, path, *args, **kwargs)

    monkeypatch.setattr(tasks.source, "read_document", counted_read)
    monkeypatch.setattr(tasks.manifest, "validate_manifest", counted_validate)
    monkeypatch.setattr(tasks.plan, "plan_chapters", counted_plan)
    assert run(["render", str(book)]) == 0, capsys.readouterr().err
    assert documents == {"one.txt": 1, "two.md": 1}
    assert manifests == {"book.yaml": 1} and plans == 1
    out = capsys.readouterr().out
    assert "Rendered 'Report Book': 4 chapters" in out and str(workdirs["output"] / "book" / "report.json") in out
    assert (workdirs["output"] / "book" / "report.json").is_file()

    # Without the CLI (a deployment's run, the nightly flow), the flow reads the book itself, once.
    from flows.render import render_book

    documents.clear()
    manifests.clear()
    plans = 0
    assert render_book(str(book)).chunks_cached > 0
    assert documents == {"one.txt": 1, "two.md": 1} and manifests == {"book.yaml": 1} and plans == 1


def test_the_checked_plan_is_reused_only_when_the_worker_changes_nothing(
    book: Path, fake: FakeEngine, workdirs: dict[str, Path],
) -> None:
    """A worker that runs another engine version (Tortoise in another precision) gets a plan keyed for
    it; one that runs what the check assumed gets the checked plan as it is."""
    from tasks.manifest import load_manifest
    from tasks.plan import make_plan, reuse_checked_plan
    from tasks.source import read_source
    from tasks.workers import WorkerFacts

    source = read_source(load_manifest(book))
    checked = make_plan(source.manifest, engine_name=None, cache_dir=workdirs["cache"], voices_dir=workdirs["voices"],
                        check_only=True, source=source)
    same = WorkerFacts(engine="fake", version=checked.engine_info.version, device=checked.engine_info.device,
                       precision="fp32", capacity=1, host="here")
    reused = reuse_checked_plan(checked, same, source)
    assert reused is not None and reused.worker == same and reused.chunks == checked.chunks
    other = WorkerFacts(engine="fake", version="fake-2", device=same.device, precision="fp32", capacity=1,
                        host="there")
    assert reuse_checked_plan(checked, other, source) is None
    replanned = make_plan(source.manifest, engine_name=None, cache_dir=workdirs["cache"],
                          voices_dir=workdirs["voices"], facts=other, source=source)
    assert {c.key for c in replanned.chunks}.isdisjoint(c.key for c in checked.chunks)
