# ruff: noqa: F811  (the fixtures svc and service_factory come from tests.test_service)
"""Adding an engine is two files: its module and one line in tasks.engines. The fake engine
(tasks/engines/fake.py) is the proof: offered like the real engines, it shows in `audiobook doctor` and
`voices list`, /healthcheck, /engines and the upload form's default voice, and renders a book end to end,
with no other file edited. What callers ask of an engine is cheap: no model, no torch."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tasks.engines import (
    ENGINES,
    Engine,
    engine_doctor,
    engine_names,
    engine_status,
    register_engine,
    reset_engines,
    unregister_engine,
)
from tasks.engines.base import TEST_SENTENCE
from tasks.engines.fake import FakeEngine
from tests.conftest import write_manifest
from tests.test_service import AUTH, Service, service_factory, svc  # noqa: F401 - fixtures

REPO = Path(__file__).resolve().parent.parent
STORY = "Chapter 1\n\nThe lamps of the harbour went out one by one.\n\nChapter 2\n\nMorning came slowly.\n"


@pytest.fixture(params=["a line in ENGINES", "register_engine"])
def toy(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The fake engine offered like piper and tortoise (it is otherwise only rendered by name): by the one
    registry line of docs/architecture.md, or the same at run time through the public function."""
    assert "fake" not in engine_names()  # not offered until its line is there
    if request.param == "a line in ENGINES":
        monkeypatch.setitem(ENGINES, "fake", "tasks.engines.fake:FakeEngine")
    else:
        register_engine("fake", FakeEngine, listed=True)
    try:
        yield "fake"
    finally:
        unregister_engine("fake")
        reset_engines()


def test_a_toy_engine_shows_in_doctor_and_voices_list(toy: str, workdirs: dict[str, Path],
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    from cli import run

    assert engine_names()[-1] == toy
    assert run(["doctor", "--engine", toy]) == 0  # the parser's choices come from the registry
    report = json.loads(capsys.readouterr().out)
    assert report[toy]["ok"] is True and report[toy]["installed"] and report[toy]["device"] == "cpu"
    assert report[toy]["test_voice"] == "v" and report[toy]["test_audio_s"] > 1.0  # a sentence of speech
    assert run(["voices", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert f"{toy}: v  [any name]" in lines
    assert any(line.startswith("piper: ") for line in lines)


def test_a_toy_engine_shows_in_healthcheck_engines_and_the_form(toy: str, svc: Service,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")  # nothing listens: degraded, quickly
    health = svc.client.get("/healthcheck", timeout=60).json()
    assert health["engines"][toy] == {"installed": True, "ready": True, "reason": None, "device": "cpu",
                                      "voices": ["v"], "default_voice": "v",
                                      "qualities": ["draft", "standard", "high"], "clips": True}
    offered = {e["name"]: e for e in svc.client.get("/engines").json()}
    assert offered[toy]["voices"] == ["v"] and offered[toy]["clips"] is True
    assert f'<option value="{toy}" data-voices="v" data-default="v">' in svc.client.get("/", headers=AUTH).text
    # An upload that names the engine and no voice gets the engine's default voice.
    r = svc.client.post("/books", files=[("file", ("story.txt", STORY.encode()))],
                        data={"title": "Toy Book", "author": "A", "engine": toy}, headers=AUTH)
    assert r.status_code == 202, r.text
    manifest = yaml.safe_load((svc.config.manifests_dir / "toy-book" / "toy-book.yaml").read_text())
    assert (manifest["engine"], manifest["voice"]) == (toy, "v")


def test_an_upload_without_engine_gets_the_manifest_default_and_its_voice(svc: Service) -> None:
    r = svc.client.post("/books", files=[("file", ("story.txt", STORY.encode()))],
                        data={"title": "Plain Book", "author": "A"}, headers=AUTH)
    assert r.status_code == 202, r.text
    manifest = yaml.safe_load((svc.config.manifests_dir / "plain-book" / "plain-book.yaml").read_text())
    assert (manifest["engine"], manifest["voice"]) == ("piper", "joe")


@pytest.mark.usefixtures("prefect_harness")
def test_a_toy_engine_renders_a_book(workdirs: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    from flows.render import render_book

    monkeypatch.setitem(ENGINES, "fake", "tasks.engines.fake:FakeEngine")
    (workdirs["book"] / "one.txt").write_text("The toy engine speaks. It says two short sentences.")
    manifest = write_manifest(workdirs["book"], "title: Toy Book\nauthor: Test Author\nengine: fake\nvoice: v\n"
                              "chapters:\n  - {title: Only, file: one.txt}\n")
    reset_engines()
    report = render_book(str(manifest))
    assert report.engine == "fake" and report.chunks_synthesized == report.chunks_total > 0
    assert "Only" in [c.title for c in report.chapters]
    assert all(c.duration_s > 0.5 for c in report.chapters)
    assert (workdirs["output"] / "book" / "book.m4b").stat().st_size > 0


def test_an_engine_that_cannot_be_imported_reports_why(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(ENGINES, "ghost", "tasks.engines.no_such_engine:GhostEngine")
    status = engine_status("ghost", tmp_path)
    assert not status.installed and not status.ready
    assert status.reason is not None and "no_such_engine" in status.reason
    report = engine_doctor("ghost", tmp_path)
    assert report["ok"] is False and "no_such_engine" in report["error"]


def test_statuses_load_no_model_and_import_no_torch(tmp_path: Path) -> None:
    code = ("import sys; from pathlib import Path; from tasks.engines import engine_names, engine_status; "
            f"s = {{n: engine_status(n, Path({str(tmp_path)!r})) for n in engine_names()}}; "
            "assert s['piper'].default_voice == 'joe' and s['tortoise'].clips, s; "
            "assert 'torch' not in sys.modules and 'onnxruntime' not in sys.modules, 'imported a model runtime'")
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


def test_prompt_mode_is_part_of_the_interface() -> None:
    engine = FakeEngine()
    assert isinstance(engine, Engine) and engine.prompt_mode == "dropped"  # EngineBase's default


def docs_example() -> tuple[str, str]:
    """The toy engine's module and the registry block, as docs/architecture.md "Adding an engine" shows them."""
    section = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8").split("## Adding an engine", 1)[1]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) >= 2 and blocks[0].startswith("# tasks/engines/toy.py"), blocks
    return blocks[0], blocks[1]


def test_the_documented_toy_engine_works(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from cli import run

    module, registry_block = docs_example()
    lines = dict(re.findall(r'"(\w+)": "([\w.:]+)"', registry_block))
    assert lines == {**ENGINES, "toy": "tasks.engines.toy:ToyEngine"}  # the docs show today's registry + 1 line
    namespace: dict[str, Any] = {"__name__": "toy_from_docs"}
    exec(compile(module, "docs/architecture.md", "exec"), namespace)
    register_engine("toy", namespace["ToyEngine"], listed=True)
    try:
        assert engine_status("toy", tmp_path).default_voice == "hum"
        assert run(["doctor", "--engine", "toy"]) == 0
        report = json.loads(capsys.readouterr().out)["toy"]
        assert report["ok"] is True and report["test_voice"] == "hum"
        words = len(TEST_SENTENCE.split())
        assert report["test_audio_s"] == pytest.approx(words * 0.35, abs=0.01)  # 0.3 s of hum + 0.05 s gap a word
    finally:
        unregister_engine("toy")
        reset_engines()
