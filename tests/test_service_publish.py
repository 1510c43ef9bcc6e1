"""Publishing a re-render: new files are staged and swapped in together, so a render that fails
part-way (here: the disk fills while the M4B is written) leaves the previous complete book, byte for
byte, and no staging folder behind. Real flow, real ffmpeg, the fake engine."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

import tasks.encode
from tasks.atomic import TEMP_MARK
from tasks.errors import OutputError
from tests.test_faults import TITLES, assert_valid_book, book, chapter_text, fake, render  # noqa: F401

pytestmark = pytest.mark.usefixtures("prefect_harness")


def test_a_failed_re_render_keeps_the_previous_book(book: Path, fake: Any, workdirs: dict[str, Path]) -> None:  # noqa: F811
    out = workdirs["output"] / "book"
    first = render(book)
    assert_valid_book(out, first)
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != ".lock"}
    assert len([p for p in before if p.suffix == ".mp3"]) == 4  # three chapters and the sample
    # Every chapter changes: every MP3 and the M4B are encoded anew; the MP3s succeed, the M4B fails.
    for n in range(3):
        (book.parent / f"ch{n}.txt").write_text(chapter_text(n) + " An added sentence.")
    real_run = subprocess.run

    def ffmpeg(cmd: list[str], *args: Any, **kwargs: Any) -> Any:
        target = str(cmd[-1])
        if TEMP_MARK in target and target.endswith(".m4b"):
            Path(target).write_bytes(b"\x00" * 1000)
            return subprocess.CompletedProcess(cmd, 1, "", f"Error writing trailer of {target}: No space left on device\n")
        return real_run(cmd, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(tasks.encode.subprocess, "run", ffmpeg)
        with pytest.raises(OutputError, match="disk is full") as info:
            render(book)
    assert info.value.file == str(out)
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != ".lock"}
    assert after == before  # every file of the old book, unchanged; nothing new, nothing staged
    assert not list(out.glob(".staging-*"))
    assert_valid_book(out, first)
    second = render(book)  # the disk has room again: the new book replaces the old one whole
    assert second["chunks_synthesized"] == 0  # the failed render cached every new chunk
    assert_valid_book(out, second)
    assert second["duration_s"] > first["duration_s"]
    assert {p.relative_to(out) for p in out.rglob("*.mp3")} == {p for p in before if p.suffix == ".mp3"}
