"""The `audiobook` command line (see cli.main for the commands and exit codes)."""

from .main import build_parser, main, run

__all__ = ["build_parser", "main", "run"]
