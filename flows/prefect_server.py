"""Which Prefect server a command talks to, and starting one: the environment Prefect must see before it
is imported, a health probe, and `prefect server start` as a child process for `audiobook serve`."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from tasks import paths
from tasks.errors import DependencyError

DEFAULT_PREFECT_URL = "http://127.0.0.1:4200/api"


def configure_prefect_environment(*, probe: bool = True) -> str:
    """Set Prefect's environment before it is imported; returns a line saying which server is used."""
    os.environ.setdefault("PREFECT_HOME", str(paths.project_root() / ".prefect"))
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # A temporary server on a busy or small machine (a container, 2 shared cores) can take more than
    # Prefect's default 20 s to start; a render should wait for it, not fail.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    # The terminal shows our progress bar and one-line errors; Prefect's own logs go to its server/UI.
    for handler in ("CONSOLE", "CONSOLE_FLOW_RUNS", "CONSOLE_TASK_RUNS"):
        os.environ.setdefault(f"PREFECT_LOGGING_HANDLERS_{handler}_LEVEL", "CRITICAL")
    if url := os.environ.get("PREFECT_API_URL"):
        return f"Prefect server: {url}"
    if probe and server_healthy(DEFAULT_PREFECT_URL):
        os.environ["PREFECT_API_URL"] = DEFAULT_PREFECT_URL
        return f"Prefect server: {DEFAULT_PREFECT_URL} (watch the run at {DEFAULT_PREFECT_URL.removesuffix('/api')})"
    return (
        "No Prefect server is running: using a temporary local one for this render "
        "(start 'audiobook serve' to watch runs in the Prefect UI)."
    )


def server_healthy(api_url: str, timeout_s: float = 0.5) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=timeout_s) as response:  # noqa: S310
            return bool(response.status == 200)
    except (OSError, ValueError):
        return False


def wait_healthy(api_url: str, timeout_s: float, process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server_healthy(api_url):
            return
        if process is not None and process.poll() is not None:
            break
        time.sleep(0.5)
    raise DependencyError(
        f"the Prefect server at {api_url} did not become healthy in {timeout_s:.0f} s",
        fix="see .prefect/server.log; another process may hold the port (use --prefect-port)",
    )


def _check_settings_name(api_url: str) -> None:
    from prefect.settings import get_current_settings

    if get_current_settings().api.url != api_url:
        raise DependencyError(
            f"Prefect was imported before PREFECT_API_URL named the server started at {api_url}",
            fix="set PREFECT_API_URL before anything imports prefect (cli.commands.cmd_serve does)",
        )


def local_api_url(port: int) -> str:
    return f"http://127.0.0.1:{port}/api"


@contextlib.contextmanager
def prefect_server(port: int, *, start: bool, timeout_s: float = 120) -> Iterator[str]:
    """`start`: run `prefect server start` on 127.0.0.1:`port` for the life of the block; else wait for
    the server PREFECT_API_URL names. Either way PREFECT_API_URL must already name it when Prefect is
    imported (Prefect reads its settings once): a client that finds no URL starts a second, private
    server on the same database."""
    if not start:
        url = os.environ["PREFECT_API_URL"]
        wait_healthy(url, timeout_s)
        yield url
        return
    api_url = local_api_url(port)
    _check_settings_name(api_url)
    home = Path(os.environ["PREFECT_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    log = open(home / "server.log", "ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        stdout=log, stderr=subprocess.STDOUT,
        env={**{k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}, "PREFECT_UI_API_URL": api_url},
    )
    try:
        wait_healthy(api_url, timeout_s, process)
        yield api_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
