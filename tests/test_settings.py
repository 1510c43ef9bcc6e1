"""tasks.settings: every environment variable defined once, read when asked, documented from its definition."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from tasks import settings
from tasks.errors import UserError

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ("cli", "flows", "service", "tasks")


def test_docs_settings_table_is_the_generated_one() -> None:
    text = (ROOT / "docs" / "settings.md").read_text(encoding="utf-8")
    table = "".join(line + "\n" for line in text.splitlines() if line.startswith("|"))
    assert table == settings.markdown_table(), "run: python -m tasks.settings, and paste its table into docs/settings.md"


def _environment_reads(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, what) of each read of os.environ / os.getenv whose key is not a literal name other than
    AUDIOBOOK_*: a variable read through a computed name counts too (it could be one of ours)."""
    found: list[tuple[int, str]] = []

    def is_environ(node: ast.AST) -> bool:
        return (isinstance(node, ast.Attribute) and node.attr == "environ") or (
            isinstance(node, ast.Name) and node.id == "environ")

    def ours(key: ast.AST | None) -> bool:
        if isinstance(key, ast.JoinedStr) and key.values:  # f"PREFECT_..._{x}": its literal start decides
            key = key.values[0]
        return not (isinstance(key, ast.Constant) and isinstance(key.value, str)
                    and not key.value.startswith("AUDIOBOOK"))

    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            target, method = node.func.value, node.func.attr
            key = node.args[0] if node.args else None
            if is_environ(target) and method in ("get", "setdefault", "pop") and ours(key):
                found.append((node.lineno, f"os.environ.{method}"))
            if isinstance(target, ast.Name) and target.id == "os" and method == "getenv" and ours(key):
                found.append((node.lineno, "os.getenv"))
        elif isinstance(node, ast.Subscript) and is_environ(node.value) and ours(node.slice):
            found.append((node.lineno, "os.environ[...]"))
        elif isinstance(node, ast.Compare) and any(is_environ(c) for c in node.comparators) and ours(node.left):
            found.append((node.lineno, "... in os.environ"))
    return found


def test_no_audiobook_variable_is_read_outside_settings() -> None:
    offenders = []
    for folder in SOURCE:
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path == ROOT / "tasks" / "settings.py":
                continue
            text = path.read_text(encoding="utf-8")
            offenders += [f"{path.relative_to(ROOT)}:{line}: {what}" for line, what in _environment_reads(ast.parse(text))]
            offenders += [f"{path.relative_to(ROOT)}: getenv" for _ in re.finditer(r"getenv\(\s*[\"']AUDIOBOOK_", text)]
    assert offenders == [], "read it through tasks.settings instead:\n" + "\n".join(offenders)


def test_the_grep_finds_a_read() -> None:
    """The check above is not vacuous: it sees each way of reading a variable."""
    code = ('import os\nos.environ.get("AUDIOBOOK_X")\nos.environ["AUDIOBOOK_Y"]\nos.getenv(name)\n'
            '"AUDIOBOOK_Z" in os.environ\nos.environ.get("HOME")\n')
    assert [line for line, _ in _environment_reads(ast.parse(code))] == [2, 3, 4, 5]


def test_every_variable_named_in_the_source_is_defined() -> None:
    named = set()
    for folder in SOURCE:
        for path in (ROOT / folder).rglob("*.py"):
            named |= set(re.findall(r"\bAUDIOBOOK_[A-Z0-9_]*[A-Z0-9]\b", path.read_text(encoding="utf-8")))
    assert named - set(settings.REGISTRY) == set()


def test_values_are_read_when_asked(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("AUDIOBOOK_WORKERS", raising=False)
    assert settings.WORKERS.get() == 2
    monkeypatch.setenv("AUDIOBOOK_WORKERS", "5")
    assert settings.WORKERS.get() == 5
    monkeypatch.setenv("AUDIOBOOK_WORKERS", "")  # empty: not set
    assert settings.WORKERS.get() == 2
    monkeypatch.setenv("AUDIOBOOK_CACHE_DIR", str(tmp_path))
    from tasks import paths

    assert paths.cache_dir() == tmp_path
    monkeypatch.setenv("AUDIOBOOK_TORTOISE_BATCHED", "0")
    assert settings.TORTOISE_BATCHED.get() is False
    monkeypatch.setenv("AUDIOBOOK_TORTOISE_BATCHED", "yes")
    assert settings.TORTOISE_BATCHED.get() is True


@pytest.mark.parametrize(("name", "value", "says"), [
    ("AUDIOBOOK_WORKERS", "many", "AUDIOBOOK_WORKERS: 'many' is not a whole number"),
    ("AUDIOBOOK_WORKERS", "0", "AUDIOBOOK_WORKERS: '0' must be at least 1"),
    ("AUDIOBOOK_MAX_MEMBERS", "-3", "AUDIOBOOK_MAX_MEMBERS: '-3' must be at least 1"),
    ("AUDIOBOOK_WORKER_WAIT_S", "soon", "AUDIOBOOK_WORKER_WAIT_S: 'soon' is not a number"),
    ("AUDIOBOOK_PUBLIC_DOWNLOADS", "maybe", "AUDIOBOOK_PUBLIC_DOWNLOADS: 'maybe' is neither 1 (on) nor 0 (off)"),
])
def test_a_bad_value_names_the_variable(monkeypatch: pytest.MonkeyPatch, name: str, value: str, says: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(UserError) as caught:
        settings.REGISTRY[name].get()
    assert str(caught.value).startswith(says) and caught.value.field == name


def test_the_render_flow_takes_its_thread_count_when_it_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """AUDIOBOOK_WORKERS set after flows.render is imported still counts (it was read at import)."""
    from flows.render import RenderThreads

    monkeypatch.setenv("AUDIOBOOK_WORKERS", "3")
    with RenderThreads().duplicate() as runner:
        assert runner._max_workers == 3


def test_set_for_child_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUDIOBOOK_PUBLIC_URL", "")  # empty: not set (and restored after the test)
    settings.PUBLIC_URL.setdefault("http://a:1")
    settings.PUBLIC_URL.setdefault("http://b:2")
    assert settings.PUBLIC_URL.get() == "http://a:1"
    monkeypatch.setenv("AUDIOBOOK_SERVE_CLUSTER", "")
    settings.SERVE_CLUSTER.set("tcp://x:8786")
    assert settings.SERVE_CLUSTER.get() == "tcp://x:8786"
