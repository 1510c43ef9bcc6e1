"""The docs cannot drift from the command line: every `audiobook ...` command quoted in README.md and
docs/*.md goes through the real argument parser.

Quoted synopses use the usual notation, read here as a user would: `[--opt VALUE]` is the option given,
`a|b` the first choice, `...` the positional the text elides, and words in capitals placeholders. A
command named alone in prose ("`audiobook check` shows ...") must exist.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# A command starts at `audiobook` (or .venv/bin/audiobook) and ends at a backtick, a comment or the line end.
COMMAND_RE = re.compile(r"(?:^|[\s`(])(?:\.venv/bin/)?audiobook\s+([a-z][^`#\n]*)")


def quoted_commands(path: Path) -> list[tuple[int, str]]:
    """(line number, arguments) of every `audiobook` command line in a Markdown file: in code blocks and in
    inline code spans (prose that merely names the program is not a command)."""
    found: list[tuple[int, str]] = []
    in_block = False
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.lstrip().startswith("```"):
            in_block = not in_block
            continue
        texts = [re.sub(r"(^|\s)#.*", "", line)] if in_block else re.findall(r"`([^`]+)`", line)
        for text in texts:
            found.extend((number, m.group(1).strip()) for m in COMMAND_RE.finditer(text))
    return found


def as_argv(arguments: str) -> list[str]:
    arguments = arguments.replace("\\|", "|")
    argv: list[str] = []
    for token in shlex.split(arguments.replace("[", " ").replace("]", " ")):
        if token == "...":
            token = "MANIFEST"
        if "|" in token and not token.startswith("'"):
            token = token.split("|")[0]
        argv.append(token)
    return argv


COMMANDS = [(path.relative_to(ROOT).as_posix(), number, text) for path in DOCS for number, text in quoted_commands(path)]


def test_the_docs_quote_commands() -> None:
    subcommands = {as_argv(text)[0] for _, _, text in COMMANDS}
    assert {"render", "check", "serve", "submit", "doctor"} <= subcommands, subcommands


@pytest.mark.parametrize(("doc", "line", "command"), COMMANDS, ids=[f"{d}:{n}" for d, n, _ in COMMANDS])
def test_a_quoted_command_parses(doc: str, line: int, command: str) -> None:
    parser = build_parser()
    argv = as_argv(command)
    if len(argv) == 1:  # prose naming a command ("`audiobook check` shows ..."): the command must exist
        commands = next(a for a in parser._actions if a.dest == "command").choices
        assert commands is not None and argv[0] in commands, f"{doc}:{line}: no command {argv[0]!r}"
        return
    try:
        parser.parse_args(argv)
    except SystemExit as exc:
        pytest.fail(f"{doc}:{line}: `audiobook {command}` is not what the CLI accepts (exit {exc.code})")
