"""A manifest with `engine: tortoise` renders end to end through the same flow and the batched engine
path: the real Tortoise model classes at tiny size with random weights (no weights exist here), real
Prefect, real ffmpeg. Deleting a cache entry and rendering again reproduces that chunk's audio."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tasks.engines import reset_engines
from tests.conftest import write_manifest
from tests.media_probe import read_m4b_chapters

pytest.importorskip("torch")
pytest.importorskip("tortoise")

pytestmark = [
    pytest.mark.usefixtures("prefect_harness"),
    pytest.mark.filterwarnings("ignore::UserWarning"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
]
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def tiny_tortoise(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "AUDIOBOOK_TORTOISE_MODELS": "tiny", "AUDIOBOOK_TORTOISE_SAMPLES": "2",
        "AUDIOBOOK_TORTOISE_DIFFUSION_STEPS": "2", "AUDIOBOOK_TORTOISE_MAX_MEL_TOKENS": "40",
        "AUDIOBOOK_TORTOISE_AR_BATCH": "2",
        "AUDIOBOOK_TORTOISE_DEVICE": "cpu",  # a render refuses a GPU-less pool unless asked (tasks.workers)
    }.items():
        monkeypatch.setenv(name, value)
    reset_engines()
    yield
    reset_engines()


def test_tortoise_manifest_renders_end_to_end(workdirs: dict[str, Path], tiny_tortoise: None) -> None:
    from flows.render import render_book

    shutil.copytree(ROOT / "voices" / "joe", workdirs["voices"] / "narrator")
    (workdirs["book"] / "book.txt").write_text(
        "Chapter 1\n\nThe tide came in.\n\nA boat waited by the steps.\n\n"
        "Chapter 2\n\nThe tide went out. [softly] Gulls called.\n"
    )
    manifest = write_manifest(workdirs["book"], """
title: Tides
author: Test Author
engine: tortoise
voice: narrator
quality: draft
seed: 3
credits: false
speak_titles: false
prompts: true
verify: off  # the tiny random models speak no words: there is nothing to hear
source: book.txt
""")
    from tasks import synth

    calls: list[int] = []
    real_many = synth.synthesize_many

    def spy(engine: object, requests: list[object]) -> object:
        calls.append(len(requests))
        return real_many(engine, requests)  # type: ignore[arg-type]

    synth.synthesize_many = spy  # type: ignore[assignment]
    try:
        report = render_book(str(manifest)).to_dict()
    finally:
        synth.synthesize_many = real_many
    assert report["engine"] == "tortoise" and report["chunks_synthesized"] == report["chunks_total"] == 3
    assert calls == [3]  # one task, one engine call for the three chunks
    assert [c["title"] for c in report["chapters"]] == ["Chapter 1", "Chapter 2"]
    assert [t for t, _ in read_m4b_chapters(workdirs["output"] / "book" / "book.m4b")] == ["Chapter 1", "Chapter 2"]
    assert report["prompts_dropped"] == 1 and "prompts" in report["warnings"][0]  # no aligner offline
    assert list((workdirs["cache"] / "latents").glob("narrator-*.pt")), "voice latents are cached"
    again = render_book(str(manifest)).to_dict()
    assert again["chunks_synthesized"] == 0

    # Delete two of the three cached chunks: they render again (as a batch of two) to the same audio.
    files = sorted((workdirs["cache"] / "chunks").glob("*/*.flac"))
    before = {f.name: sf.read(f, dtype="float32")[0] for f in files}
    for f in files[:2]:
        f.unlink()
        f.with_suffix(".json").unlink()
    third = render_book(str(manifest)).to_dict()
    assert third["chunks_synthesized"] == 2
    for f in files:
        after = sf.read(f, dtype="float32")[0]
        assert after.shape == before[f.name].shape and np.abs(after - before[f.name]).max() < 1e-3
