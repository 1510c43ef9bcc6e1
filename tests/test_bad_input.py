"""Bad input, across modules: whatever the manifest, the sources and their text hold, loading and planning
end in a plan or in one of the project's own errors (AudiobookError), never in another exception.

Single-module cases live in test_manifest.py, test_documents.py and test_text.py; these go from the
manifest through the readers, the splitter and the packer to the chunk plan, and through `audiobook check`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tasks.engines.base import EngineInfo
from tasks.engines.fake import FakeEngine
from tasks.errors import AudiobookError, ManifestError, SourceError
from tasks.manifest import MAX_MANIFEST_BYTES, Manifest, load_manifest, parse_yaml, validate_manifest
from tasks.plan import BookPlan, SynthJob, make_plan, plan_chapters
from tasks.source import read_chapters
from tasks.text import normalize_text

PIPER_LIKE = EngineInfo(name="piper", version="test", max_chars=400, sample_rate_hz=22050, supports_prompts=False)
SMALL = FakeEngine(max_chars=60).info
# About 5 s in all at the default; set BAD_INPUT_EXAMPLES=5000 for a longer hunt.
FUZZ = settings(deadline=None, max_examples=int(os.environ.get("BAD_INPUT_EXAMPLES", "250")),
                suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bad-input")


def job(folder: Path) -> SynthJob:
    return SynthJob(engine="fake", voice="v", settings={}, seed=0, voices_dir=None, cache_dir=str(folder / "cache"))


def plan_of(manifest: Manifest, info: EngineInfo = PIPER_LIKE) -> BookPlan:
    """read_chapters + plan_chapters, and the invariants every plan keeps."""
    chapters, notes = read_chapters(manifest)
    plan = plan_chapters(chapters, manifest, info, job(manifest.folder), "voice", notes)
    assert plan.chapters and plan.chunks
    for i, chapter in enumerate(plan.chapters):
        assert chapter.index == i and chapter.title and chapter.chunks
        for j, chunk in enumerate(chapter.chunks):
            assert chunk.chapter_index == i and chunk.index == j
            assert 0 < len(chunk.text) <= info.max_chars and chunk.text == chunk.text.strip()
            assert not any(ord(c) < 32 or 0x7F <= ord(c) < 0xA0 for c in chunk.text)
            assert len(chunk.key) == 64
    return plan


def manifest_in(folder: Path, body: dict[str, Any], name: str = "book.yaml") -> Manifest:
    # Reading and chunking only: the spoken structure (titles, credits) is tested in test_structure.py.
    base = {"title": "Bad Input", "author": "A", "engine": "fake", "credits": False, "speak_titles": False}
    return validate_manifest({**base, **body}, folder / name)


def plan_or_own_error(make: Any) -> BookPlan | AudiobookError:
    try:
        return make()  # type: ignore[no-any-return]
    except AudiobookError as exc:
        assert str(exc) and "\n" not in str(exc).strip()
        return exc


# --- property tests ------------------------------------------------------------------------------

YAML_BITS = [
    "title: ", "author: ", "source: ", "chapters:", "- ", "  ", "\n", ": ", "[", "]", "{", "}", ",", "&a ", "*a",
    "<<: ", "? ", "!!int ", "!!float ", "!!timestamp ", "!!binary ", "!!set ", "!!python/object:os.system ",
    "!!str ", "2001-02-30", "2001-13-45 25:61:61", "1e400", ".inf", ".nan", "0x", "0o9", "~", "null", "'", '"',
    "\\x00", "\\ud800", "#", "|", ">", "---", "...", "%YAML 1.1", "\t", "\x00", "\x1b", "\u202e", "👋",
]
yaml_ish = st.lists(st.one_of(st.sampled_from(YAML_BITS), st.text(max_size=4)), max_size=40).map("".join)


@FUZZ
@given(text=st.one_of(yaml_ish, st.text(max_size=300)), as_bytes=st.booleans())
def test_any_yaml_parses_or_is_a_manifest_error(text: str, as_bytes: bool) -> None:
    raw: str | bytes = text.encode("utf-8", "surrogatepass") if as_bytes else text
    try:
        data = parse_yaml(raw, Path("m.yaml"))
    except ManifestError as exc:
        assert "m.yaml" in str(exc)
        return
    try:
        validate_manifest(data, Path("/tmp/m.yaml"))
    except ManifestError as exc:
        assert "m.yaml" in str(exc)


FIELDS = ["title", "author", "narrator", "year", "genre", "description", "language", "series", "series_index",
          "cover", "engine", "voice", "quality", "seed", "pacing", "outputs", "source", "chapters", "path",
          "file", "text", "sentence_pause_ms", "voise", "chapter"]
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True), st.text(max_size=30),
    st.sampled_from(["../x.txt", "/etc/passwd", "a\x00b.txt", "x" * 4000 + ".txt", "ok.txt", "", "  ", "m4b",
                     "draft", "fake", "[sadly]"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(FIELDS), inner, max_size=4)),
    max_leaves=12,
)


@FUZZ
@given(data=st.dictionaries(st.one_of(st.sampled_from(FIELDS), st.integers(), st.text(max_size=5)), values,
                            max_size=8))
def test_any_mapping_validates_or_is_a_manifest_error(folder: Path, data: dict[Any, Any]) -> None:
    """Whatever the parsed YAML holds (NUL bytes, huge numbers, nested junk, paths out of the folder)."""
    base = {"title": "T", "author": "A"} if len(data) % 2 else {}
    try:
        manifest = validate_manifest({**base, **data}, folder / "m.yaml")
    except ManifestError as exc:
        assert "m.yaml" in str(exc)
        return
    assert manifest.title and manifest.author
    for path in filter(None, [manifest.source, manifest.cover, *(c.file for c in manifest.chapters or ())]):
        assert manifest.resolve(path, "x").is_relative_to(folder.resolve())
    plan_or_own_error(lambda: plan_of(manifest))


prose = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs",)) | st.sampled_from(list(".,;:!?[] \n\n\t-—…\"'")),
    max_size=400,
)


@FUZZ
@given(content=st.one_of(prose.map(lambda t: t.encode("utf-8")), st.binary(max_size=600)),
       suffix=st.sampled_from([".txt", ".md", ".epub"]), small=st.booleans())
def test_any_source_document_plans_or_is_an_own_error(folder: Path, content: bytes, suffix: str, small: bool) -> None:
    (folder / f"src{suffix}").write_bytes(content)
    manifest = manifest_in(folder, {"source": f"src{suffix}"})
    plan_or_own_error(lambda: plan_of(manifest, SMALL if small else PIPER_LIKE))


@FUZZ
@given(texts=st.lists(prose, min_size=1, max_size=4), small=st.booleans())
def test_any_chapter_list_plans_or_is_an_own_error(folder: Path, texts: list[str], small: bool) -> None:
    """Inline chapters and chapter files, empty, whitespace-only, prompts only or otherwise."""
    specs = []
    for i, text in enumerate(texts):
        if i % 2:
            (folder / f"c{i}.txt").write_text(text, encoding="utf-8")
            specs.append({"title": f"C{i}", "file": f"c{i}.txt"})
        else:
            specs.append({"title": f"C{i}", "text": text})

    def make() -> BookPlan:
        manifest = manifest_in(folder, {"chapters": specs})
        plan = plan_of(manifest, SMALL if small else PIPER_LIKE)
        assert {c.title for c in plan.chapters} <= {s["title"] for s in specs}
        return plan

    plan_or_own_error(make)


# --- explicit cases --------------------------------------------------------------------------------


def write(folder: Path, name: str, content: str | bytes) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


def book_yaml(source: str, engine: str = "fake") -> str:
    return (f"title: Bad Input\nauthor: A\nengine: {engine}\nvoice: {'joe' if engine == 'piper' else 'v'}\n"
            f"credits: false\nspeak_titles: false\n{source}")


def test_invalid_utf8_in_manifest_and_sources(tmp_path: Path) -> None:
    write(tmp_path, "bad.yaml", b"title: Caf\xe9\nauthor: A\nsource: a.txt\n")
    with pytest.raises(ManifestError, match=r"bad.yaml.*UTF-8"):
        load_manifest(tmp_path / "bad.yaml")
    for suffix in (".txt", ".md"):  # bytes that no encoding reads as text
        write(tmp_path, f"s{suffix}", b"Chapter 1\n\nGood text.\n\n" + bytes(range(0x80, 0x100)) * 4 + b"\n")
        manifest = manifest_in(tmp_path, {"source": f"s{suffix}"})
        with pytest.raises(SourceError, match=rf"s\{suffix}.*not valid UTF-8.*line 5"):
            plan_of(manifest)
        # Latin-1 without a declaration is detected, with a warning, not refused
        write(tmp_path, f"l{suffix}", b"Chapter 1\n\nGood text.\n\nCaf\xe9 au lait, na\xefve.\n")
        chapters, notes = read_chapters(manifest_in(tmp_path, {"source": f"l{suffix}"}))
        assert "Caf\u00e9 au lait, na\u00efve." in chapters[-1].paragraphs
        assert any("windows-1252" in note for note in notes)


def test_control_characters(tmp_path: Path) -> None:
    write(tmp_path, "ctl.yaml", "title: Bell\x07\nauthor: A\nsource: a.txt\n")
    with pytest.raises(ManifestError, match="ctl.yaml"):
        load_manifest(tmp_path / "ctl.yaml")
    text = "A bell\x07 rings.\x1b[0m Then a form\x0c feed, a\x0b tab\x85 and a\u200b space.\n\n" + "Plain words. " * 20
    write(tmp_path, "ctl.txt", text)
    plan = plan_of(manifest_in(tmp_path, {"source": "ctl.txt"}))
    assert plan.chunks[0].text.startswith("A bell rings. Then a form feed, a tab and a space.")
    write(tmp_path, "mostly.txt", "\x01\x02\x03\x04 text " * 50)
    with pytest.raises(SourceError, match="mostly.txt.*binary"):
        plan_of(manifest_in(tmp_path, {"source": "mostly.txt"}))


@pytest.mark.parametrize("suffix", [".txt", ".md"])
@pytest.mark.parametrize("kind", ["no-punctuation", "no-spaces"])
def test_one_megabyte_paragraph(tmp_path: Path, suffix: str, kind: str) -> None:
    text = ("word " * 200_000).strip() if kind == "no-punctuation" else "x" * 1_000_000
    write(tmp_path, f"big{suffix}", text + "\n")
    plan = plan_of(manifest_in(tmp_path, {"source": f"big{suffix}"}))
    joined = (" " if kind == "no-punctuation" else "").join(c.text for c in plan.chunks)
    assert joined == text
    assert len(plan.chunks) == pytest.approx(len(text) / 400, rel=0.05)


def test_empty_and_whitespace_only_chapters(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match=r"chapters\[1\].*'text' is empty"):
        manifest_in(tmp_path, {"chapters": [{"title": "A", "text": "Words."}, {"title": "B", "text": " \n\t "}]})
    write(tmp_path, "blank.txt", " \n\n\t\n\u3000\n")
    manifest = manifest_in(tmp_path, {"chapters": [{"title": "A", "text": "Words."}, {"title": "B", "file": "blank.txt"}]})
    with pytest.raises(SourceError, match="blank.txt.*no text"):
        plan_of(manifest)
    write(tmp_path, "gaps.txt", "Chapter 1\n\n   \n\nChapter 2\n\nSome words here.\n\nChapter 3\n\n\t\n")
    plan = plan_of(manifest_in(tmp_path, {"source": "gaps.txt"}))
    assert [c.title for c in plan.chapters] == ["Chapter 2"]
    assert sum("has no text" in w for w in plan.warnings) == 2
    write(tmp_path, "gaps.md", "# One\n\n# Two\n\nText of two.\n\n# Three\n\n<!-- nothing -->\n")
    plan = plan_of(manifest_in(tmp_path, {"source": "gaps.md"}))
    assert [c.title for c in plan.chapters] == ["Two"]
    write(tmp_path, "nothing.md", "# One\n\n```\ncode\n```\n\n# Two\n\n<!-- a comment -->\n\n---\n")
    with pytest.raises(SourceError, match="nothing.md.*no text"):
        plan_of(manifest_in(tmp_path, {"source": "nothing.md"}))


PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4
ELF = b"\x7fELF\x02\x01\x01" + b"\x00" * 9 + bytes(range(256))


def zip_bytes(folder: Path, members: dict[str, bytes]) -> bytes:
    path = folder / "z.zip"
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path.read_bytes()


@pytest.mark.parametrize("kind", ["png", "elf", "zip", "epub-without-container", "utf16", "gzip"])
@pytest.mark.parametrize("suffix", [".txt", ".md", ".epub"])
def test_binary_file_named_as_source(tmp_path: Path, kind: str, suffix: str) -> None:
    data = {
        "png": PNG, "elf": ELF, "utf16": "Chapter 1\n\nHello there.".encode("utf-16"),
        "gzip": b"\x1f\x8b\x08\x00" + bytes(range(200)),
        "zip": zip_bytes(tmp_path, {"a.bin": PNG}),
        "epub-without-container": zip_bytes(tmp_path, {"mimetype": b"application/epub+zip", "x.html": b"<p>Hi</p>"}),
    }[kind]
    write(tmp_path, f"source{suffix}", data)
    with pytest.raises(SourceError, match=rf"source\{suffix}"):
        plan_of(manifest_in(tmp_path, {"source": f"source{suffix}"}))


def test_huge_yaml(tmp_path: Path) -> None:
    write(tmp_path, "huge.yaml", "title: T\nauthor: A\ndescription: '" + "x" * MAX_MANIFEST_BYTES + "'\n")
    with pytest.raises(ManifestError, match="huge.yaml.*over the 1048576 byte limit"):
        load_manifest(tmp_path / "huge.yaml")
    many = "".join(f"  - {{title: 'Chapter {i}', text: 'Sentence number {i}.'}}\n" for i in range(1500))
    write(tmp_path, "many.yaml", book_yaml(f"chapters:\n{many}"))
    plan = plan_of(load_manifest(tmp_path / "many.yaml"))
    assert len(plan.chapters) == 1500 and plan.chapters[-1].title == "Chapter 1499"
    junk = "[" + ", ".join(str(i) for i in range(100_000)) + "]"
    write(tmp_path, "junk.yaml", book_yaml(f"source: a.txt\nextras: {junk}\n"))
    with pytest.raises(ManifestError, match="junk.yaml.*unknown key 'extras'"):
        load_manifest(tmp_path / "junk.yaml")


@pytest.mark.parametrize("style", ["flow-list", "flow-map", "block-map", "block-list"])
def test_deeply_nested_yaml(tmp_path: Path, style: str) -> None:
    depth = 10_000
    body = {
        "flow-list": "x: " + "[" * depth + "]" * depth,
        "flow-map": "x: " + "{a: " * depth + "1" + "}" * depth,
        "block-map": "".join(" " * i + f"k{i}:\n" for i in range(300)),
        "block-list": "x:\n" + "".join(" " * i + "-\n" for i in range(300)),
    }[style]
    write(tmp_path, "deep.yaml", "title: T\nauthor: A\n" + body)
    with pytest.raises(ManifestError, match="deep.yaml.*nesting deeper than 20 levels"):
        load_manifest(tmp_path / "deep.yaml")


def test_billion_laughs_through_load_manifest(tmp_path: Path) -> None:
    lines = ["title: T", "author: A", 'l0: &l0 "lol"']
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(1, 12)]
    lines += ["description: *l11"]
    write(tmp_path, "lol.yaml", "\n".join(lines) + "\n")
    with pytest.raises(ManifestError, match="lol.yaml.*aliases"):
        load_manifest(tmp_path / "lol.yaml")
    write(tmp_path, "merge.yaml", "base: &b {title: T}\n<<: *b\nauthor: A\nsource: a.txt\n")
    with pytest.raises(ManifestError, match="aliases"):
        load_manifest(tmp_path / "merge.yaml")


@pytest.mark.parametrize(
    ("yaml_value", "words"),
    [("2001-02-30", "day is out of range"), ("2001-13-45 25:61:61", "month must be in"),
     ("!!int twelve", "invalid literal"), ("!!float abc", "could not convert")],
)
def test_yaml_values_that_cannot_be_built(tmp_path: Path, yaml_value: str, words: str) -> None:
    """A typed YAML value the loader cannot construct was a bare ValueError before."""
    write(tmp_path, "typed.yaml", book_yaml(f"source: a.txt\nyear: {yaml_value}\n"))
    with pytest.raises(ManifestError, match=f"typed.yaml.*{words}"):
        load_manifest(tmp_path / "typed.yaml")


@pytest.mark.parametrize("path", ["a\\0b.txt", "x" * 300 + ".txt", "/".join(["d" * 250] * 20) + ".txt"])
def test_source_paths_the_file_system_refuses(tmp_path: Path, path: str) -> None:
    """NUL bytes and names too long: a ManifestError or SourceError naming the manifest, not ValueError/OSError."""
    write(tmp_path, "paths.yaml", book_yaml(f'source: "{path}"\n'))
    with pytest.raises((ManifestError, SourceError), match="paths.yaml"):
        make_plan(load_manifest(tmp_path / "paths.yaml"), engine_name=None, cache_dir=tmp_path / "cache",
                  voices_dir=tmp_path / "voices")


def test_emoji_and_right_to_left_text(tmp_path: Path) -> None:
    arabic = "\u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645."
    hebrew = "\u05e9\u05dc\u05d5\u05dd \u05e2\u05d5\u05dc\u05dd!"
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"
    text = f"# Emoji \U0001f44b\U0001f3fd\n\nHello {family} family. {arabic} {hebrew} \u202bembedded\u202c end.\n"
    write(tmp_path, "world.md", text)
    plan = plan_of(manifest_in(tmp_path, {"source": "world.md"}), SMALL)
    assert plan.chapters[0].title == "Emoji \U0001f44b\U0001f3fd"
    spoken = " ".join(c.text for c in plan.chunks)
    assert family in spoken and arabic in spoken and hebrew in spoken
    assert spoken == normalize_text(text.split("\n\n", 1)[1])


def test_chapter_of_only_bracketed_prompts_with_piper(tmp_path: Path) -> None:
    """With prompts on, Piper cannot use them: they are dropped; a chapter left with nothing is left out with a
    warning, and a book left with nothing is refused with a SourceError naming the manifest."""
    write(tmp_path, "mixed.yaml", book_yaml(
        "prompts: true\nchapters:\n  - {title: Mood, text: '[sadly] [softly]'}\n"
        "  - {title: Words, text: '[calm] Real words here.'}\n  - {title: Nested, text: '[[very] sad] [a]'}\n",
        engine="piper"))
    plan = make_plan(load_manifest(tmp_path / "mixed.yaml"), engine_name=None, cache_dir=tmp_path / "cache",
                     voices_dir=tmp_path / "voices")
    assert plan.engine_info.name == "piper" and not plan.engine_info.supports_prompts
    assert [c.title for c in plan.chapters] == ["Words"]
    assert [c.text for c in plan.chunks] == ["Real words here."]
    assert plan.chunks[0].chapter_index == 0 and plan.prompts_dropped == 3
    assert any("'Mood'" in w and "left out" in w for w in plan.warnings)
    assert any("'Nested'" in w and "left out" in w for w in plan.warnings)
    write(tmp_path, "prompts.yaml", book_yaml("prompts: true\nchapters:\n  - {title: Mood, text: '[sadly] [softly]'}\n",
                                              engine="piper"))
    with pytest.raises(SourceError, match=r"prompts.yaml: chapters: the book has no text to speak.*prompts"):
        make_plan(load_manifest(tmp_path / "prompts.yaml"), engine_name=None, cache_dir=tmp_path / "cache",
                  voices_dir=tmp_path / "voices")


def test_epub_with_prompts_emoji_and_empty_chapters(tmp_path: Path) -> None:
    from ebooklib import epub

    book = epub.EpubBook()
    book.set_identifier("bad")
    book.set_title("Bad")
    chapters = [("Empty", "<p>  </p>"), ("Prompts", "<p>[sadly]</p><p>[softly]</p>"),
                ("Real", "<p>Words \U0001f600 and \u05e9\u05dc\u05d5\u05dd.</p>")]
    items = []
    for i, (title, body) in enumerate(chapters):
        item = epub.EpubHtml(title=title, file_name=f"c{i}.xhtml", lang="en")
        item.content = f"<html><body><h1>{title}</h1>{body}</body></html>" if i == 2 else f"<html><body>{body}</body></html>"
        book.add_item(item)
        items.append(item)
    book.toc = [epub.Link(f"c{i}.xhtml", t, f"c{i}") for i, (t, _) in enumerate(chapters)]
    book.add_item(epub.EpubNcx())
    book.add_item(epub.EpubNav())
    book.spine = ["nav", *items]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        epub.write_epub(str(tmp_path / "b.epub"), book)
    plan = plan_of(manifest_in(tmp_path, {"source": "b.epub", "prompts": True}))
    assert [c.title for c in plan.chapters] == ["Real"]
    assert "\U0001f600" in plan.chunks[-1].text
    assert any("'Empty'" in w for w in plan.warnings) and any("'Prompts'" in w for w in plan.warnings)


# --- `audiobook check` on bad input ---------------------------------------------------------------


def test_check_command_on_bad_input_exits_2_with_one_line(tmp_path: Path) -> None:
    lol = ["title: T", "author: A", "a: &a [x, x, x, x, x, x, x, x, x]"]
    lol += [f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]" for i in range(8)]
    cases: dict[str, tuple[str | bytes, dict[str, bytes], str]] = {
        # name: (manifest, other files, what the one line names)
        "utf8": (b"title: Caf\xe9\nauthor: A\nsource: a.txt\n", {}, "utf8.yaml"),
        "laughs": ("\n".join(lol) + "\n", {}, "laughs.yaml"),
        "binary": (book_yaml("source: cover.txt\n"), {"cover.txt": PNG}, "cover.txt"),
        "prompts": (book_yaml("prompts: true\nchapters:\n  - {title: M, text: '[sadly] [softly]'}\n", "piper"), {},
                    "prompts.yaml"),
        "longname": (book_yaml(f"source: {'n' * 300}.txt\n"), {}, "longname.yaml"),
    }
    env = {**os.environ, "AUDIOBOOK_VOICES_DIR": str(tmp_path / "voices"), "AUDIOBOOK_CACHE_DIR": str(tmp_path / "c")}
    env.pop("AUDIOBOOK_DEBUG", None)
    procs = {}
    for name, (manifest, files, _) in cases.items():
        folder = tmp_path / name
        for file, data in files.items():
            write(folder, file, data)
        path = write(folder, f"{name}.yaml", manifest)
        procs[name] = subprocess.Popen([sys.executable, "-m", "cli", "check", str(path)], env=env,
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=120)
        lines = err.strip().splitlines()
        assert proc.returncode == 2, (name, out, err)
        assert len(lines) == 1 and lines[0].startswith("error: "), (name, err)
        assert cases[name][2] in lines[0] and "Traceback" not in err, (name, err)
