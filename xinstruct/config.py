"""Stage configs from YAML: one dataclass per stage, help text on every field (the comment after it), unknown keys are
errors, values type-checked, command-line flags override."""

from __future__ import annotations

import dataclasses
import inspect
import re
import types
import typing
from functools import lru_cache
from typing import Any

from .errors import ConfigError

_FIELD_COMMENT = re.compile(r"^\s+(\w+)\s*:[^#]*#\s*(.+)$")


@lru_cache(maxsize=None)
def field_help(cls: type) -> dict[str, str]:
    """Help text of each field, read from the comment that follows it in the class body."""
    out: dict[str, str] = {}
    for line in inspect.getsource(cls).splitlines():
        m = _FIELD_COMMENT.match(line)
        if m:
            out[m.group(1)] = m.group(2).strip()
    return out


def describe(cls: type) -> str:
    """One line per field: name, default, help (for `xinstruct run --explain`)."""
    helps = field_help(cls)
    lines = []
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        lines.append(f"  {f.name} (default {default!r}): {helps.get(f.name, '')}")
    return "\n".join(lines)


def _check_type(value: Any, hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if hint is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_check_type(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin in (list, tuple):
        args = typing.get_args(hint)
        return isinstance(value, (list, tuple)) and (not args or all(_check_type(v, args[0]) for v in value))
    if origin is dict:
        return isinstance(value, dict)
    return isinstance(value, hint) if isinstance(hint, type) else True


def check(checks: list[tuple[bool, str]]) -> None:
    """Raise a ConfigError with the first failed check's message (for the configs' validate methods)."""
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)


def from_dict(cls: type, data: dict | None, where: str) -> Any:
    """Build `cls` from a mapping; unknown keys, wrong types and values out of range (the class's `validate`) are
    ConfigErrors naming the section and the key."""
    data = dict(data or {})
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; valid keys:\n{describe(cls)}")
    for key, value in data.items():
        if not _check_type(value, hints[key]):
            raise ConfigError(f"{where}.{key}: {value!r} is not a {hints[key]} ({field_help(cls).get(key, '')})")
    obj = cls(**data)
    if hasattr(obj, "validate"):
        try:
            obj.validate()
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from exc
    return obj


def override(cfg: Any, **flags: Any) -> Any:
    """Return cfg with every flag that is not None replacing the config value."""
    changes = {k: v for k, v in flags.items() if v is not None}
    return dataclasses.replace(cfg, **changes) if changes else cfg
