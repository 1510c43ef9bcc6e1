"""Faults, on real Prefect and real ffmpeg with the fake engine: a hard kill mid-book, a damaged cache
and half-written output, flaky and broken engines, unwritable output folders and two renders at once."""

from __future__ import annotations

import builtins
import errno
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mutagen.mp3 import MP3

import tasks.encode
from tasks.atomic import TEMP_MARK
from tasks.cache import AudioCache
from tasks.engines import register_engine, reset_engines
from tasks.engines.fake import FakeEngine
from tasks.errors import OutputError, RenderError
from tasks.manifest import load_manifest
from tasks.plan import BookPlan, make_plan
from tests.conftest import fake_engine, write_manifest
from tests.media_probe import media_duration_s, read_m4b_chapters

pytestmark = pytest.mark.usefixtures("prefect_harness")

TITLES = ["Opening", "Second: The Storm", "Third: After"]
SENTENCES = [
    "The rain came early that year, and it did not stop for a week.",
    "Nobody in the village could remember a storm quite like it.",
    "The river rose over the bridge and into the lower fields.",
    "By the third night the bells had rung twice for help.",
    "Morning brought a pale sun and a great deal of mud.",
    "Children counted the boats that had drifted into the square.",
    "The baker opened late but gave away every loaf he had.",
    "Some of the old walls had fallen; most of them still stood.",
]


def chapter_text(n: int) -> str:
    """Six paragraphs (six chunks with a 200-character limit), each unique to chapter n."""
    return "\n\n".join(f"{SENTENCES[(n + i) % len(SENTENCES)]} Part {n}, paragraph {i}." for i in range(6))


@pytest.fixture
def fake() -> Iterator[FakeEngine]:
    with fake_engine(delay_s=0.0) as engine:  # max_chars=200: the same chunking as a subprocess's FakeEngine
        yield engine


@pytest.fixture
def book(workdirs: dict[str, Path]) -> Path:
    folder = workdirs["book"]
    for n in range(3):
        (folder / f"ch{n}.txt").write_text(chapter_text(n))
    chapters = "".join(f'  - {{title: "{t}", file: ch{n}.txt}}\n' for n, t in enumerate(TITLES))
    return write_manifest(folder, f"title: Fault Book\nauthor: Test Author\nengine: fake\nvoice: anyone\n"
                                  f"seed: 3\ncredits: false\nspeak_titles: false\nchapters:\n{chapters}")


def render(manifest: Path, **kwargs: Any) -> dict[str, Any]:
    from flows.render import render_book

    return render_book(str(manifest), **kwargs).to_dict()  # the report as report.json holds it


def the_plan(manifest: Path, cache: Path) -> BookPlan:
    return make_plan(load_manifest(manifest), engine_name=None, cache_dir=cache, voices_dir=cache.parent / "voices")


def finished_files(out: Path) -> list[Path]:
    """Every regular file in an output folder except the render lock."""
    return sorted(p for p in out.rglob("*") if p.is_file() and p.name != ".lock") if out.exists() else []


def temp_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if TEMP_MARK in p.name or "partial" in p.name] if folder.exists() else []


def book_shape(out: Path, stem: str = "book") -> dict[str, Any]:
    """What a listener gets: durations and chapter marks of the M4B, names and durations of the MP3s."""
    m4b = out / f"{stem}.m4b"
    return {
        "m4b_s": media_duration_s(m4b),
        "chapters": read_m4b_chapters(m4b),
        "mp3": {p.name: media_duration_s(p) for p in sorted((out / "mp3").glob("*.mp3"))},
    }


def assert_same_book(got: dict[str, Any], want: dict[str, Any]) -> None:
    assert got["m4b_s"] == pytest.approx(want["m4b_s"], abs=0.01)
    assert [t for t, _ in got["chapters"]] == [t for t, _ in want["chapters"]] == TITLES
    for (_, a), (_, b) in zip(got["chapters"], want["chapters"], strict=True):
        assert a == pytest.approx(b, abs=0.01)
    assert list(got["mp3"]) == list(want["mp3"])
    for name, seconds in want["mp3"].items():
        assert got["mp3"][name] == pytest.approx(seconds, abs=0.01)


def assert_valid_book(out: Path, report: dict[str, Any]) -> None:
    shape = book_shape(out)
    assert [t for t, _ in shape["chapters"]] == TITLES
    assert shape["m4b_s"] == pytest.approx(report["duration_s"], abs=0.1)
    for (name, seconds), chapter in zip(shape["mp3"].items(), report["chapters"], strict=True):
        assert seconds == pytest.approx(chapter["duration_s"], abs=0.1), name
        assert MP3(out / "mp3" / name).info.sample_rate == 44100
    on_disk = json.loads((out / "report.json").read_text())
    assert on_disk["chunks_total"] == on_disk["chunks_synthesized"] + on_disk["chunks_cached"]
    assert [c["title"] for c in on_disk["chapters"]] == TITLES
    assert not temp_files(out)


# --- a hard kill mid-book --------------------------------------------------------------------------


def subprocess_env(workdirs: dict[str, Path], **extra: str) -> dict[str, str]:
    """The test's folders, and the session's Prefect server (no temporary server per subprocess)."""
    from prefect.settings import get_current_settings

    env = {**os.environ, **extra}
    api_url = get_current_settings().api.url
    if api_url:
        env["PREFECT_API_URL"] = str(api_url)
    return env


def sidecars(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*.json") if not p.name.startswith(".")] if folder.exists() else []


def test_sigkill_mid_book_resumes_and_matches_a_clean_render(
    book: Path, workdirs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cmd = [sys.executable, "-m", "cli", "render", str(book)]
    chunks_dir = workdirs["cache"] / "chunks"
    log = (tmp_path / "killed.log").open("w")
    proc = subprocess.Popen(cmd, env=subprocess_env(workdirs, AUDIOBOOK_FAKE_DELAY_S="0.2"), stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while len(sidecars(chunks_dir)) < 3 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert proc.poll() is None, "the render finished (or died) before it could be killed"
        os.killpg(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        log.close()
    out = workdirs["output"] / "book"
    assert not (out / "book.m4b").exists() and not (out / "report.json").exists()
    cache = AudioCache(chunks_dir)
    present = [p for p in chunks_dir.rglob("*.flac") if not p.name.startswith(".") and cache.lookup(p.stem)]
    total = len(the_plan(book, workdirs["cache"]).chunks)
    assert total == 18  # 3 chapters x 6 paragraphs
    assert 3 <= len(present) < total

    resumed = subprocess.run(cmd, env=subprocess_env(workdirs), capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["chunks_total"] == total
    assert report["chunks_cached"] == len(present)
    assert report["chunks_synthesized"] == total - len(present)
    assert_valid_book(out, report)

    # A clean render of the same manifest, with a cache and an output folder of its own.
    engine = FakeEngine(delay_s=0.0)
    register_engine("fake", lambda: engine)
    try:
        monkeypatch.setenv("AUDIOBOOK_CACHE_DIR", str(tmp_path / "clean-cache"))
        clean = render(book, output_dir=str(tmp_path / "clean-out"))
    finally:
        register_engine("fake", FakeEngine)
        reset_engines()
    assert clean["chunks_synthesized"] == total
    assert_same_book(book_shape(out), book_shape(tmp_path / "clean-out" / "book"))


# --- a damaged cache and half-written output ------------------------------------------------------


def test_damaged_cache_and_half_written_output_are_detected_and_never_used(
    book: Path, fake: FakeEngine, workdirs: dict[str, Path]
) -> None:
    first = render(book)
    out = workdirs["output"] / "book"
    want = book_shape(out)
    plan = the_plan(book, workdirs["cache"])
    chunk_cache = AudioCache(workdirs["cache"] / "chunks", ".flac")
    chapter_cache = AudioCache(workdirs["cache"] / "chapters", ".wav")

    # Chunks: flipped bytes, truncated audio, garbage sidecar, a record that no longer describes the
    # file (size and sha differ), a sidecar that is JSON but not an object, a missing audio file.
    keys = [c.key for c in plan.chunks]
    damaged = keys[:6]
    audio = [chunk_cache.path_for(k) for k in damaged]
    flipped = bytearray(audio[0].read_bytes())
    flipped[len(flipped) // 2] ^= 0xFF
    audio[0].write_bytes(bytes(flipped))
    audio[1].write_bytes(audio[1].read_bytes()[:100])
    audio[2].with_suffix(".json").write_text("{not json")
    meta = json.loads(audio[3].with_suffix(".json").read_text())
    audio[3].with_suffix(".json").write_text(json.dumps({**meta, "sha256": "0" * 64, "size": meta["size"] + 1}))
    audio[4].with_suffix(".json").write_text("[1, 2]")
    audio[5].unlink()
    # Chapters: truncated audio, garbage sidecar, a wrong sha.
    wavs = sorted(p for p in (workdirs["cache"] / "chapters").rglob("*.wav") if not p.name.startswith("."))
    assert len(wavs) == 3
    wavs[0].write_bytes(wavs[0].read_bytes()[:1000])
    wavs[1].with_suffix(".json").write_text("\x00garbage")
    meta = json.loads(wavs[2].with_suffix(".json").read_text())
    wavs[2].with_suffix(".json").write_text(json.dumps({**meta, "sha256": "f" * 64, "mtime_ns": 1}))
    # Output: leftover temp files of a killed encode (this version's and earlier ones'), a truncated M4B and MP3
    # that the state calls fresh.
    (out / ".book.partial.m4b").write_bytes(b"\x00" * 4096)
    (out / "mp3" / ".01-opening.partial.mp3").write_bytes(b"ID3")
    (out / ".report.json.abc123.partial").write_bytes(b"{")
    m4b = out / "book.m4b"
    m4b.write_bytes(m4b.read_bytes()[: m4b.stat().st_size // 2])
    mp3 = sorted((out / "mp3").glob("*.mp3"))[1]
    mp3.write_bytes(mp3.read_bytes()[:2000])
    (out / f".book.m4b{TEMP_MARK}0a1b2c3d.m4b").write_bytes(b"\x00" * 4096)
    (out / "mp3" / f".01-opening.mp3{TEMP_MARK}0a1b2c3d.mp3").write_bytes(b"ID3")

    calls = dict(fake.calls)
    second = render(book)
    redone = [c.text for c in plan.chunks if fake.calls[c.text] > calls.get(c.text, 0)]
    assert sorted(redone) == sorted(c.text for c in plan.chunks if c.key in damaged)
    assert second["chunks_synthesized"] == len(damaged)
    assert second["chunks_cached"] == first["chunks_total"] - len(damaged)
    assert all(chunk_cache.lookup(k) for k in keys)
    assert all(chapter_cache.lookup(p.stem) for p in wavs)
    assert_valid_book(out, second)
    assert_same_book(book_shape(out), want)
    assert not temp_files(workdirs["output"])


def test_altered_output_file_with_fresh_state_is_encoded_again(
    book: Path, fake: FakeEngine, workdirs: dict[str, Path]
) -> None:
    """Same size, different bytes: the state records a checksum, not just that the file exists."""
    render(book)
    out = workdirs["output"] / "book"
    want = book_shape(out)
    m4b = out / "book.m4b"
    data = bytearray(m4b.read_bytes())
    data[-100:] = b"\x00" * 100
    m4b.write_bytes(bytes(data))
    from tasks import book as book_module

    encoded: list[str] = []
    real = book_module.encode_m4b

    def counting(*args: Any, **kwargs: Any) -> Path:
        encoded.append(str(args[2].name))  # (written in a staging folder, then swapped in)
        return real(*args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(book_module, "encode_m4b", counting)
        render(book)
        assert encoded == [m4b.name]
        render(book)  # now intact: not encoded again
        assert encoded == [m4b.name]
    assert_same_book(book_shape(out), want)


# --- flaky and broken engines ---------------------------------------------------------------------


def one_chunk_book(folder: Path) -> Path:
    return write_manifest(folder, "title: Tiny\nauthor: A\nengine: fake\nvoice: v\ncredits: false\nspeak_titles: false\n"
                                  "chapters:\n  - {title: Only, text: 'A single short sentence.'}\n", "tiny.yaml")


def test_four_transient_faults_per_chunk_are_absorbed_by_prefect_task_retries(
    fake: FakeEngine, workdirs: dict[str, Path]
) -> None:
    """3 tries inside the batch fail; Prefect's task retry runs the batch again and the 5th call works."""
    fake.transient_failures = 4
    report = render(one_chunk_book(workdirs["book"]))
    assert report["chunks_synthesized"] == report["chunks_total"] == 1
    assert fake.calls["A single short sentence."] == 5
    assert report["retries"] >= 1
    assert (workdirs["output"] / "tiny" / "tiny.m4b").exists()


def test_transient_faults_get_tries_per_chunk_and_a_batch_resumes_after_exhausting_them(
    fake: FakeEngine, workdirs: dict[str, Path]
) -> None:
    """Every chunk gets its own tries (3 in a task run, and the task's 2 Prefect retries run only what is
    still missing): 4 faults on every chunk of a batch still render. Faults that outlive all 9 tries end
    the render naming the chunk; the next render resumes."""
    fake.transient_failures = 4
    texts = ["First paragraph here.", "Second paragraph here.", "Third paragraph here."]
    (workdirs["book"] / "flaky.txt").write_text("\n\n".join(texts))
    manifest = write_manifest(workdirs["book"], "title: Flaky\nauthor: A\nengine: fake\nvoice: v\ncredits: false\n"
                              "speak_titles: false\nchapters:\n"
                              "  - {title: Only, file: flaky.txt}\n", "flaky.yaml")
    plan = the_plan(manifest, workdirs["cache"])
    assert [c.text for c in plan.chunks] == texts
    report = render(manifest)
    assert report["chunks_synthesized"] == 3
    assert [fake.calls[t] for t in texts] == [5, 5, 5]

    cache = AudioCache(workdirs["cache"] / "chunks")
    for chunk in plan.chunks:
        cache.evict(chunk.key)
    fake.calls.clear()
    fake.transient_failures = 10
    with pytest.raises(RenderError, match="TransientEngineError") as info:
        render(manifest)
    assert "chapter 1, chunk 1: 'First paragraph here.'" in str(info.value) and "2 more chunks failed" in str(info.value)
    assert [fake.calls[t] for t in texts] == [9, 9, 9]
    assert [cache.lookup(c.key) is not None for c in plan.chunks] == [False, False, False]
    report = render(manifest)
    assert (report["chunks_cached"], report["chunks_synthesized"]) == (0, 3)
    assert [fake.calls[t] for t in texts] == [11, 11, 11]


def test_a_chunk_that_always_fails_leaves_everything_else_cached_and_no_output(
    book: Path, fake: FakeEngine, workdirs: dict[str, Path]
) -> None:
    plan = the_plan(book, workdirs["cache"])
    bad = plan.chapters[1].chunks[2]
    fake.fail_texts = (bad.text,)
    with pytest.raises(RenderError) as info:
        render(book)
    message = str(info.value)
    assert "Second: The Storm" in message and bad.text[:40] in message
    assert "chapter 2, chunk 3" in message
    cache = AudioCache(workdirs["cache"] / "chunks")
    assert cache.lookup(bad.key) is None
    assert all(cache.lookup(c.key) is not None for c in plan.chunks if c.key != bad.key)
    out = workdirs["output"] / "book"
    assert not (out / "book.m4b").exists() and not (out / "mp3").exists() and not (out / "report.json").exists()
    assert finished_files(out) == []


# --- write failures ---------------------------------------------------------------------------------


def refuse_writes_under(mp: pytest.MonkeyPatch, root: Path, code: int, *, everything: bool) -> None:
    """Make writes under `root` fail with `code`: renames always; with `everything` also creating files
    and folders (as on a read-only mount). Root runs the tests, so chmod would not stop it."""
    root = root.absolute()

    def under(path: Any) -> bool:
        if isinstance(path, int):
            return False
        try:
            return Path(os.fsdecode(path)).absolute().is_relative_to(root)
        except (TypeError, ValueError):
            return False

    def refuse(path: Any) -> None:
        raise OSError(code, os.strerror(code), os.fsdecode(path))

    real_replace, real_open, real_mkdir, real_builtin_open = os.replace, os.open, os.mkdir, builtins.open

    def replace(src: Any, dst: Any, **kw: Any) -> None:
        if under(dst):
            refuse(dst)
        real_replace(src, dst, **kw)

    mp.setattr(os, "replace", replace)
    if not everything:
        return

    def os_open(path: Any, flags: int, *args: Any, **kw: Any) -> int:
        if under(path) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            refuse(path)
        return real_open(path, flags, *args, **kw)

    def mkdir(path: Any, *args: Any, **kw: Any) -> None:
        if under(path):
            refuse(path)
        real_mkdir(path, *args, **kw)

    def builtin_open(file: Any, mode: str = "r", *args: Any, **kw: Any) -> Any:
        if under(file) and any(m in mode for m in "wax+"):
            refuse(file)
        return real_builtin_open(file, mode, *args, **kw)

    mp.setattr(os, "open", os_open)
    mp.setattr(os, "mkdir", mkdir)
    mp.setattr(builtins, "open", builtin_open)


@pytest.mark.parametrize(
    ("code", "everything", "words"),
    [(errno.EACCES, False, "permission denied"), (errno.EROFS, True, "read-only")],
    ids=["rename-denied", "read-only-mount"],
)
def test_unwritable_output_folder_is_a_clear_error_and_leaves_nothing(
    book: Path, fake: FakeEngine, workdirs: dict[str, Path], code: int, everything: bool, words: str
) -> None:
    with pytest.MonkeyPatch.context() as mp:
        refuse_writes_under(mp, workdirs["output"], code, everything=everything)
        with pytest.raises(OutputError) as info:
            render(book)
    message = str(info.value)
    assert words in message and str(workdirs["output"] / "book") in message
    assert "\n" not in message
    assert finished_files(workdirs["output"]) == []
    assert not temp_files(workdirs["output"])
    report = render(book)  # writable again: the chunks were all cached
    assert report["chunks_synthesized"] == 0
    assert_valid_book(workdirs["output"] / "book", report)


def test_full_disk_while_encoding_the_m4b_removes_the_mp3s_already_written(
    book: Path, fake: FakeEngine, workdirs: dict[str, Path]
) -> None:
    """ffmpeg runs out of space on the M4B after every MP3 was published: the book is not left half done."""
    real_run = subprocess.run
    seen: list[str] = []

    def ffmpeg(cmd: list[str], *args: Any, **kwargs: Any) -> Any:
        target = str(cmd[-1])
        if TEMP_MARK in target and target.endswith(".m4b"):
            seen.append(target)
            Path(target).write_bytes(b"\x00" * 1000)  # what ffmpeg had written when the disk filled
            return subprocess.CompletedProcess(
                cmd, 1, "", f"[out#0/ipod @ 0x1] Error writing trailer of {target}: No space left on device\n")
        return real_run(cmd, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(tasks.encode.subprocess, "run", ffmpeg)
        with pytest.raises(OutputError, match="disk is full") as info:
            render(book)
    assert seen and str(workdirs["output"] / "book") in str(info.value)
    assert finished_files(workdirs["output"]) == []
    assert not temp_files(workdirs["output"])


def test_full_disk_writing_the_report_is_an_output_error(
    book: Path, fake: FakeEngine, workdirs: dict[str, Path]
) -> None:
    real_replace = os.replace

    def replace(src: Any, dst: Any, **kw: Any) -> None:
        if Path(os.fsdecode(dst)).name == "report.json":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_replace(src, dst, **kw)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(os, "replace", replace)
        with pytest.raises(OutputError, match="disk is full"):
            render(book)
    out = workdirs["output"] / "book"
    assert not (out / "report.json").exists()
    assert not temp_files(workdirs["output"])


def test_cli_read_only_output_exits_2_with_one_line(
    book: Path, fake: FakeEngine, workdirs: dict[str, Path], capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from cli import run

    for handler in ("CONSOLE", "CONSOLE_FLOW_RUNS", "CONSOLE_TASK_RUNS"):  # cli sets these: undo afterwards
        monkeypatch.setenv(f"PREFECT_LOGGING_HANDLERS_{handler}_LEVEL", "CRITICAL")
    monkeypatch.setattr("flows.prefect_server.server_healthy", lambda *a, **k: False)
    with pytest.MonkeyPatch.context() as mp:
        refuse_writes_under(mp, workdirs["output"], errno.EROFS, everything=True)
        code = run(["render", str(book)])
    err = capsys.readouterr().err
    assert code == 2, err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "read-only" in errors[0] and str(workdirs["output"]) in errors[0]
    assert "Traceback" not in err
    assert finished_files(workdirs["output"]) == []


# --- two renders at once -------------------------------------------------------------------------


def test_two_renders_of_one_book_at_once(book: Path, fake: FakeEngine, workdirs: dict[str, Path]) -> None:
    fake.delay_s = 0.02  # long enough for the two renders to overlap
    reports: list[dict[str, Any]] = []
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def one() -> None:
        try:
            start.wait()
            reports.append(render(book))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    assert len(reports) == 2
    total = reports[0]["chunks_total"]
    assert all(r["chunks_total"] == total == r["chunks_synthesized"] + r["chunks_cached"] for r in reports)
    out = workdirs["output"] / "book"
    on_disk = json.loads((out / "report.json").read_text())
    assert on_disk in [json.loads(json.dumps(r)) for r in reports]  # one render's report, whole
    assert_valid_book(out, on_disk)
    assert sorted(p.name for p in (out / "mp3").glob("*.mp3")) == [
        "01-opening.mp3", "02-second-the-storm.mp3", "03-third-after.mp3"]
    again = render(book)
    assert again["chunks_synthesized"] == 0

