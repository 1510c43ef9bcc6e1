"""Content keys and the content-addressed audio cache."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import given, settings
from hypothesis import strategies as st

from tasks.cache import AudioCache, chunk_key, content_key, file_sha256
from tasks.synth import flac_bytes

BASE = {"text": "Hello there.", "voice_fingerprint": "v1", "engine": "piper", "engine_version": "1",
        "settings": {"a": 1, "b": 2}, "seed": 7}


def test_chunk_key_is_stable_and_order_free() -> None:
    assert chunk_key(**BASE) == chunk_key(**BASE)
    assert chunk_key(**{**BASE, "settings": {"b": 2, "a": 1}}) == chunk_key(**BASE)
    assert len(chunk_key(**BASE)) == 64


@pytest.mark.parametrize(
    ("field", "value"),
    [("text", "Hello there!"), ("voice_fingerprint", "v2"), ("engine", "tortoise"), ("engine_version", "2"),
     ("settings", {"a": 1, "b": 3}), ("seed", 8)],
)
def test_every_input_changes_the_chunk_key(field: str, value: object) -> None:
    assert chunk_key(**{**BASE, field: value}) != chunk_key(**BASE)


def test_kinds_do_not_collide() -> None:
    assert content_key("chunk", x=1) != content_key("chapter", x=1)


@pytest.fixture
def cache(tmp_path: Path) -> AudioCache:
    return AudioCache(tmp_path / "chunks")


def store(cache: AudioCache, key: str = "ab" * 32) -> Path:
    samples = np.sin(np.linspace(0, 200, 24000, dtype=np.float32)) * 0.3
    return cache.store(key, samples, 24000, rerolls=1)


def test_store_then_lookup_hits_with_metadata(cache: AudioCache) -> None:
    path = store(cache)
    assert cache.lookup("ab" * 32) == path
    assert cache.meta("ab" * 32)["rerolls"] == 1
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no temp files left
    assert cache.lookup("cd" * 32) is None


def test_truncated_or_rewritten_entries_are_misses_and_removed(cache: AudioCache) -> None:
    path = store(cache)
    path.write_bytes(path.read_bytes()[:200])
    assert cache.lookup("ab" * 32) is None
    assert not path.exists() and not path.with_suffix(".json").exists()
    path = store(cache)
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))  # same size, new modification time: the checksum decides
    assert cache.lookup("ab" * 32) is None


def test_a_copied_entry_is_verified_once_by_checksum(cache: AudioCache) -> None:
    path = store(cache)
    os.utime(path, ns=(1, 1))  # as after a copy that did not keep times
    assert cache.lookup("ab" * 32) == path
    assert json.loads(path.with_suffix(".json").read_text())["mtime_ns"] == 1  # the record is refreshed


def test_a_record_for_another_key_is_a_miss(cache: AudioCache) -> None:
    path = store(cache)
    sidecar = path.with_suffix(".json")
    sidecar.write_text(json.dumps({**json.loads(sidecar.read_text()), "key": "ef" * 32}))
    assert cache.lookup("ab" * 32) is None


def test_an_entry_recorded_with_no_audio_is_a_miss_and_removed(cache: AudioCache) -> None:
    key = "ab" * 32
    path = cache.store(key, np.zeros(0, dtype=np.float32), 24000)  # an empty take, as older versions stored
    assert cache.meta(key)["frames"] == 0
    assert cache.entry(key) is None
    assert not path.exists() and not path.with_suffix(".json").exists()


def test_entry_gives_the_file_and_its_record(cache: AudioCache) -> None:
    path = store(cache)
    assert cache.entry("ab" * 32) == (path, cache.meta("ab" * 32))
    sidecar = path.with_suffix(".json")
    record = json.loads(sidecar.read_text())
    del record["frames"]  # a record from before frame counts were kept: the file's header decides
    sidecar.write_text(json.dumps(record))
    found = cache.entry("ab" * 32)
    assert found is not None and found[0] == path


@given(frames=st.integers(1, 200_000), rate=st.sampled_from([8000, 16000, 22050, 24000, 44100, 48000]))
@settings(max_examples=25, deadline=None)
def test_store_bytes_records_what_libsndfile_reads(tmp_path_factory: pytest.TempPathFactory, frames: int,
                                                   rate: int) -> None:
    """FLAC bytes a worker sends: the sidecar's rate, frames and checksum (taken from the bytes in
    memory) are those of the stored file as libsndfile and sha256 read it back."""
    samples = (0.1 * np.sin(np.arange(frames) / 7.0)).astype(np.float32)
    cache = AudioCache(tmp_path_factory.mktemp("chunks"))
    path = cache.store_bytes("cd" * 32, flac_bytes(samples, rate), rerolls=1)
    info, meta = sf.info(str(path)), cache.meta("cd" * 32)
    assert (meta["sample_rate_hz"], meta["frames"]) == (info.samplerate, info.frames) == (rate, frames)
    assert meta["sha256"] == file_sha256(path) and meta["rerolls"] == 1
    assert cache.lookup("cd" * 32) == path


def test_store_bytes_refuses_bytes_that_are_not_audio(cache: AudioCache) -> None:
    for bad in (b"not audio at all", b"fLaC" + bytes(60)):
        with pytest.raises((ValueError, sf.LibsndfileError)):
            cache.store_bytes("ef" * 32, bad)
        assert cache.lookup("ef" * 32) is None and not cache.path_for("ef" * 32).exists()
