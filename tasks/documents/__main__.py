"""`python -m tasks.documents FILE... [--notes end] [--keep imprint,colophon] [--full]`: print how a
source document reads: metadata and encoding, each chapter's title and word count, what was skipped
and why, and the word ledger (words kept and skipped by reason, per chapter)."""

from __future__ import annotations

import argparse
from pathlib import Path

from tasks.documents import ReadOptions, read_document
from tasks.documents.ledger import ledger_lines
from tasks.errors import SourceError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tasks.documents", description=__doc__)
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--notes", choices=("skip", "end"), default="skip")
    parser.add_argument("--keep", default="", help="publisher matter to read, comma-separated")
    parser.add_argument("--part-titles", default="{part}: {chapter}")
    parser.add_argument("--full", action="store_true", help="print every paragraph")
    args = parser.parse_args(argv)
    options = ReadOptions(
        keep=frozenset(k for k in args.keep.split(",") if k),
        notes=args.notes,
        part_titles=args.part_titles,
    )
    status = 0
    for path in args.files:
        try:
            doc = read_document(path, options=options)
        except SourceError as exc:
            print(f"{path}: {exc}")
            status = 1
            continue
        m = doc.metadata
        cover = f"{m.cover_media_type}, {len(m.cover)} bytes" if m.cover else "none"
        print(f"== {path.name}: {m.title!r} by {', '.join(m.authors) or '?'} ({m.language}); cover {cover}; "
              f"encoding {doc.encoding or 'as its XML parts declare'}")
        for chapter in doc.chapters:
            words = sum(len(p.split()) for p in chapter.paragraphs)
            print(f"  {words:6d} words  {chapter.title}")
            for paragraph in chapter.paragraphs if args.full else ():
                print(f"      | {paragraph}")
        for skipped in doc.skipped:
            print(f"  skipped {skipped.words:5d} words  {skipped.what}: {skipped.reason}")
        for warning in doc.warnings:
            print(f"  warning: {warning}")
        print("  word ledger:")
        for line in ledger_lines(doc):
            print(f"  {line}")
    return status


if __name__ == "__main__":
    raise SystemExit(main())
