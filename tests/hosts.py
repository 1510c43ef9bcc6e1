"""Test hosts in network namespaces: a private /24 on a bridge, one namespace per host, each reached by
a veth pair; this machine (the root namespace) is `.1` on the bridge.

A process started on a host runs in its own network namespace and its own mount namespace, with
tmpfs mounted over the folders it must not see (the renderer's cache and output): it shares no disk
with the renderer for them. Names carry a random tag so that runs side by side do not meet; `close()`
ends every process started here and removes the namespaces and the bridge.

Needs root and `ip netns` (iproute2); `unavailable()` says why not, for a skip.
"""

from __future__ import annotations

import contextlib
import os
import random
import secrets
import shutil
import signal
import subprocess
from pathlib import Path


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=30)


def unavailable() -> str | None:
    """Why namespace hosts cannot be made here, or None."""
    if os.geteuid() != 0:
        return "network namespace hosts need root"
    if shutil.which("ip") is None or shutil.which("unshare") is None:
        return "network namespace hosts need iproute2 (`ip netns`) and util-linux (`unshare`)"
    probe = f"abprobe{secrets.token_hex(3)}"
    made = _ip("netns", "add", probe, check=False)
    if made.returncode != 0:
        return f"`ip netns add` is not allowed here: {made.stderr.strip()}"
    _ip("netns", "del", probe, check=False)
    return None


def _free_subnet() -> str:
    """A 10.213.N.0/24 that no route of this machine uses."""
    routes = _ip("-4", "route", "show", "table", "all").stdout
    for _ in range(200):
        prefix = f"10.213.{random.randint(1, 254)}"
        if f"{prefix}." not in routes:
            return prefix
    raise RuntimeError("no free 10.213.N.0/24 for the test hosts")


class Hosts:
    def __init__(self, hide: tuple[Path, ...] = ()) -> None:
        self.tag = secrets.token_hex(3)
        self.prefix = _free_subnet()
        self.bridge = f"ab{self.tag}br"
        self.address = f"{self.prefix}.1"  # this machine, as the hosts see it
        self.hide = hide
        self.namespaces: list[str] = []
        self.procs: list[subprocess.Popen[bytes]] = []
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", f"{self.address}/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")

    def add(self, name: str) -> tuple[str, str]:
        """A new host: (its namespace, its address)."""
        n = len(self.namespaces) + 10
        ns, outside, inside = f"ab{self.tag}-{name}", f"ab{self.tag}h{n}", f"ab{self.tag}n{n}"
        _ip("netns", "add", ns)
        self.namespaces.append(ns)
        _ip("link", "add", outside, "type", "veth", "peer", "name", inside)
        _ip("link", "set", outside, "master", self.bridge, "up")
        _ip("link", "set", inside, "netns", ns)
        address = f"{self.prefix}.{n}"
        _ip("-n", ns, "addr", "add", f"{address}/24", "dev", inside)
        _ip("-n", ns, "link", "set", inside, "up")
        _ip("-n", ns, "link", "set", "lo", "up")
        return ns, address

    def start(self, ns: str, argv: list[str], env: dict[str, str], log: Path, cwd: Path) -> subprocess.Popen[bytes]:
        """`argv` on host `ns`, in its own session; the returned process IS the program (each wrapper execs)."""
        mounts = " && ".join(f"mount -t tmpfs tmpfs '{p}'" for p in self.hide) or "true"
        wrapped = ["ip", "netns", "exec", ns, "unshare", "--mount", "--propagation", "private",
                   "sh", "-c", f'{mounts} && exec "$@"', "sh", *argv]
        with open(log, "wb") as out:
            proc = subprocess.Popen(wrapped, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=cwd,
                                    start_new_session=True)
        self.procs.append(proc)
        return proc

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        """The host's program dies at once (SIGKILL to its session), as when the machine is lost."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=30)

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                self.kill(proc)
        for ns in self.namespaces:
            left = _ip("netns", "pids", ns, check=False).stdout.split()
            for pid in left:  # anything the programs left behind in the namespace
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
            _ip("netns", "del", ns, check=False)
        _ip("link", "del", self.bridge, check=False)
