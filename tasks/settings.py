"""Every environment variable the project reads, defined once: name, type, default and what it does.

    from tasks import settings
    settings.WORKERS.get()          -> int (read from the environment now, at each call)
    settings.CACHE_DIR.get()        -> Path | None (None: not set; tasks.paths supplies the folder)
    settings.PUBLIC_URL.setdefault("http://...")   for the project's own child processes

Values are read when asked for, never at import, so a test (or a process that sets a variable for its
children) changes them by changing the environment. An empty value counts as not set. A value that does
not parse is a UserError naming the variable. `python -m tasks.settings` prints the table of
docs/settings.md; variables marked internal are set by the project itself (or by its tests).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from tasks.errors import UserError

T = TypeVar("T")

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def _flag(raw: str) -> bool:
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError("is neither 1 (on) nor 0 (off)")


def _whole(minimum: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw.strip())
        except ValueError:
            raise ValueError("is not a whole number") from None
        if value < minimum:
            raise ValueError(f"must be at least {minimum}")
        return value

    return parse


def _number(raw: str) -> float:
    try:
        value = float(raw.strip())
    except ValueError:
        raise ValueError("is not a number") from None
    if not value >= 0:  # also NaN
        raise ValueError("must be 0 or more")
    return value


def _text(raw: str) -> str:
    return raw


def _path(raw: str) -> Path:
    return Path(raw)


@dataclass(frozen=True)
class Setting(Generic[T]):
    """One environment variable. `default` is returned when it is not set (None: no value)."""

    name: str
    parse: Callable[[str], T]
    default: T
    doc: str
    kind: str  # for the reference: text, path, whole number, number, flag
    default_doc: str | None = None  # the default as the reference says it, when not the value itself
    internal: bool = False  # set by the project for its own processes, or by its tests
    example: str = "e.g. 4"

    def raw(self) -> str | None:
        return os.environ.get(self.name) or None

    def is_set(self) -> bool:
        return self.raw() is not None

    def get(self) -> T:
        raw = self.raw()
        if raw is None:
            return self.default
        try:
            return self.parse(raw)
        except ValueError as exc:
            raise UserError(f"{raw[:80]!r} {exc}", field=self.name,
                            fix=f"set {self.name} to a {self.kind} ({self.example}), or unset it") from None

    def set(self, value: str) -> None:
        """Set it for this process and the processes it starts."""
        os.environ[self.name] = value

    def setdefault(self, value: str) -> None:
        """Set it unless it is set already."""
        if not self.is_set():
            self.set(value)


REGISTRY: dict[str, Setting[object]] = {}


def _define(name: str, parse: Callable[[str], T], default: T, doc: str, kind: str, *,
            default_doc: str | None = None, internal: bool = False, example: str | None = None) -> Setting[T]:
    assert name not in REGISTRY, name
    setting = Setting(name, parse, default, doc, kind, default_doc, internal, example or _EXAMPLES[kind])
    REGISTRY[name] = setting  # type: ignore[assignment]
    return setting


_EXAMPLES = {"text": "see the reference", "path": "an absolute folder", "whole number": "e.g. 4",
             "number": "e.g. 2.5", "flag": "1 or 0"}

# --- folders (tasks.paths) ---------------------------------------------------------------------------
HOME = _define("AUDIOBOOK_HOME", _path, None, "the root holding `manifests/`, `voices/`, `output/`, `.cache/`",
               "path", default_doc="this checkout")
CACHE_DIR = _define("AUDIOBOOK_CACHE_DIR", _path, None, "chunk, chapter and latent cache, and each Piper voice's "
                    "noise-input model (`piper-graphs/`)", "path", default_doc="`.cache/`")
OUTPUT_DIR = _define("AUDIOBOOK_OUTPUT_DIR", _path, None, "rendered books", "path", default_doc="`output/`")
VOICES_DIR = _define("AUDIOBOOK_VOICES_DIR", _path, None, "reference voices", "path", default_doc="`voices/`")
MANIFESTS_DIR = _define("AUDIOBOOK_MANIFESTS_DIR", _path, None, "where `serve` stores and the nightly run finds "
                        "manifests", "path", default_doc="`manifests/`")

# --- rendering (flows.render, tasks.book) ------------------------------------------------------------
WORKERS = _define("AUDIOBOOK_WORKERS", _whole(1), 2, "synthesis batches run at once in one render", "whole number")
ENCODE_WORKERS = _define("AUDIOBOOK_ENCODE_WORKERS", _whole(1), None, "ffmpeg processes at once when a render "
                         "encodes its files", "whole number", default_doc="the CPU cores")
CLUSTER = _define("AUDIOBOOK_CLUSTER", _text, None, "a Dask scheduler for renders (`--cluster`): "
                  "`tcp://host:8786`, or `local:N` worker processes", "text")
TTS_RESOURCE = _define("AUDIOBOOK_TTS_RESOURCE", _text, None, "a Dask worker resource synthesis needs "
                       "(e.g. `GPU`)", "text")
WORKER_WAIT_S = _define("AUDIOBOOK_WORKER_WAIT_S", _number, 600.0, "how long a render waits for a worker to "
                        "answer before it stops (exit 2)", "number", default_doc="`600`")
DOLLARS_PER_ENGINE_HOUR = _define("AUDIOBOOK_DOLLARS_PER_ENGINE_HOUR", _number, 0.0, "price of an engine hour, "
                                  "for the report's `estimated_cost`", "number", default_doc="`0`")
ASR_MODEL = _define("AUDIOBOOK_ASR_MODEL", _text, None, "a local faster-whisper (CTranslate2) model folder "
                    "(holding `model.bin`) that hears takes instead of pocketsphinx; needs the `asr-whisper` extra; "
                    "never downloaded ([architecture](architecture.md#heard-every-take-checked))", "text",
                    default_doc="(none: pocketsphinx)")
PUBLIC_URL = _define("AUDIOBOOK_PUBLIC_URL", _text, None, "the HTTP service's address, for download links in a "
                     "render's Prefect summary (`serve` sets it for its renders)", "text")
PREFECT_API_URL = _define("PREFECT_API_URL", _text, None, "a Prefect server to report runs to (Prefect's own "
                          "variable; `serve` and `render` set it to the server they use)", "text")
DEBUG = _define("AUDIOBOOK_DEBUG", _flag, False, "`1`: a traceback with an error message", "flag",
                default_doc="`0`")

_BYTES = "a size in bytes, e.g. 1048576"

# --- the HTTP service (service.config) and `serve` -----------------------------------------------------
TOKEN = _define("AUDIOBOOK_TOKEN", _text, None, "the HTTP service's bearer token (`submit` sends it too)", "text")
TOKEN_FILE = _define("AUDIOBOOK_TOKEN_FILE", _path, None, "a file holding the token (when AUDIOBOOK_TOKEN is "
                     "not set)", "path")
ALLOWED_HOSTS = _define("AUDIOBOOK_ALLOWED_HOSTS", _text, None, "`Host` names the HTTP service answers to "
                        "(comma-separated; `*` for any)", "text", default_doc="loopback names (any with a token)")
PUBLIC_DOWNLOADS = _define("AUDIOBOOK_PUBLIC_DOWNLOADS", _flag, False, "`1`: downloads need no token", "flag",
                           default_doc="`0`")
MAX_UPLOAD_BYTES = _define("AUDIOBOOK_MAX_UPLOAD_BYTES", _whole(1), 1 << 20, "a manifest upload (POST /manifests "
                           "body, the `manifest` field)", "whole number", default_doc="1 MiB", example=_BYTES)
MAX_FILE_BYTES = _define("AUDIOBOOK_MAX_FILE_BYTES", _whole(1), 64 << 20, "one uploaded file of a book",
                         "whole number", default_doc="64 MiB", example=_BYTES)
MAX_REQUEST_BYTES = _define("AUDIOBOOK_MAX_REQUEST_BYTES", _whole(1), 256 << 20, "one POST /books request, all "
                            "parts together", "whole number", default_doc="256 MiB", example=_BYTES)
MAX_UNPACKED_BYTES = _define("AUDIOBOOK_MAX_UNPACKED_BYTES", _whole(1), 512 << 20, "a .zip, EPUB or DOCX once "
                             "unpacked", "whole number", default_doc="512 MiB", example=_BYTES)
MAX_MEMBERS = _define("AUDIOBOOK_MAX_MEMBERS", _whole(1), 2000, "members of a .zip, EPUB or DOCX",
                      "whole number", default_doc="`2000`")
SERVER = _define("AUDIOBOOK_SERVER", _text, "http://127.0.0.1:8080", "the service `submit` sends to (`--server`)",
                 "text", default_doc="`http://127.0.0.1:8080`")
NIGHTLY_CRON = _define("AUDIOBOOK_NIGHTLY_CRON", _text, "0 2 * * *", "`serve`'s nightly schedule (`--cron`)",
                       "text", default_doc="`0 2 * * *`")
TIMEZONE = _define("AUDIOBOOK_TIMEZONE", _text, "UTC", "time zone of the schedule (`--timezone`)", "text",
                   default_doc="`UTC`")
CONCURRENT_BOOKS = _define("AUDIOBOOK_CONCURRENT_BOOKS", _whole(1), 1, "books `serve` renders at once "
                           "(`--concurrent-books`)", "whole number", default_doc="`1`")
ENGINE_WORKERS = _define("AUDIOBOOK_ENGINE_WORKERS", _whole(0), 1, "`serve`'s resident engine worker processes "
                         "(`--engine-workers`; 0: none)", "whole number", default_doc="`1`")
SERVE_CLUSTER = _define("AUDIOBOOK_SERVE_CLUSTER", _text, None, "set by `serve` for its renders: the scheduler "
                        "of its resident workers (flows.deployments)", "text", internal=True)
SERVICE_FAKE_ENGINE = _define("AUDIOBOOK_SERVICE_FAKE_ENGINE", _flag, False, "tests: the service's health "
                              "check lists the instant fake engine", "flag", default_doc="`0`", internal=True)

# --- Tortoise (tasks.engines.tortoise, tasks.workers) -------------------------------------------------
MODELS_DIR = _define("TORTOISE_MODELS_DIR", _path, None, "Tortoise weights (a Hugging Face cache folder; "
                     "Tortoise's own variable)", "path", default_doc="`~/.cache/tortoise/models`")
TORTOISE_DEVICE = _define("AUDIOBOOK_TORTOISE_DEVICE", _text, None, "`cpu`: render Tortoise on CPUs anyway "
                          "(else a GPU-less pool is refused)", "text", default_doc="cuda when available")
TORTOISE_PRECISION = _define("AUDIOBOOK_TORTOISE_PRECISION", _text, None, "`fp16` or `fp32`: the precision "
                             "workers must run, or refuse", "text", default_doc="fp16 on a GPU, fp32 on a CPU")
TORTOISE_HALF = _define("AUDIOBOOK_TORTOISE_HALF", _flag, True, "`0`: fp32 on a GPU too (PRECISION wins)",
                        "flag", default_doc="`1`")
TORTOISE_MODELS = _define("AUDIOBOOK_TORTOISE_MODELS", _text, "pretrained", "`pretrained` (the real weights), or "
                          "`tiny` or `random-full` (random models, for tests)", "text", default_doc="`pretrained`")
TORTOISE_SAMPLES = _define("AUDIOBOOK_TORTOISE_SAMPLES", _whole(1), None, "autoregressive candidates per chunk, "
                           "instead of the quality's", "whole number", default_doc="the quality's")
TORTOISE_DIFFUSION_STEPS = _define("AUDIOBOOK_TORTOISE_DIFFUSION_STEPS", _whole(1), None, "diffusion steps, "
                                   "instead of the quality's", "whole number", default_doc="the quality's")
TORTOISE_MAX_MEL_TOKENS = _define("AUDIOBOOK_TORTOISE_MAX_MEL_TOKENS", _whole(1), None, "the longest "
                                  "autoregressive decode, instead of the quality's", "whole number",
                                  default_doc="the quality's")
TORTOISE_BATCH_ROWS = _define("AUDIOBOOK_TORTOISE_BATCH_ROWS", _whole(1), None, "autoregressive rows (chunks x "
                              "candidates) per batch", "whole number", default_doc="from GPU memory; 32 on CPU")
TORTOISE_BATCHED = _define("AUDIOBOOK_TORTOISE_BATCHED", _flag, True, "`0`: the per-chunk decoder (the benchmark "
                           "baseline)", "flag", default_doc="`1`")
TORTOISE_AR_BATCH = _define("AUDIOBOOK_TORTOISE_AR_BATCH", _whole(1), None, "per-chunk decoder only: candidates "
                            "per autoregressive call", "whole number", default_doc="from GPU memory")
TORTOISE_REDACTION = _define("AUDIOBOOK_TORTOISE_REDACTION", _flag, True, "`0`: no wav2vec prompt redaction "
                             "(prompts are then dropped)", "flag", default_doc="`1`")
TORTOISE_ALLOW_PICKLE = _define("AUDIOBOOK_TORTOISE_ALLOW_PICKLE", _flag, True, "`0`: refuse weights that need "
                                "pickle to load", "flag", default_doc="`1`")

# --- the fake engine (tests) ------------------------------------------------------------------------
FAKE_DELAY_S = _define("AUDIOBOOK_FAKE_DELAY_S", _number, 0.0, "tests: seconds the fake engine takes per chunk",
                       "number", default_doc="`0`", internal=True)
FAKE_EXIT_AFTER = _define("AUDIOBOOK_FAKE_EXIT_AFTER", _whole(0), None, "tests: the fake engine's process exits "
                          "after this many chunks (a crash)", "whole number", internal=True)


def _default_text(setting: Setting[object]) -> str:
    if setting.default_doc is not None:
        return setting.default_doc
    return "(none)" if setting.default is None else f"`{setting.default}`"


def markdown_table() -> str:
    """The reference table of docs/settings.md, from the definitions above."""
    rows = ["| variable | type | default | what |", "| --- | --- | --- | --- |"]
    for s in REGISTRY.values():
        what = ("internal: " if s.internal else "") + s.doc
        rows.append(f"| `{s.name}` | {s.kind} | {_default_text(s)} | {what} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(markdown_table(), end="")
