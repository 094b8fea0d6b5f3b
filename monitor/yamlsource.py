"""YAML loading that remembers where every value came from, so errors can say file:line:column.

`load_yaml` returns plain Python data (dicts, lists, scalars as YAML's safe loader builds them) together with
a map from each value's path (("feeds", 0, "url")) to its position. `locate` turns the `loc` of a pydantic
error, or any path, into the closest known position.

Config and rule files are written by people but may be edited by anyone who can write to them, so hostile
YAML is refused with a located error before it can hang or crash the daemon (a SIGHUP reload reads it too):

- a file over MAX_YAML_BYTES is refused before parsing;
- nesting deeper than MAX_YAML_DEPTH is refused while reading the event stream, before PyYAML's recursive
  composer could exhaust the stack (RecursionError);
- aliases may be used, but the document may expand to at most MAX_YAML_VALUES values, which stops an alias
  bomb ("billion laughs": 9 aliases of 9 aliases ... expand to 9**9 values) after a bounded amount of work;
- explicit tags other than the plain core ones (!!str, !!int, !!float, !!bool, !!null, !!seq, !!map) are
  refused: !!timestamp, !!binary, !!set, !!python/... and custom tags have no meaning in these files.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from monitor.errors import ConfigError

__all__ = [
    "MAX_YAML_BYTES",
    "MAX_YAML_DEPTH",
    "MAX_YAML_VALUES",
    "LocatedYaml",
    "Position",
    "load_yaml",
    "load_yaml_file",
    "validation_error",
]

PathKey = tuple[str | int, ...]

# The bundled rules are 28 KB and 4,000 values, nested 5 deep; a large monitor.yaml is a few hundred lines.
MAX_YAML_BYTES = 1024 * 1024
MAX_YAML_DEPTH = 64
MAX_YAML_VALUES = 100_000
_CORE_TAGS = frozenset(
    f"tag:yaml.org,2002:{name}" for name in ("str", "int", "float", "bool", "null", "seq", "map")
)
_TAG_PREFIX = "tag:yaml.org,2002:"
# libyaml's parser when PyYAML was built with it (the wheels are): the same events and nodes, with marks, about
# ten times faster than the pure-Python one, which made reading the bundled rules a fifth of every command's
# start-up (0.34 s of `monitor once`). The values are still built by SafeLoader's constructors in _Builder.
_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True, slots=True)
class Position:
    file: str
    line: int  # 1-based
    column: int  # 1-based


@dataclass(frozen=True, slots=True)
class LocatedYaml:
    data: Any
    file: str
    positions: dict[PathKey, Position] = field(default_factory=dict)  # where each value starts
    key_positions: dict[PathKey, Position] = field(default_factory=dict)  # where each mapping key starts

    def locate(self, path: Iterable[str | int]) -> Position:
        """The position of `path`, or of its longest prefix that has one (the whole file at worst)."""
        parts = tuple(path)
        for end in range(len(parts), -1, -1):
            found = self.positions.get(parts[:end])
            if found is not None:
                return found
        return Position(self.file, 1, 1)

    def locate_key(self, path: Iterable[str | int]) -> Position:
        """The position of the mapping key of `path` (for "unknown key" errors), else as `locate`."""
        parts = tuple(path)
        return self.key_positions.get(parts) or self.locate(parts)

    def document_path(self, loc: Iterable[str | int]) -> PathKey:
        """`loc` (e.g. a pydantic error location) with the parts that are not keys of this document dropped:
        union tags like "email" in ("channels", "mail", "email", "port"), type names, validator names. A last
        part that is missing from the document (a required key) is kept, so the path still names it."""
        parts = tuple(loc)
        node = self.data
        path: list[str | int] = []
        for index, part in enumerate(parts):
            in_mapping = isinstance(node, dict) and part in node
            in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
            if in_mapping or in_list:
                node = node[part]
                path.append(part)
            elif index == len(parts) - 1 and isinstance(node, dict) and isinstance(part, str):
                path.append(part)
        return tuple(path)


class _Builder:
    """Turns a composed node tree into Python data while recording positions."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.positions: dict[PathKey, Position] = {}
        self.key_positions: dict[PathKey, Position] = {}
        self._constructor = yaml.SafeLoader("")
        self._built = 0

    def build(self, node: yaml.Node, path: PathKey) -> Any:
        mark = node.start_mark
        self._built += 1
        if self._built > MAX_YAML_VALUES:
            # Only aliases can get here: the event pass already counted every value written in the file.
            raise ConfigError(
                f"aliases expand to more than {MAX_YAML_VALUES} values (an alias bomb?); refusing the file",
                file=self.file,
                line=mark.line + 1,
                column=mark.column + 1,
            )
        self.positions[path] = Position(self.file, mark.line + 1, mark.column + 1)
        if isinstance(node, yaml.MappingNode):
            self._constructor.flatten_mapping(node)
            result: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                key = self._scalar(key_node)
                if not isinstance(key, str | int | float | bool) and key is not None:
                    raise ConfigError(
                        "mapping keys must be plain scalars",
                        file=self.file,
                        line=key_node.start_mark.line + 1,
                        column=key_node.start_mark.column + 1,
                    )
                if key in result:
                    raise ConfigError(
                        f"duplicate key {key!r}",
                        file=self.file,
                        line=key_node.start_mark.line + 1,
                        column=key_node.start_mark.column + 1,
                    )
                str_key = key if isinstance(key, str) else str(key)
                key_mark = key_node.start_mark
                self.key_positions[(*path, str_key)] = Position(
                    self.file, key_mark.line + 1, key_mark.column + 1
                )
                result[str_key] = self.build(value_node, (*path, str_key))
            return result
        if isinstance(node, yaml.SequenceNode):
            return [self.build(child, (*path, index)) for index, child in enumerate(node.value)]
        return self._scalar(node)

    def _scalar(self, node: yaml.Node) -> Any:
        try:
            return self._constructor.construct_object(node, deep=True)
        except (ValueError, OverflowError) as exc:
            # An int of over 4,300 digits (Python's int() limit), a float PyYAML cannot build, ...
            shown = str(node.value)[:20] + ("..." if len(str(node.value)) > 20 else "")
            raise _error_at(
                f"cannot read the value {shown!r}: {str(exc)[:120]}", self.file, node.start_mark
            ) from exc


def _error_at(message: str, file: str, mark: Any) -> ConfigError:
    """A ConfigError at a PyYAML mark (0-based, possibly absent)."""
    if mark is None:
        return ConfigError(message, file=file)
    return ConfigError(message, file=file, line=mark.line + 1, column=mark.column + 1)


def _refuse_hostile_structure(text: str, file: str) -> None:
    """Read the event stream (iteratively: no recursion) and refuse deep nesting, too many values and tags.

    Runs before the composer, which recurses once per nesting level. YAML syntax errors pass through to be
    reported by the caller as usual."""
    depth = 0
    values = 0
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, yaml.NodeEvent):
            values += 1
            tag = getattr(event, "tag", None)
            if tag not in (None, "!") and tag not in _CORE_TAGS:
                shown = "!!" + tag[len(_TAG_PREFIX) :] if tag.startswith(_TAG_PREFIX) else tag
                raise _error_at(
                    f"tag {shown} is not allowed (write the plain value: a string, number, list or mapping)",
                    file,
                    event.start_mark,
                )
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_YAML_DEPTH:
                raise _error_at(
                    f"nested deeper than {MAX_YAML_DEPTH} levels; refusing the file", file, event.start_mark
                )
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
        if values > MAX_YAML_VALUES:
            raise _error_at(f"more than {MAX_YAML_VALUES} values; refusing the file", file, event.start_mark)


def load_yaml(text: str, file: str) -> LocatedYaml:
    """Parse one YAML document; syntax errors become ConfigError with the file, line and column."""
    if len(text) > MAX_YAML_BYTES:
        raise ConfigError(f"larger than {MAX_YAML_BYTES // 1024} KiB; refusing to read it", file=file)
    try:
        _refuse_hostile_structure(text, file)
        node = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or str(exc)
        if exc.context:
            problem = f"{problem} ({exc.context})"
        raise ConfigError(
            f"invalid YAML: {problem}",
            file=file,
            line=mark.line + 1 if mark else None,
            column=mark.column + 1 if mark else None,
        ) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {exc}", file=file) from exc
    if node is None:
        return LocatedYaml(None, file, {(): Position(file, 1, 1)})
    builder = _Builder(file)
    try:
        data = builder.build(node, ())
    except yaml.constructor.ConstructorError as exc:
        mark = exc.problem_mark
        raise ConfigError(
            f"invalid YAML: {exc.problem}",
            file=file,
            line=mark.line + 1 if mark else None,
            column=mark.column + 1 if mark else None,
        ) from exc
    return LocatedYaml(data, file, builder.positions, builder.key_positions)


def load_yaml_file(path: Path) -> LocatedYaml:
    """Read and parse a YAML file; unreadable, oversized or non-UTF-8 files become ConfigError naming it."""
    try:
        if path.stat().st_size > MAX_YAML_BYTES:
            raise ConfigError(
                f"larger than {MAX_YAML_BYTES // 1024} KiB; refusing to read it", file=str(path)
            )
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text ({exc.reason} at byte {exc.start})", file=str(path)) from exc
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror or exc}", file=str(path)) from exc
    return load_yaml(text, str(path))


def validation_error(
    exc: ValidationError,
    doc: LocatedYaml,
    *,
    prefix: Sequence[str | int] = (),
    error_type: type[ConfigError] = ConfigError,
) -> ConfigError:
    """Turn the first error of a pydantic ValidationError into a located ConfigError.

    The message lists every problem (pydantic reports them all); the position is the first one's. `prefix` is
    prepended to pydantic's `loc` when the model validated a sub-tree of the document.
    """
    problems = exc.errors(include_url=False)
    located = [_locate_problem(problem, doc, prefix) for problem in problems]
    path, pos = located[0]
    lines = [
        f"{'.'.join(str(p) for p in where) or '(top level)'} (line {at.line}): {_describe(problem)}"
        for (where, at), problem in zip(located, problems, strict=True)
    ]
    message = _describe(problems[0]) if len(lines) == 1 else "; ".join(lines)
    field_name = ".".join(str(p) for p in path) or None
    return error_type(message, file=doc.file, line=pos.line, column=pos.column, field=field_name)


def _locate_problem(problem: Any, doc: LocatedYaml, prefix: Sequence[str | int]) -> tuple[PathKey, Position]:
    path = doc.document_path((*prefix, *problem["loc"]))
    if problem.get("type") == "extra_forbidden":
        return path, doc.locate_key(path)
    return path, doc.locate(path)


def _describe(problem: Any) -> str:
    msg = str(problem.get("msg", "invalid"))
    if problem.get("type") == "extra_forbidden":
        return "unknown key (not allowed here)"
    if problem.get("type") == "missing":
        return "required key is missing"
    return msg
