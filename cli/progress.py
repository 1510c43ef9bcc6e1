"""A progress bar on the terminal while a render runs in this process."""

from __future__ import annotations

import sys


class terminal_progress:
    """A progress bar on stderr while a render runs in this process."""

    def __enter__(self) -> terminal_progress:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        from tasks import progress

        self._bar = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            transient=True, disable=not sys.stderr.isatty(),
        )
        self._bar.start()
        self._task = self._bar.add_task("planning", total=None)
        self._unsubscribe = progress.subscribe(self._update)
        return self

    def _update(self, done: int, total: int, stage: str) -> None:
        self._bar.update(self._task, completed=done, total=total, description=stage)

    def __exit__(self, *exc: object) -> None:
        self._unsubscribe()
        self._bar.stop()
