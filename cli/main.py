"""The `audiobook` command line: thin over the library; errors become exit codes in one place.

    audiobook render MANIFEST [--output DIR] [--engine NAME]   render a book (exit 0 on success)
    audiobook check MANIFEST [--engine NAME] [--text]          validate and print the plan (or the spoken text)
    audiobook verify OUTPUT_DIR_OR_MANIFEST                    hear a finished book, print suspicious spans
    audiobook voices list | voices latents NAME                reference voices (Tortoise)
    audiobook models fetch [--dir DIR]                         fetch Tortoise weights ahead of time
    audiobook doctor [--engine NAME]                           device, ffmpeg, weights, a test render
    audiobook doctor --cluster ADDRESS                         every worker of a Dask cluster

Exit codes: 0 success (3: `verify` found suspicious spans); 2 a problem with the input the user can fix (the message names the file, the
field and the fix); 1 an internal fault. No traceback unless AUDIOBOOK_DEBUG=1.
"""

from __future__ import annotations

import argparse
import sys

from tasks import settings
from tasks.errors import AudiobookError, UserError

from .commands import (
    cmd_check,
    cmd_doctor,
    cmd_models_fetch,
    cmd_render,
    cmd_serve,
    cmd_verify,
    cmd_voices_latents,
    cmd_voices_list,
)
from .submit import cmd_submit

# -- the parser and the one place errors become exit codes --------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    from tasks.documents import SUFFIXES
    from tasks.engines import engine_names

    parser = argparse.ArgumentParser(prog="audiobook", description="Render YAML manifests into audiobooks.")
    sub = parser.add_subparsers(dest="command", required=True)

    render = sub.add_parser("render", help="render a manifest into M4B and per-chapter MP3")
    render.add_argument("manifest", help="path to the manifest (or its name under manifests/)")
    render.add_argument("--output", help="put the book in DIR/<manifest name>/ instead of output/")
    render.add_argument("--engine", help=f"override the manifest's engine ({', '.join(engine_names())})")
    render.add_argument("--cluster", help="a Dask scheduler address (tcp://host:8786) or local:N (N local worker "
                        "processes); default AUDIOBOOK_CLUSTER, else threads in this process")
    render.set_defaults(func=cmd_render)

    check = sub.add_parser("check", help="validate a manifest and print the plan without synthesising")
    check.add_argument("manifest")
    check.add_argument("--engine", help="override the manifest's engine")
    check.add_argument("--text", action="store_true",
                       help="print exactly what will be spoken (the chunk texts, chapter by chapter) to proofread")
    check.set_defaults(func=cmd_check)

    verify = sub.add_parser("verify", help="hear a finished book against its script; print suspicious spans "
                            "(exit 3 when there are any)")
    verify.add_argument("target", metavar="OUTPUT_DIR_OR_MANIFEST")
    verify.add_argument("--threshold", type=float, help="words heard / expected below this is suspicious "
                        "(default: the manifest's verify_threshold)")
    verify.set_defaults(func=cmd_verify)

    voices = sub.add_parser("voices", help="reference voices").add_subparsers(dest="voices_command", required=True)
    voices.add_parser("list", help="list the voices each engine can use").set_defaults(func=cmd_voices_list)
    latents = voices.add_parser("latents", help="compute and cache a Tortoise voice's conditioning latents")
    latents.add_argument("name")
    latents.set_defaults(func=cmd_voices_latents)

    models = sub.add_parser("models", help="engine weights").add_subparsers(dest="models_command", required=True)
    fetch = models.add_parser("fetch", help="download the Tortoise weights (needs internet; for worker images)")
    fetch.add_argument("--dir", help="models folder (default TORTOISE_MODELS_DIR or ~/.cache/tortoise/models)")
    fetch.set_defaults(func=cmd_models_fetch)

    serve = sub.add_parser("serve", help="run the Prefect server, the deployments and the HTTP service")
    serve.add_argument("--host", default="127.0.0.1", help="HTTP service address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080, help="HTTP service port (default 8080)")
    serve.add_argument("--prefect-port", type=int, default=4200,
                       help="port of the Prefect server to start (default 4200; ignored with PREFECT_API_URL)")
    serve.add_argument("--cron", default=settings.NIGHTLY_CRON.get(),
                       help="the nightly schedule (default '0 2 * * *', or AUDIOBOOK_NIGHTLY_CRON)")
    serve.add_argument("--timezone", default=settings.TIMEZONE.get(),
                       help="time zone of the schedule (default UTC, or AUDIOBOOK_TIMEZONE)")
    serve.add_argument("--concurrent-books", type=int, default=settings.CONCURRENT_BOOKS.get(),
                       help="books rendered at once; the others wait in Prefect's queue (default 1, or "
                       "AUDIOBOOK_CONCURRENT_BOOKS)")
    serve.add_argument("--engine-workers", type=int, default=settings.ENGINE_WORKERS.get(),
                       help="long-lived engine worker processes (a local Dask cluster) shared by every render, so a "
                       "model loads once per server; 0: each render loads its own (default 1, or "
                       "AUDIOBOOK_ENGINE_WORKERS)")
    serve.set_defaults(func=cmd_serve)

    submit = sub.add_parser("submit", help="send a book (a manifest and its files, or a document) to a running "
                            "service and queue its render")
    submit.add_argument("path", help="a manifest (its files go with it) or a document "
                        f"({', '.join(SUFFIXES)})")
    submit.add_argument("--server", default=settings.SERVER.get())
    submit.add_argument("--overwrite", action="store_true", help="replace a book of the same name")
    for option in ("name", "title", "author", "narrator", "engine", "voice", "quality"):
        submit.add_argument(f"--{option}", help=f"the book's {option}, for a document without a manifest")
    submit.set_defaults(func=cmd_submit)

    doctor = sub.add_parser("doctor", help="check device, ffmpeg, weights and a one-sentence test render")
    doctor.add_argument("--engine", choices=engine_names())
    doctor.add_argument("--cluster", metavar="ADDRESS", help="list every worker of the Dask cluster at ADDRESS "
                        "(tcp://host:8786): host, device, GPU and free memory, engines loaded, chunks done")
    doctor.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the cluster (default 10)")
    doctor.set_defaults(func=cmd_doctor)
    return parser


def _debug() -> bool:
    """AUDIOBOOK_DEBUG: a traceback with the error (a value that is not a flag counts as on)."""
    try:
        return settings.DEBUG.get()
    except UserError:
        return True


def run(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except AudiobookError as exc:
        print(f"error: {exc}", file=sys.stderr)
        if _debug():
            raise
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted: finished chunks are cached; run the same command to resume", file=sys.stderr)
        return 130
    except Exception as exc:  # an internal fault: say so plainly, trace on request
        if _debug():
            raise
        print(f"internal error: {type(exc).__name__}: {exc} (set AUDIOBOOK_DEBUG=1 for a traceback)",
              file=sys.stderr)
        return 1


def main() -> None:
    sys.exit(run())
