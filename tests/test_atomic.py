"""tasks.atomic: a finished file is written whole or not at all, and nothing else in the code renames files."""

from __future__ import annotations

import ast
import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tasks import atomic
from tasks.atomic import TEMP_MARK, atomic_path, stale_temp_files, write_bytes, write_text

REPO = Path(__file__).resolve().parent.parent


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_write_replaces_the_file_and_leaves_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "report.json"
    assert write_text(target, "first\n") == target  # the folder is made
    write_bytes(target, b"second")
    assert target.read_bytes() == b"second"
    assert names(target.parent) == ["report.json"]


def test_the_temp_file_lies_beside_the_target_hidden_and_keeps_a_suffix(tmp_path: Path) -> None:
    target = tmp_path / "book.m4b"
    with atomic_path(target, suffix=".m4b") as tmp:
        assert tmp.parent == tmp_path and tmp.exists() and tmp.stat().st_size == 0
        assert tmp.name.startswith(".book.m4b" + TEMP_MARK) and tmp.suffix == ".m4b"
        assert stale_temp_files(tmp_path) == [tmp]
        tmp.write_bytes(b"audio")
    assert names(tmp_path) == ["book.m4b"] and target.read_bytes() == b"audio"
    with atomic_path(target) as a, atomic_path(target) as b:  # two writers at once: two temp files
        assert a != b
        a.write_bytes(b"a")
        b.write_bytes(b"b")
    assert target.read_bytes() == b"a" and names(tmp_path) == ["book.m4b"]  # the last to finish wins


@settings(max_examples=25, deadline=None)
@given(old=st.one_of(st.none(), st.binary(max_size=300)), new=st.binary(max_size=3000), cut=st.integers(0, 3000),
       at_commit=st.booleans())
def test_a_failure_mid_write_leaves_the_old_file_and_no_temp_file(
    tmp_path_factory: pytest.TempPathFactory, old: bytes | None, new: bytes, cut: int, at_commit: bool
) -> None:
    folder = tmp_path_factory.mktemp("atomic")
    target = folder / "captions.vtt"
    if old is not None:
        target.write_bytes(old)
    real_replace = os.replace

    def full_disk(src: object, dst: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with pytest.raises(OSError, match="No space"):
        try:
            os.replace = full_disk  # no monkeypatch fixture under given
            with atomic_path(target) as tmp, open(tmp, "wb") as fh:
                fh.write(new[:cut])
                if not at_commit:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # the writer fails part-way
        finally:
            os.replace = real_replace
    assert names(folder) == ([] if old is None else ["captions.vtt"])
    if old is not None:
        assert target.read_bytes() == old


def test_any_exception_in_the_block_removes_the_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "book.epub"
    target.write_bytes(b"old")
    with pytest.raises(KeyboardInterrupt), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise KeyboardInterrupt
    assert names(tmp_path) == ["book.epub"] and target.read_bytes() == b"old"


def test_a_killed_writer_leaves_the_old_file_and_a_temp_file_a_sweep_finds(tmp_path: Path) -> None:
    target = tmp_path / "report.json"
    target.write_text("old")
    child = (
        "import os, sys\nfrom pathlib import Path\nfrom tasks.atomic import atomic_path\n"
        "with atomic_path(Path(sys.argv[1])) as tmp:\n"
        "    tmp.write_text('half of the new')\n"
        "    os._exit(9)  # killed before the rename\n"
    )
    proc = subprocess.run([sys.executable, "-c", child, str(target)], cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, check=False)
    assert proc.returncode == 9
    assert target.read_text() == "old"
    (stale,) = stale_temp_files(tmp_path)
    assert stale.name.startswith(".report.json" + TEMP_MARK) and stale.read_text() == "half of the new"


def test_the_file_and_its_folder_are_flushed_unless_not_durable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}") if os.path.exists("/proc/self/fd") else "?")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    target = tmp_path / "a.json"
    write_bytes(target, b"{}")
    assert len(synced) == 2
    if synced[0] != "?":
        assert TEMP_MARK in Path(synced[0]).name and Path(synced[1]) == tmp_path  # the file, then its folder
    synced.clear()
    write_bytes(target, b"{}", durable=False)
    assert synced == []


def test_without_overwrite_an_existing_file_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "book.yaml"
    write_bytes(target, b"first", overwrite=False)
    with pytest.raises(FileExistsError):
        write_bytes(target, b"second", overwrite=False)
    assert target.read_bytes() == b"first" and names(tmp_path) == ["book.yaml"]


def test_stale_temp_files_include_earlier_versions_names(tmp_path: Path) -> None:
    for name in (".book.partial.m4b", ".report.json.abc123.partial", f".x.mp3{TEMP_MARK}0011aabb.mp3", "book.m4b"):
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in stale_temp_files(tmp_path)] == [
        ".book.partial.m4b", ".report.json.abc123.partial", f".x.mp3{TEMP_MARK}0011aabb.mp3"]


# ---------------------------------------------------------------- no other way to write a file whole

# Calls that move or create files under a temp name, allowed outside tasks/atomic.py: (file, call) -> why.
# Files are matched by the end of their path, so the list holds when flows/service moves to service/.
ALLOWED = {
    ("service/uploads.py", "rename"): "moves uploaded files into the upload's private staging folder",
    ("service/routes/submit.py", "rename"): "swaps a staged book folder in (folders, not files) and back on failure",
    ("service/routes/submit.py", "move"): "moves a staged voice folder into the voices folder",
}
CHECKED = ("flows", "tasks", "service", "cli")


def _renames(path: Path) -> list[tuple[str, int]]:
    """(call, line) of every call in `path` that renames, links or makes a temp file to publish one."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        name, owner = node.func.attr, node.func.value
        owner_name = owner.id if isinstance(owner, ast.Name) else None
        if name in ("rename", "mkstemp", "NamedTemporaryFile", "link") or (name == "move" and owner_name == "shutil"):
            found.append((name, node.lineno))
        # os.replace(a, b), Path.replace(b); not str.replace(a, b) nor dataclasses/datetime .replace(x=...)
        elif name == "replace" and (owner_name == "os" or (len(node.args) == 1 and not node.keywords
                                                           and owner_name != "dataclasses")):
            found.append((name, node.lineno))
    return found


def test_no_file_is_renamed_into_place_outside_the_atomic_helper() -> None:
    offenders = []
    for top in CHECKED:
        for path in sorted((REPO / top).rglob("*.py")) if (REPO / top).is_dir() else []:
            rel = path.relative_to(REPO).as_posix()
            if rel == "tasks/atomic.py":
                continue
            for call, line in _renames(path):
                if not any(rel.endswith(f) and call == c for f, c in ALLOWED):
                    offenders.append(f"{rel}:{line}: {call}()")
    assert offenders == [], "write finished files with tasks.atomic (or add a reason to ALLOWED):\n" + "\n".join(offenders)


def test_the_source_scan_sees_renames() -> None:
    assert [c for c, _ in _renames(REPO / "tasks" / "atomic.py")] == ["replace", "link"]
    assert atomic.__file__.endswith("tasks/atomic.py")
