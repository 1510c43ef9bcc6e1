"""Stateless workers: a synthesis task outside the renderer's process sends its audio back as bytes; the
renderer stores it in its own cache. No shared disk between the workers and the renderer."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import soundfile as sf

from tasks import synth
from tasks.cache import AudioCache
from tasks.engines import register_engine, reset_engines
from tasks.engines.fake import FakeEngine
from tasks.errors import TransientEngineError
from tasks.plan import Chunk, SynthJob
from tests.conftest import write_manifest

ELSEWHERE = "another-host/4242"  # a renderer that is not this process
TEXTS = ["The first sentence of the book.", "A second one, a little longer.", "The third and last sentence."]


@pytest.fixture
def engine() -> Iterator[FakeEngine]:
    fake = FakeEngine()
    register_engine("fake", lambda: fake)
    yield fake
    reset_engines()


def chunks() -> list[Chunk]:
    return [Chunk(0, i, t, 300, hashlib.sha256(t.encode()).hexdigest()) for i, t in enumerate(TEXTS)]


def job(cache: Path) -> SynthJob:
    return SynthJob(engine="fake", voice="v", settings={}, seed=7, voices_dir=None, cache_dir=str(cache))


def files_under(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()]


def test_a_worker_elsewhere_returns_flac_bytes_and_writes_nothing(engine: FakeEngine, tmp_path: Path) -> None:
    the_job = job(tmp_path / "cache")
    out = synth.synthesize_batch(chunks(), the_job, renderer=ELSEWHERE)
    assert not (tmp_path / "cache").exists()  # nothing on the worker's disk
    for c in chunks():
        result = out.results[c.key]
        assert result.path == "" and result.audio is not None and not result.cached
        info = sf.info(__import__("io").BytesIO(result.audio))
        assert info.format == "FLAC" and info.samplerate == 24000 and info.duration > 0.5
    # The renderer stores them: paths in its cache, verified hits, bytes dropped from the results.
    received = synth.receive_batch(out, the_job)
    cache = AudioCache(tmp_path / "cache" / "chunks")
    for c in chunks():
        result = received.results[c.key]
        assert result.audio is None and cache.lookup(c.key) == Path(result.path)
        assert cache.meta(c.key)["worker_pid"] == os.getpid() and cache.meta(c.key)["rerolls"] == 0
    assert sum(engine.calls.values()) == 3
    # Rendered again by the renderer itself: all hits, no engine call.
    again = synth.synthesize_batch(chunks(), the_job, renderer=synth.renderer_id())
    assert all(r.cached and r.audio is None for r in again.results.values())
    assert sum(engine.calls.values()) == 3


def test_the_renderers_own_process_stores_each_chunk_as_it_is_spoken(engine: FakeEngine, tmp_path: Path) -> None:
    out = synth.synthesize_batch(chunks(), job(tmp_path), renderer=synth.renderer_id())
    assert all(r.audio is None and Path(r.path).is_file() for r in out.results.values())


def test_a_worker_that_sees_the_cache_sends_its_hits_as_bytes(engine: FakeEngine, tmp_path: Path) -> None:
    the_job = job(tmp_path)
    synth.synthesize_batch(chunks(), the_job)  # cached where the worker can see it
    out = synth.synthesize_batch(chunks(), the_job, renderer=ELSEWHERE)
    assert all(r.cached and r.audio is not None for r in out.results.values())
    assert sum(engine.calls.values()) == 3  # no chunk spoken twice


def test_a_retry_on_the_same_worker_does_not_speak_finished_chunks_again(tmp_path: Path) -> None:
    """A transient fault that outlives its tries fails the task after the rest of the batch is done; the
    task's retry (same worker process) takes the finished chunks from memory, nothing from disk."""
    fake = FakeEngine(transient_failures=0)
    register_engine("fake", lambda: fake)
    flaky = TEXTS[1]
    original = fake.synthesize

    def synthesize(text: str, *args: object, **kwargs: object) -> object:
        if text == flaky and fake.calls[text] < synth.TRANSIENT_TRIES:
            fake.calls[text] += 1
            raise TransientEngineError("the device went away")
        return original(text, *args, **kwargs)  # type: ignore[arg-type]

    fake.synthesize = synthesize  # type: ignore[method-assign]
    try:
        the_job = job(tmp_path / "cache")
        with pytest.raises(TransientEngineError, match="device went away"):
            synth.synthesize_batch(chunks(), the_job, renderer=ELSEWHERE)
        assert {t: fake.calls[t] for t in TEXTS} == {TEXTS[0]: 1, flaky: 3, TEXTS[2]: 1}
        out = synth.synthesize_batch(chunks(), the_job, renderer=ELSEWHERE)  # the retry
        assert {t: fake.calls[t] for t in TEXTS} == {TEXTS[0]: 1, flaky: 4, TEXTS[2]: 1}
        assert all(r.audio is not None for r in out.results.values()) and not (tmp_path / "cache").exists()
    finally:
        reset_engines()


@pytest.mark.usefixtures("prefect_harness")
def test_workers_with_their_own_cache_folder_render_a_complete_book(
    workdirs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two Dask worker processes whose AUDIOBOOK_CACHE_DIR is another folder, and whose view of the
    renderer's cache path is their own folder too (tests/separate_disk_worker.py): no shared disk. The
    book is complete, every chunk came from a worker and sits in the renderer's cache, written there by
    the renderer; the workers' folder holds no chunk audio."""
    from prefect.settings import PREFECT_API_URL
    from prefect_dask import DaskTaskRunner

    from flows.render import render_book
    from tests.media_probe import read_m4b_chapters

    monkeypatch.setenv("PREFECT_API_URL", str(PREFECT_API_URL.value()))  # the workers report to it too
    monkeypatch.setenv("AUDIOBOOK_FAKE_DELAY_S", "0.05")  # so both workers get batches
    worker_cache = tmp_path / "worker-cache"
    for name, count in (("one", 20), ("two", 20)):
        text = "\n\n".join(f"Part {name}, paragraph {i}, begins here. It has two sentences." for i in range(count))
        (workdirs["book"] / f"{name}.txt").write_text(text)
    manifest = write_manifest(workdirs["book"], "title: W\nauthor: X\nengine: fake\nvoice: v\ncredits: false\n"
                                                  "speak_titles: false\nchapters:\n  - {title: One, file: one.txt}\n"
                                                  "  - {title: Two, file: two.txt}\n")

    def runner() -> DaskTaskRunner:
        return DaskTaskRunner(cluster_kwargs={
            "n_workers": 2, "threads_per_worker": 1, "processes": True, "dashboard_address": ":0",
            "env": {"AUDIOBOOK_CACHE_DIR": str(worker_cache)}, "preload": ["tests.separate_disk_worker"],
        })

    report = render_book.with_options(task_runner=runner())(str(manifest)).to_dict()
    assert report["chunks_synthesized"] == report["chunks_total"] == 40
    assert [c["title"] for c in report["chapters"]] == ["One", "Two"]
    assert all(c["duration_s"] > 20 for c in report["chapters"])
    m4b = workdirs["output"] / "book" / "book.m4b"
    assert [t for t, _ in read_m4b_chapters(m4b)] == ["One", "Two"]
    cache = AudioCache(workdirs["cache"] / "chunks")
    sidecars = list((workdirs["cache"] / "chunks").rglob("*.json"))
    assert len(sidecars) == 40 and all(cache.lookup(p.stem) for p in sidecars)
    pids = {json.loads(p.read_text())["worker_pid"] for p in sidecars}
    assert os.getpid() not in pids and len(pids) >= 1, pids
    assert not [p for p in files_under(worker_cache) if p.suffix in (".flac", ".wav")]
    again = render_book.with_options(task_runner=runner())(str(manifest)).to_dict()
    assert again["chunks_synthesized"] == 0 and again["chunks_cached"] == 40
