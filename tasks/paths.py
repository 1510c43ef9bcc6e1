"""Where things live: the project root, its voices, cache and output folders.

The root is `AUDIOBOOK_HOME` when set, else the checkout this package runs from (it holds
pyproject.toml), else the current folder. Each folder can be moved with its own variable.
"""

from __future__ import annotations

from pathlib import Path

from tasks import settings


def project_root() -> Path:
    if (home := settings.HOME.get()) is not None:
        return home.absolute()
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "pyproject.toml").exists():
        return checkout
    return Path.cwd()


def cache_dir() -> Path:
    """Content-addressed chunk audio, chapter audio and voice latents (AUDIOBOOK_CACHE_DIR)."""
    return (settings.CACHE_DIR.get() or project_root() / ".cache").absolute()


def output_dir() -> Path:
    """Rendered books, one folder each (AUDIOBOOK_OUTPUT_DIR)."""
    return (settings.OUTPUT_DIR.get() or project_root() / "output").absolute()


def voices_dir() -> Path:
    """Reference voices, one folder each (AUDIOBOOK_VOICES_DIR)."""
    return (settings.VOICES_DIR.get() or project_root() / "voices").absolute()


def manifests_dir() -> Path:
    return (settings.MANIFESTS_DIR.get() or project_root() / "manifests").absolute()


def resolve_manifest(manifest: str) -> Path:
    """A path as given, or a bare name looked up in the manifests folder ("quickstart")."""
    path = Path(manifest)
    if not path.exists() and path.parent == Path("."):
        for candidate in (manifests_dir() / manifest, manifests_dir() / f"{manifest}.yaml"):
            if candidate.is_file():
                return candidate
    return path
