"""`audiobook submit`: send one book to a running service over HTTP."""

from __future__ import annotations

import argparse
from pathlib import Path

from tasks import settings
from tasks.errors import UserError


def cmd_submit(args: argparse.Namespace) -> int:
    """Send one book to a running service (POST /books): a manifest with the files it names (packed
    into one .zip, paths kept), or a bare document with the title, author, ... options."""
    import httpx

    path = Path(args.path)
    if not path.is_file():
        raise UserError("no such file", file=path, fix="give the path to a manifest or a document")
    fields = {k: v for k, v in {"name": args.name, "title": args.title, "author": args.author,
                                "narrator": args.narrator, "engine": args.engine, "voice": args.voice,
                                "quality": args.quality}.items() if v}
    if args.overwrite:
        fields["overwrite"] = "true"
    if path.suffix.lower() in (".yaml", ".yml"):
        upload = (f"{path.stem}.zip", pack_manifest_folder(path), "application/zip")
    else:
        upload = (path.name, path.read_bytes(), "application/octet-stream")
    headers = {"Authorization": f"Bearer {token}"} if (token := settings.TOKEN.get()) else {}
    server = args.server.rstrip("/")
    try:
        response = httpx.post(f"{server}/books", files=[("file", upload)], data=fields, headers=headers,
                              timeout=600)
    except httpx.HTTPError as exc:
        raise UserError(f"cannot reach {args.server}: {exc}", field="--server",
                        fix="start 'audiobook serve' or give the right --server URL") from None
    try:
        answer = response.json()
    except ValueError:
        answer = {}
    if response.status_code >= 400:
        reason = answer.get("error") if isinstance(answer, dict) else None
        raise UserError(f"the server refused it ({response.status_code}): {reason or response.reason_phrase}",
                        file=path, fix="see the reason; set AUDIOBOOK_TOKEN for a server that needs one")
    print(f"submitted {answer.get('name')}: run {answer.get('run_id')}")
    if answer.get("ui_url"):
        print(answer["ui_url"])
    print(f"status: {server}{answer.get('status_url', '')}")
    return 0


def pack_manifest_folder(manifest_path: Path) -> bytes:
    """The manifest and every file it names (sources, chapter files, cover), zipped with their paths
    relative to the manifest's folder; the manifest is checked first, as `audiobook check` would."""
    import io
    import zipfile

    from tasks.manifest import load_manifest
    from tasks.source import check_sources_exist

    manifest = load_manifest(manifest_path)
    check_sources_exist(manifest)
    named = [manifest.source] if manifest.source else [c.file for c in manifest.chapters or () if c.file]
    if manifest.cover:
        named.append(manifest.cover)
    folder = manifest.folder.resolve()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.write(manifest_path, f"{manifest_path.stem}.yaml")
        for rel in dict.fromkeys(n for n in named if n):
            real = manifest.resolve(rel, "source")
            archive.write(real, real.relative_to(folder).as_posix())
    return buffer.getvalue()
