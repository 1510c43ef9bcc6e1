"""Dask worker preload for tests: this worker process sees its own disk, not the renderer's.

`dask_setup` points the chunk and chapter caches of the worker at folders under the worker's own
AUDIOBOOK_CACHE_DIR, as if the renderer's cache path named a folder on another machine. A render can
then complete only if the workers send their audio back instead of leaving it on a shared disk.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def dask_setup(worker: Any) -> None:
    from tasks import book, paths, synth
    from tasks.cache import AudioCache

    own = paths.cache_dir()  # the worker's own AUDIOBOOK_CACHE_DIR
    synth.chunk_cache = lambda job: AudioCache(Path(own) / "chunks", ".flac")  # type: ignore[assignment]
    book.chapter_cache = lambda job: AudioCache(Path(own) / "chapters", ".wav")  # type: ignore[assignment]
