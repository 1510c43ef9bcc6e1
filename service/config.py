"""The service's settings, its limits, and the one refusal every route answers with.

Limits are in bytes or counts, each with its environment variable:

    AUDIOBOOK_MAX_UPLOAD_BYTES      a manifest (POST /manifests body, the `manifest` field)   1 MiB
    AUDIOBOOK_MAX_FILE_BYTES        one uploaded file of a book                               64 MiB
    AUDIOBOOK_MAX_REQUEST_BYTES     one POST /books request, all parts together               256 MiB
    AUDIOBOOK_MAX_UNPACKED_BYTES    a .zip, EPUB or DOCX once unpacked                        512 MiB
    AUDIOBOOK_MAX_MEMBERS           members of a .zip, EPUB or DOCX                           2000

AUDIOBOOK_ALLOWED_HOSTS (comma-separated host names, `*` for any) is the Host header allow-list; by
default loopback names only without a token, any host with one (see auth.host_allowed).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from tasks import paths, settings
from tasks.errors import UserError

DEFAULT_MAX_UPLOAD_BYTES = settings.MAX_UPLOAD_BYTES.default
DEFAULT_MAX_FILE_BYTES = settings.MAX_FILE_BYTES.default
DEFAULT_MAX_REQUEST_BYTES = settings.MAX_REQUEST_BYTES.default
DEFAULT_MAX_UNPACKED_BYTES = settings.MAX_UNPACKED_BYTES.default
DEFAULT_MAX_MEMBERS = settings.MAX_MEMBERS.default
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
TOKEN_COOKIE = "audiobook_token"
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]", "::1")


class Refusal(Exception):
    """A request the service will not do: the HTTP status and one line naming the field and the fix."""

    def __init__(self, status: int, error: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.headers = headers


def check_name(raw: str | None) -> str:
    """A book name: letters, digits, '.', '_', '-'; starts with a letter or digit; at most 64."""
    if raw is None or raw == "":
        raise Refusal(400, "give the book's name: POST /manifests?name=NAME (letters, digits, '.', '_', '-')")
    name = raw
    for suffix in (".yaml", ".yml"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    if not NAME_RE.fullmatch(name) or ".." in name or name.endswith((".yaml", ".yml")):
        raise Refusal(
            400, f"bad book name {raw[:80]!r}: use 1-64 letters, digits, '.', '_' or '-', starting with a "
            "letter or digit, with no '..'",
        )
    return name


@dataclass(frozen=True)
class ServiceConfig:
    manifests_dir: Path
    output_dir: Path
    token: str | None = None
    public_downloads: bool = False
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    prefect_ui_url: str | None = None
    voices_dir: Path | None = None  # where a new voice's clips go (default tasks.paths.voices_dir())
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    max_unpacked_bytes: int = DEFAULT_MAX_UNPACKED_BYTES
    max_members: int = DEFAULT_MAX_MEMBERS
    validate_plan: bool = True  # check engine, voice and sources as `audiobook check` does before storing
    allowed_hosts: tuple[str, ...] | None = None  # Host header names; None: the default (see auth.host_allowed)

    @property
    def voices(self) -> Path:
        return self.voices_dir or paths.voices_dir()

    @classmethod
    def from_env(cls) -> ServiceConfig:
        """AUDIOBOOK_MANIFESTS_DIR / AUDIOBOOK_OUTPUT_DIR / AUDIOBOOK_VOICES_DIR (see tasks.paths),
        AUDIOBOOK_TOKEN or AUDIOBOOK_TOKEN_FILE, AUDIOBOOK_PUBLIC_DOWNLOADS=1, the limits above,
        AUDIOBOOK_ALLOWED_HOSTS, PREFECT_UI_URL (else derived from PREFECT_API_URL)."""
        token = settings.TOKEN.get()
        if token is None and (token_file := settings.TOKEN_FILE.get()) is not None:
            try:
                token = token_file.read_text(encoding="utf-8").strip() or None
            except OSError as exc:
                raise UserError(f"cannot read the token file: {exc.strerror}", file=token_file,
                                fix="point AUDIOBOOK_TOKEN_FILE at a readable file holding the token") from None
            if token is None:
                raise UserError("the token file is empty", file=token_file, fix="write the token into it")
        ui_url = os.environ.get("PREFECT_UI_URL") or None
        if ui_url is None and (api_url := settings.PREFECT_API_URL.get()):
            ui_url = api_url.rstrip("/").removesuffix("/api")
        return cls(
            manifests_dir=paths.manifests_dir(),
            output_dir=paths.output_dir(),
            token=token,
            public_downloads=settings.PUBLIC_DOWNLOADS.get(),
            max_upload_bytes=settings.MAX_UPLOAD_BYTES.get(),
            prefect_ui_url=ui_url.rstrip("/") if ui_url else None,
            voices_dir=paths.voices_dir(),
            max_file_bytes=settings.MAX_FILE_BYTES.get(),
            max_request_bytes=settings.MAX_REQUEST_BYTES.get(),
            max_unpacked_bytes=settings.MAX_UNPACKED_BYTES.get(),
            max_members=settings.MAX_MEMBERS.get(),
            allowed_hosts=parse_hosts(settings.ALLOWED_HOSTS.get()),
        )


def parse_hosts(raw: str | None) -> tuple[str, ...] | None:
    """AUDIOBOOK_ALLOWED_HOSTS: "books.example.com, 10.0.0.5" -> lower-case names (a port is ignored)."""
    if raw is None or not raw.strip():
        return None
    hosts = []
    for item in raw.split(","):
        host = item.strip().lower()
        if host:
            hosts.append(host if host == "*" else split_host(host))
    return tuple(hosts) or None


def split_host(netloc: str) -> str:
    """The host name of a Host header or an origin's netloc, without its port: "[::1]:8080" -> "[::1]"."""
    netloc = netloc.strip().lower()
    if netloc.startswith("["):
        return netloc[: netloc.find("]") + 1] if "]" in netloc else netloc
    return netloc.rsplit(":", 1)[0] if netloc.count(":") == 1 else netloc
