"""The nightly flow: re-render every manifest whose inputs changed since its last successful render.

A book is due when it has no report yet, or its report's `inputs_digest` differs from the digest of
its manifest, sources, cover and voice clips now. Unchanged books cost a few file hashes. One failing
book does not stop the others; the run fails at the end if any book failed, naming them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact

from flows.render import render_book
from tasks import paths
from tasks.errors import AudiobookError, RenderError
from tasks.inputs import book_inputs_digest
from tasks.manifest import load_manifest
from tasks.report import REPORT_NAME, BookReport


def due_books(manifests_dir: Path, output_dir: Path, voices_dir: Path) -> tuple[list[Path], list[Path], dict[str, str]]:
    """(due, unchanged, invalid name -> reason) for the manifests in `manifests_dir`."""
    due: list[Path] = []
    unchanged: list[Path] = []
    invalid: dict[str, str] = {}
    books = [*manifests_dir.glob("*.yaml"), *(p for p in manifests_dir.glob("*/*.yaml") if p.stem == p.parent.name)]
    for path in sorted(books, key=lambda p: p.stem):  # flat manifests and book folders (POST /books)
        try:
            digest = book_inputs_digest(load_manifest(path), voices_dir)
        except AudiobookError as exc:
            invalid[path.stem] = str(exc)
            continue
        try:
            last = BookReport.from_json(output_dir / path.stem / REPORT_NAME).inputs_digest
        except (OSError, ValueError):
            last = None
        (unchanged if last == digest else due).append(path)
    return due, unchanged, invalid


@flow(name="nightly", log_prints=True)
def nightly(manifests_dir: str | None = None, output_dir: str | None = None) -> dict[str, Any]:
    """Render the books whose inputs changed; skip the rest."""
    logger = get_run_logger()
    out = Path(output_dir) if output_dir else paths.output_dir()
    due, unchanged, invalid = due_books(Path(manifests_dir or paths.manifests_dir()), out, paths.voices_dir())
    failed: dict[str, str] = dict(invalid)
    rendered: list[str] = []
    for path in due:
        try:
            render_book(str(path), output_dir=output_dir)
            rendered.append(path.stem)
        except Exception as exc:  # one book's failure must not stop the others
            failed[path.stem] = f"{type(exc).__name__}: {exc}"
    summary = {"rendered": rendered, "skipped": [p.stem for p in unchanged], "failed": failed}
    create_table_artifact(
        [{"book": name, "result": "rendered"} for name in rendered]
        + [{"book": p.stem, "result": "unchanged"} for p in unchanged]
        + [{"book": name, "result": f"failed: {why}"} for name, why in failed.items()],
        key="nightly-books", description="Nightly render",
    )
    logger.info("nightly: %d rendered, %d unchanged, %d failed", len(rendered), len(unchanged), len(failed))
    if failed:
        raise RenderError(f"nightly: {len(failed)} book(s) failed: {', '.join(sorted(failed))}")
    return summary
