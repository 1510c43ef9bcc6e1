"""An oversized manifest in a zip: how long the service takes to refuse it, and what it costs in memory.

    .venv/bin/python benchmarks/bench_service_upload.py [--mib 30] [--skip-parse]

A .zip holding a YAML manifest of --mib MiB (random keys: it compresses about 2:1, not like a bomb)
goes to POST /books of a real service (uvicorn on loopback, FakeRunBackend, the default limits). It is
refused on its size (413) before any parsing. Side by side, in the same process: what parsing it first
would have cost (`yaml.safe_load` of the same bytes, as the upload code did before checking the
size). Memory is the process's resident set (VmRSS) before and after each.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def big_yaml(mib: int) -> bytes:
    rng = random.Random(1)
    head = "title: T\nauthor: A\nsource: s.txt\n"
    lines = [head]
    size = len(head)
    i = 0
    while size < mib << 20:
        line = f"k{i}: {rng.getrandbits(128):032x}\n"
        lines.append(line)
        size += len(line)
        i += 1
    return "".join(lines).encode()


def send(url: str, path: Path) -> tuple[float, int, str]:
    """POST one file from a process of its own (so this process's RSS is the server's alone)."""
    sender = ("import httpx, sys, time; t = time.perf_counter(); "
              "r = httpx.post(sys.argv[1] + '/books', files=[('file', (sys.argv[2].rsplit('/', 1)[1], "
              "open(sys.argv[2], 'rb')))], headers={'Authorization': 'Bearer t'}, timeout=600); "
              "print(time.perf_counter() - t); print(r.status_code); print(r.json()['error'])")
    out = subprocess.run([sys.executable, "-c", sender, url, str(path)], capture_output=True, text=True, check=True,
                         timeout=600).stdout.splitlines()
    return float(out[0]), int(out[1]), out[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=30)
    parser.add_argument("--skip-parse", action="store_true", help="do not time the old parse-first path")
    args = parser.parse_args()

    import httpx

    from service import FakeRunBackend, ServerThread, ServiceConfig, create_app

    data = big_yaml(args.mib)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("big.yaml", data)
        z.writestr("s.txt", "A story.\n")
    archive = buf.getvalue()
    zip_mib = len(archive) / 2**20
    with tempfile.TemporaryDirectory() as tmp:
        config = ServiceConfig(manifests_dir=Path(tmp) / "m", output_dir=Path(tmp) / "o", token="t",
                               validate_plan=False)
        config.manifests_dir.mkdir()
        config.output_dir.mkdir()
        with ServerThread(create_app(config, FakeRunBackend(config.output_dir))) as server, \
                httpx.Client(base_url=server.url, timeout=60) as client:
            client.get("/books")  # warm up
            zip_path = Path(tmp) / "big.zip"
            zip_path.write_bytes(archive)
            del archive
            # Baseline: a body of the same size refused on its type once received (what any upload costs).
            same_size = Path(tmp) / "same.bin"
            same_size.write_bytes(os.urandom(zip_path.stat().st_size))
            base_s, base_status, _ = send(server.url, same_size)
            before = rss_mib()
            refuse_s, status, error = send(server.url, zip_path)
            after = rss_mib()
    print(f"yaml {len(data) / 2**20:.1f} MiB, zip {zip_mib:.1f} MiB")
    print(f"refused: {status} {error[:100]!r}")
    print(f"baseline, a {zip_mib:.1f} MiB .bin refused on its type once received: {base_s:.2f} s ({base_status})")
    print(f"refuse (as the client saw it): {refuse_s:.2f} s, server RSS {before:.0f} -> {after:.0f} MiB "
          f"({after - before:+.0f} MiB)")
    if not args.skip_parse:
        import yaml

        before = rss_mib()
        started = time.perf_counter()
        yaml.safe_load(data)
        parse_s = time.perf_counter() - started
        after = rss_mib()
        print(f"parse first (before the fix): {parse_s:.2f} s, RSS {before:.0f} -> {after:.0f} MiB "
              f"({after - before:+.0f} MiB)")
        print(f"ratio parse / refuse: {parse_s / refuse_s:.0f}x")


if __name__ == "__main__":
    main()
