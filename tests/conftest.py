"""Test set-up: an isolated Prefect home, cache and output per session; telemetry off."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_SESSION_DIR = Path(tempfile.mkdtemp(prefix="audiobook-tests-"))
# Before Prefect is imported anywhere: keep its database and settings out of the user's home.
os.environ["PREFECT_HOME"] = str(_SESSION_DIR / "prefect")
os.environ["DO_NOT_TRACK"] = "1"
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.pop("PREFECT_API_URL", None)

import pytest  # noqa: E402
from hypothesis import settings  # noqa: E402

# Property tests draw the same examples on every run ("ci", the default): a landing never fails by
# chance. `make fuzz` loads "fuzz" (new random examples each run, kept in .hypothesis/); a case it
# finds becomes an explicit @example in the test.
settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
settings.register_profile("fuzz", derandomize=False, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """One temporary Prefect server (SQLite) for the whole session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def workdirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """A private cache, output and voices folder for one test."""
    dirs = {name: tmp_path / name for name in ("cache", "output", "voices", "book")}
    for path in dirs.values():
        path.mkdir()
    monkeypatch.setenv("AUDIOBOOK_CACHE_DIR", str(dirs["cache"]))
    monkeypatch.setenv("AUDIOBOOK_OUTPUT_DIR", str(dirs["output"]))
    monkeypatch.setenv("AUDIOBOOK_VOICES_DIR", str(dirs["voices"]))
    return dirs


def write_manifest(folder: Path, body: str, name: str = "book.yaml") -> Path:
    path = folder / name
    path.write_text(body, encoding="utf-8")
    return path


@contextlib.contextmanager
def fake_engine(**kwargs: Any) -> Iterator[Any]:
    """Register one FakeEngine(**kwargs) as engine "fake" for the duration; restore the default after."""
    from tasks.engines import register_engine, reset_engines
    from tasks.engines.fake import FakeEngine

    engine = FakeEngine(**kwargs)
    register_engine("fake", lambda: engine)
    try:
        yield engine
    finally:
        register_engine("fake", FakeEngine)
        reset_engines()
