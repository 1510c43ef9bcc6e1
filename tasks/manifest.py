"""The manifest: a book's YAML file, validated once at the edge into frozen, typed models.

Downstream code never sees raw dicts. Every problem becomes a ManifestError that names the file,
the field and the fix. YAML is read with a safe loader that also refuses aliases (no "billion laughs"),
deep nesting and oversized files.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from tasks.documents.model import MatterKind, NotesMode
from tasks.errors import ManifestError

MAX_MANIFEST_BYTES = 1 << 20  # 1 MiB: a manifest is a few hundred bytes; inline chapters may be larger
MAX_YAML_DEPTH = 20

Quality = Literal["draft", "standard", "high"]
OutputFormat = Literal["m4b", "mp3"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)


class Pacing(_Frozen):
    """Pauses between spoken units, in milliseconds."""

    sentence_pause_ms: Annotated[int, Field(ge=0, le=10_000)] = 300
    paragraph_pause_ms: Annotated[int, Field(ge=0, le=20_000)] = 800
    chapter_pause_ms: Annotated[int, Field(ge=0, le=30_000)] = 2000


class ChapterSpec(_Frozen):
    """One explicit chapter: a title and either a file (relative to the manifest) or inline text."""

    title: Annotated[str, Field(min_length=1, max_length=500)]
    file: str | None = None
    text: str | None = None

    @model_validator(mode="after")
    def _file_or_text(self) -> ChapterSpec:
        if (self.file is None) == (self.text is None):
            raise ValueError("give exactly one of 'file' or 'text'")
        if self.text is not None and not self.text.strip():
            raise ValueError("'text' is empty")
        return self


class Reading(_Frozen):
    """What of a source is read aloud, beyond its narrative (see README, "The manifest")."""

    keep: tuple[MatterKind, ...] = ()  # publisher matter a reader recognises, to read anyway; skipped by default
    notes: NotesMode = "skip"  # footnotes / endnotes: not read, or at the end of their chapter
    image_alt: bool = False  # read an image's alt text
    part_titles: Annotated[str, Field(min_length=1, max_length=200)] = "{part}: {chapter}"
    urls: Literal["domain", "drop"] = "domain"  # a URL or e-mail address is read as its domain, or dropped

    @field_validator("part_titles")
    @classmethod
    def _has_chapter(cls, v: str) -> str:
        if "{chapter}" not in v:
            raise ValueError("must contain {chapter} (and may contain {part})")
        try:
            v.format(part="Part", chapter="Chapter")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"only {{part}} and {{chapter}} may stand in braces ({exc})") from None
        return v


class Manifest(_Frozen):
    title: Annotated[str, Field(min_length=1, max_length=500)]
    author: Annotated[str, Field(min_length=1, max_length=500)]
    narrator: str | None = None
    year: int | str | None = None
    genre: str | None = None
    description: str | None = None
    language: str = "en"
    series: str | None = None
    series_index: int | float | None = None
    cover: str | None = None
    engine: Annotated[str, Field(min_length=1)] = "piper"
    voice: Annotated[str, Field(min_length=1)] = "joe"
    quality: Quality = "standard"
    seed: Annotated[int, Field(ge=0, le=2**32 - 1)] = 0
    pacing: Pacing = Pacing()
    outputs: tuple[OutputFormat, ...] = ("m4b", "mp3")
    reading: Reading = Reading()
    speak_titles: bool = True  # each chapter file opens with its title spoken
    credits: bool = True  # opening and closing credits as the first and last chapters
    read_along: bool = False  # also an EPUB 3 whose text is highlighted as it is read (Media Overlays)
    prompts: bool = False  # "[...]" is a voice prompt (Tortoise), not text; off: brackets are read as text
    verify: Literal["off", "flag", "reroll"] | None = None  # speech-recognition take check; None: engine's default
    verify_threshold: Annotated[float, Field(ge=0.0, le=1.0)] = 0.9  # words heard / expected below this: bad take
    pronunciations: dict[Annotated[str, Field(min_length=1, max_length=100)], Annotated[str, Field(max_length=200)]] = {}
    source: str | None = None
    chapters: tuple[ChapterSpec, ...] | None = None

    # Set by load_manifest, not by the YAML: where the manifest lives and what it is called.
    path: Path = Field(default=Path("manifest.yaml"), exclude=True)

    @field_validator("outputs")
    @classmethod
    def _outputs_not_empty(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if not v:
            raise ValueError("list at least one output format: m4b, mp3")
        return tuple(dict.fromkeys(v))

    @field_validator("verify", mode="before")
    @classmethod
    def _verify_yaml_words(cls, v: Any) -> Any:
        """YAML reads a bare `off` as false and `on` as true: `verify: off` means "off", `on` the engine's
        default check."""
        if v is False:
            return "off"
        if v is True:
            return None
        return v

    @field_validator("year", mode="before")
    @classmethod
    def _year_text(cls, v: Any) -> Any:
        return str(v) if isinstance(v, int) and not isinstance(v, bool) else v

    @model_validator(mode="after")
    def _source_or_chapters(self) -> Manifest:
        if (self.source is None) == (self.chapters is None):
            raise ValueError("give exactly one of 'source' (one document) or 'chapters' (a list)")
        if self.chapters is not None and not self.chapters:
            raise ValueError("'chapters' is empty")
        return self

    @property
    def folder(self) -> Path:
        return self.path.parent

    @property
    def stem(self) -> str:
        return self.path.stem

    def resolve(self, relative: str, field: str) -> Path:
        """A path named in the manifest, relative to its folder; it may not leave that folder."""
        return resolve_inside(self.folder, relative, file=self.path, field=field)

    @property
    def cover_path(self) -> Path | None:
        return self.resolve(self.cover, "cover") if self.cover else None


def resolve_inside(folder: Path, relative: str, *, file: Path, field: str) -> Path:
    base = folder.resolve()
    if "\x00" in relative:
        raise ManifestError(
            f"path {relative!r} holds a NUL character", file=file, field=field, fix="give a plain file name"
        )
    candidate = Path(relative)
    if candidate.is_absolute():
        raise ManifestError(
            f"absolute path {relative!r} is not allowed", file=file, field=field,
            fix="give a path relative to the manifest's folder",
        )
    resolved = (base / candidate).resolve()
    if not resolved.is_relative_to(base):
        raise ManifestError(
            f"path {relative!r} leaves the manifest's folder", file=file, field=field,
            fix=f"keep the file inside {base}",
        )
    return resolved


class _SafeNoAliasLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses aliases and deep nesting."""

    def compose_node(self, parent: Any, index: Any) -> Any:  # type: ignore[override]
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.constructor.ConstructorError(
                None, None, "YAML aliases (*name) are not allowed in manifests", event.start_mark
            )
        self._depth = getattr(self, "_depth", 0) + 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                raise yaml.constructor.ConstructorError(
                    None, None, f"nesting deeper than {MAX_YAML_DEPTH} levels", self.peek_event().start_mark
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _too_big(size: int, file: Path) -> ManifestError:
    return ManifestError(
        f"the manifest is {size} bytes, over the {MAX_MANIFEST_BYTES} byte limit", file=file,
        fix="move long chapter text into files named with 'file:'",
    )


def parse_yaml(text: str | bytes, file: Path) -> Any:
    """Parse manifest YAML safely: no aliases, bounded size and depth."""
    if len(text) > MAX_MANIFEST_BYTES:
        raise _too_big(len(text), file)
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ManifestError(
                f"not valid UTF-8 at byte {exc.start}", file=file, fix="save the manifest as UTF-8"
            ) from None
    try:
        return yaml.load(text, Loader=_SafeNoAliasLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        fix = "write each value out in full" if "alias" in problem else "correct the YAML syntax at that place"
        raise ManifestError(f"{where}invalid YAML: {problem}", file=file, fix=fix) from None
    except RecursionError:
        raise ManifestError("the YAML is nested too deeply", file=file, fix="flatten it") from None
    except Exception as exc:  # noqa: BLE001 - PyYAML's constructors fail on bad typed values in many ways
        # e.g. "year: 2001-02-30" (ValueError), "!!int abc" (ValueError), "!!float ''" (IndexError),
        # "!!timestamp x" (AttributeError): all of them are the manifest's fault, not ours.
        raise ManifestError(
            f"invalid YAML value: {exc or type(exc).__name__}", file=file, fix="quote the value, or correct it",
        ) from None


def _field_names(model: type[BaseModel]) -> list[str]:
    return [name for name, f in model.model_fields.items() if not f.exclude]


def _location(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


_FIX_BY_TYPE = {
    "missing": "add it",
    "literal_error": None,
    "string_type": "give text",
    "int_parsing": "give a whole number",
    "int_type": "give a whole number",
}


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel]:
    model: type[BaseModel] = Manifest
    for part in loc[:-1]:
        if part == "pacing":
            model = Pacing
        elif part == "reading":
            model = Reading
        elif part == "chapters":
            model = ChapterSpec
    return model


def _translate(exc: ValidationError, file: Path) -> ManifestError:
    errors = exc.errors()
    err = errors[0]
    loc = tuple(err.get("loc", ()))
    field = _location(loc) or "(top level)"
    kind = err.get("type", "")
    msg = err.get("msg", "invalid")
    if kind == "extra_forbidden":
        name = str(loc[-1])
        valid = _field_names(_model_at(loc))
        near = difflib.get_close_matches(name, valid, n=1)
        suggestion = f"did you mean {near[0]!r}?" if near else f"valid keys: {', '.join(valid)}"
        return ManifestError(f"unknown key {name!r}", file=file, field=field, fix=suggestion)
    if kind == "missing":
        return ManifestError("is required", file=file, field=field, fix=f"add '{loc[-1]}: ...' to the manifest")
    fix: str | None = _FIX_BY_TYPE.get(kind)
    if kind == "literal_error":
        expected = err.get("ctx", {}).get("expected", "")
        fix = f"use one of {expected}"
    if kind == "model_type" or kind == "dict_type":
        fix = "give a mapping of keys to values"
    msg = msg.removeprefix("Value error, ")
    fix = fix or "see 'The manifest' in README.md"
    more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
    return ManifestError(f"{msg}{more}", file=file, field=field, fix=fix)


def validate_manifest(data: Any, path: Path) -> Manifest:
    """Validate parsed YAML into a Manifest; `path` is where it lives (for relative paths and messages)."""
    if not isinstance(data, dict):
        got = "an empty file" if data is None else f"a {type(data).__name__}"
        raise ManifestError(
            f"a manifest is a mapping of keys (title, author, ...), not {got}", file=path,
            fix="start from manifests/quickstart.yaml",
        )
    bad_keys = [k for k in data if not isinstance(k, str)]
    if bad_keys:
        raise ManifestError(f"key {bad_keys[0]!r} is not text", file=path, fix="use the documented key names")
    try:
        manifest = Manifest.model_validate({**data, "path": path})
    except ValidationError as exc:
        raise _translate(exc, path) from None
    if "path" in data:
        raise ManifestError("unknown key 'path'", file=path, field="path", fix="remove it")
    # Paths named in the manifest must resolve inside its folder; existence is checked when read.
    if manifest.cover:
        manifest.resolve(manifest.cover, "cover")
    if manifest.source:
        manifest.resolve(manifest.source, "source")
    for i, chapter in enumerate(manifest.chapters or ()):
        if chapter.file:
            manifest.resolve(chapter.file, f"chapters[{i}].file")
    return manifest


def load_manifest(path: str | Path) -> Manifest:
    """Read, parse and validate a manifest file."""
    path = Path(path)
    try:
        exists, is_file = path.exists(), path.is_file()
    except (OSError, ValueError) as exc:  # a name too long, a NUL byte
        raise ManifestError(f"cannot open it: {exc}", file=path, fix="check the path to the manifest") from None
    if not exists:
        raise ManifestError("no such file", file=path, fix="check the path to the manifest")
    if not is_file:
        raise ManifestError("not a file", file=path, fix="give the path to a .yaml manifest")
    try:
        size = path.stat().st_size
        if size > MAX_MANIFEST_BYTES:
            raise _too_big(size, path)
        raw = path.read_bytes()
    except OSError as exc:
        raise ManifestError(f"cannot read it: {exc.strerror}", file=path, fix="check its permissions") from None
    return validate_manifest(parse_yaml(raw, path), path.absolute())
