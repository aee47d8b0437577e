"""Load monitor.yaml: safe YAML, `${ENV_VAR}` interpolation, typed validation, located errors.

Every error names the file, the line, the key path and what was expected. Validation runs per
venue, per desk and per section so that one run reports every broken entry, not just the first.
What types alone cannot say (usable URLs, account owners, limits, routes) is checked in
venue_checks.py and alerting_checks.py; this module points each of their problems at its line.
"""

from __future__ import annotations

import os
import re
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import yaml

from riskmon.config.alerting_checks import check_alerting
from riskmon.config.schema import MonitorConfig
from riskmon.config.types import decode_hook
from riskmon.config.venue_checks import check_underlyings, check_venues_and_desks

KeyPath = tuple[str | int, ...]

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_MSGSPEC_PATH = re.compile(r"^(?P<message>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_KEY_IN = re.compile(r"^.*? - at `key` in `\$(?P<path>[^`]*)`$", re.DOTALL)
_PATH_TOKEN = re.compile(r"\.([^.\[]+)|\[(\d+)\]|\[\.\.\.\]")
_UNKNOWN_FIELD = re.compile(r"unknown field `([^`]+)`")
_MISSING_FIELD = re.compile(r"missing required field `([^`]+)`")


@dataclass(frozen=True)
class ConfigIssue:
    file: str
    line: int | None
    path: KeyPath
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        key = format_path(self.path) or "(top level)"
        return f"{where}: {key}: {self.message}"


class ConfigError(Exception):
    def __init__(self, issues: list[ConfigIssue]) -> None:
        super().__init__("\n".join(str(issue) for issue in issues))
        self.issues = issues


def format_path(path: KeyPath) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def load_config(path: str | Path, environ: Mapping[str, str] | None = None) -> MonitorConfig:
    """Read and validate a config file; raise ConfigError listing every problem found."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([ConfigIssue(str(path), None, (), f"cannot read file: {exc.strerror}")]) from None
    return parse_config(text, str(path), os.environ if environ is None else environ)


def parse_config(text: str, filename: str, environ: Mapping[str, str]) -> MonitorConfig:
    issues: list[ConfigIssue] = []
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError([ConfigIssue(filename, line, (), f"invalid YAML: {problem}")]) from None
    lines: dict[KeyPath, int] = {}
    if root is not None:
        _index_lines(root, (), lines, issues, filename)
    if not isinstance(data, dict):
        raise ConfigError([ConfigIssue(filename, 1, (), "expected a mapping with `venues` and `desks`")])

    data = _interpolate(data, (), environ, issues, filename, lines)
    config = _validate(data, issues, filename, lines)
    if config is not None:
        issues.extend(_check_semantics(config, filename, lines))
    if issues:
        raise ConfigError(issues)
    assert config is not None
    return config


def _index_lines(
    node: yaml.Node, path: KeyPath, lines: dict[KeyPath, int], issues: list[ConfigIssue], filename: str
) -> None:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in seen:
                issues.append(ConfigIssue(filename, key_node.start_mark.line + 1, (*path, key), "duplicate key"))
            seen.add(key)
            lines[(*path, key)] = key_node.start_mark.line + 1
            _index_lines(value_node, (*path, key), lines, issues, filename)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _index_lines(item, (*path, index), lines, issues, filename)


def _line_for(path: KeyPath, lines: dict[KeyPath, int]) -> int | None:
    # The closest enclosing key that the file spells out (a missing key has no line of its own).
    for cut in range(len(path), -1, -1):
        if path[:cut] in lines:
            return lines[path[:cut]]
    return None


def _interpolate(
    value: Any,
    path: KeyPath,
    environ: Mapping[str, str],
    issues: list[ConfigIssue],
    filename: str,
    lines: dict[KeyPath, int],
) -> Any:
    if isinstance(value, dict):
        return {k: _interpolate(v, (*path, str(k)), environ, issues, filename, lines) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, (*path, i), environ, issues, filename, lines) for i, v in enumerate(value)]
    if not isinstance(value, str) or "${" not in value:
        return value

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in environ:
            issues.append(
                ConfigIssue(filename, _line_for(path, lines), path, f"environment variable {name} is not set")
            )
            return match.group(0)
        return environ[name]

    return _ENV_REF.sub(substitute, value)


# strict=False lets a number arrive as a string, which is all `${ENV_VAR}` can produce
# (`port: ${PORT}`); the types still decide what is accepted.
def _validate(
    data: dict[str, Any], issues: list[ConfigIssue], filename: str, lines: dict[KeyPath, int]
) -> MonitorConfig | None:
    hints = typing.get_type_hints(MonitorConfig)
    fields = {f.encode_name: f for f in msgspec.structs.fields(MonitorConfig)}
    ok = True
    for key in data:
        if key not in fields:
            issues.append(
                ConfigIssue(
                    filename,
                    _line_for((str(key),), lines),
                    (str(key),),
                    f"unknown section; expected one of {', '.join(sorted(fields))}",
                )
            )
            ok = False
    for name, field in fields.items():
        if name not in data:
            if field.required:
                issues.append(ConfigIssue(filename, 1, (name,), "required section is missing"))
                ok = False
            continue
        section_type = hints[field.name]
        section = data[name]
        if typing.get_origin(section_type) is dict and isinstance(section, dict):
            if not section:
                issues.append(ConfigIssue(filename, _line_for((name,), lines), (name,), "expected at least one entry"))
                ok = False
            value_type = typing.get_args(section_type)[1]
            for entry_name, entry in section.items():
                path = (name, str(entry_name))
                if not isinstance(entry_name, str):
                    issues.append(ConfigIssue(filename, _line_for(path, lines), path, "expected a name; quote it"))
                    ok = False
                    continue
                ok &= _check(entry, value_type, path, issues, filename, lines)
        else:
            ok &= _check(section, section_type, (name,), issues, filename, lines)
    if not ok:
        return None
    return msgspec.convert(data, MonitorConfig, dec_hook=decode_hook, strict=False)


def _check(
    value: Any,
    typ: Any,
    prefix: KeyPath,
    issues: list[ConfigIssue],
    filename: str,
    lines: dict[KeyPath, int],
) -> bool:
    try:
        msgspec.convert(value, typ, dec_hook=decode_hook, strict=False)
    except msgspec.ValidationError as exc:
        match = _MSGSPEC_PATH.match(str(exc))
        assert match is not None
        message, raw_path = match.group("message"), match.group("path") or ""
        key_in = _KEY_IN.match(str(exc))
        if key_in:
            message, raw_path = "expected a name; quote it", key_in.group("path")
        path = (*prefix, *_locate(value, typ, raw_path))
        missing = _MISSING_FIELD.search(message)
        unknown = _UNKNOWN_FIELD.search(message)
        if unknown:
            path = (*path, unknown.group(1))
            message = "unknown key" + _expected_keys(value, typ, path[len(prefix) :])
        elif missing:
            message = f"missing required key `{missing.group(1)}`"
        issues.append(ConfigIssue(filename, _line_for(path, lines), path, _plain(message)))
        return False
    return True


def _plain(message: str) -> str:
    return message[0].lower() + message[1:] if message else message


def _struct_for(typ: Any, data: Any) -> Any:
    """The concrete type a value decodes to, picking a tagged-union member by its tag."""
    origin = typing.get_origin(typ)
    if origin is dict or origin is list:
        return typ
    members = [t for t in typing.get_args(typ) if t is not type(None)] if origin else [typ]
    structs = [t for t in members if _is_struct(t)]
    if len(structs) == 1:
        return structs[0]
    for struct in structs:
        config = struct.__struct_config__
        if isinstance(data, dict) and data.get(config.tag_field) == config.tag:
            return struct
    return members[0] if members else typ


def _is_struct(typ: Any) -> bool:
    return isinstance(typ, type) and issubclass(typ, msgspec.Struct)


def _descend(value: Any, typ: Any, part: str | int) -> tuple[Any, Any]:
    """The value and declared type one key or index below (value, typ)."""
    typ = _struct_for(typ, value)
    args = typing.get_args(typ)
    if isinstance(part, int):
        child = value[part] if isinstance(value, list) and part < len(value) else None
        return child, args[0] if args else Any
    child = value.get(part) if isinstance(value, dict) else None
    if _is_struct(typ):
        by_encode = {f.encode_name: f for f in msgspec.structs.fields(typ)}
        field = by_encode.get(part)
        return child, typing.get_type_hints(typ)[field.name] if field is not None else Any
    return child, args[1] if len(args) == 2 else Any


def _locate(value: Any, typ: Any, raw_path: str) -> KeyPath:
    """Turn msgspec's `$.a[...].b[0]` into concrete keys, finding which dict key `[...]` hides."""
    path: list[str | int] = []
    for match in _PATH_TOKEN.finditer(raw_path):
        part: str | int
        if match.group(1):
            part = match.group(1)
        elif match.group(2):
            part = int(match.group(2))
        else:
            value_type = typing.get_args(_struct_for(typ, value))[1]
            part = next((str(k) for k, v in (value or {}).items() if not _converts(v, value_type)), "")
            if not part:
                break
        path.append(part)
        value, typ = _descend(value, typ, part)
    return tuple(path)


def _converts(value: Any, typ: Any) -> bool:
    try:
        msgspec.convert(value, typ, dec_hook=decode_hook, strict=False)
    except msgspec.ValidationError:
        return False
    return True


def _expected_keys(value: Any, typ: Any, path: KeyPath) -> str:
    for part in path[:-1]:
        value, typ = _descend(value, typ, part)
    typ = _struct_for(typ, value)
    if not _is_struct(typ):
        return ""
    names = sorted(f.encode_name for f in msgspec.structs.fields(typ))
    return f"; expected one of {', '.join(names)}"


def _check_semantics(config: MonitorConfig, filename: str, lines: dict[KeyPath, int]) -> list[ConfigIssue]:
    problems = [*check_venues_and_desks(config), *check_alerting(config), *check_underlyings(config)]
    return [ConfigIssue(filename, _line_for(path, lines), path, message) for path, message in problems]
