"""Stage configs: one dataclass per stage, every field declared once with its default, help, range and (for enumerated
fields, typed `Literal[...]`) its allowed values. Everything else derives from that declaration: YAML configs are
checked against it (unknown keys, types, allowed values, ranges: `from_dict`), each config's `validate()` checks the same
rules for configs built in Python, `xinstruct run --explain` prints it, and the command line builds its options from it
(`xinstruct.cli.options`), so a default, a help text or a range cannot differ between the YAML, the CLI and the code.

Declare a field with `setting(default, help, min=..., max=..., above=...)`. Classes not converted yet may still give
their help as the comment after a field; `field_help` reads both.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import types
import typing
from functools import lru_cache
from typing import Any, Literal

from .errors import ConfigError

_FIELD_COMMENT = re.compile(r"^\s+(\w+)\s*:[^#]*#\s*(.+)$")
MISSING = dataclasses.MISSING


def setting(default: Any = MISSING, help: str = "", *, factory: Any = MISSING, min: float | None = None,
            max: float | None = None, above: float | None = None, zero: str | None = None,
            cli_min: float | None = None) -> Any:
    """A config field with everything the YAML loader, `validate()` and the command line need to know about it.

    `min`/`max` are inclusive bounds, `above` an exclusive lower bound; None values pass when the field is Optional.
    `zero` says what 0 means where 0 is allowed and special ("label only"), for the error message. `cli_min` is a
    stricter minimum for the command line only (a flag that would make the command do nothing, e.g. `--limit 0`).
    """
    meta = {"help": help, "min": min, "max": max, "above": above, "zero": zero, "cli_min": cli_min}
    if factory is not MISSING:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


@lru_cache(maxsize=None)
def field_help(cls: type) -> dict[str, str]:
    """Help text of each field: its `setting(help=...)`, else the comment that follows it in the class body."""
    out: dict[str, str] = {}
    try:
        for line in inspect.getsource(cls).splitlines():
            m = _FIELD_COMMENT.match(line)
            if m:
                out[m.group(1)] = m.group(2).strip()
    except (OSError, TypeError):  # no source (frozen app): metadata only
        pass
    for f in dataclasses.fields(cls):
        if f.metadata.get("help"):
            out[f.name] = f.metadata["help"]
    return out


def default_of(f: dataclasses.Field) -> Any:
    """A field's default value (a fresh one from its factory), or MISSING."""
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:
        return f.default_factory()
    return MISSING


def choices(hint: Any) -> tuple | None:
    """The allowed values of a `Literal[...]` field (also inside Optional[...]), else None."""
    if typing.get_origin(hint) is Literal:
        return typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        for arg in typing.get_args(hint):
            found = choices(arg)
            if found is not None:
                return found
    return None


def describe(cls: type) -> str:
    """One line per field: name, default, allowed values or range, help (for `xinstruct run --explain`)."""
    helps = field_help(cls)
    hints = typing.get_type_hints(cls)
    lines = []
    for f in dataclasses.fields(cls):
        default = default_of(f)
        allowed = choices(hints[f.name])
        rule = f"one of {', '.join(map(str, allowed))}" if allowed else _range_text(f.metadata)
        lines.append(f"  {f.name} (default {None if default is MISSING else default!r}): {helps.get(f.name, '')}"
                     + (f" [{rule}]" if rule else ""))
    return "\n".join(lines)


def _range_text(meta: typing.Mapping) -> str:
    lo, hi, above, zero = meta.get("min"), meta.get("max"), meta.get("above"), meta.get("zero")
    if above is not None:
        return f"in ({above}, {hi}]" if hi is not None else f"above {above}"
    if lo is not None and hi is not None:
        return f"in [{lo}, {hi}]"
    if lo is not None:
        return f"0 ({zero}) or more" if lo == 0 and zero else ("0 or more" if lo == 0 else f"at least {lo}")
    if hi is not None:
        return f"at most {hi}"
    return ""


def _in_range(value: Any, meta: typing.Mapping) -> bool:
    lo, hi, above = meta.get("min"), meta.get("max"), meta.get("above")
    return ((lo is None or value >= lo) and (hi is None or value <= hi) and (above is None or value > above)
            and value == value)  # NaN is in no range


def _expected(hint: Any) -> str:
    """A type hint in words, for error messages: 'one of kmeans, minibatch, auto', 'an integer or null'..."""
    allowed = choices(hint)
    if allowed is not None:
        return "one of " + ", ".join("null" if a is None else str(a) for a in allowed)
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_expected(h) for h in typing.get_args(hint))
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false", type(None): "null",
             list: "a list", dict: "a mapping"}
    return names.get(origin or hint, str(hint))


def _type_error(name: str, value: Any, hint: Any) -> str:
    allowed = choices(hint)
    if allowed is not None:
        return f"unknown {name} {value!r}; use one of {', '.join(str(a) for a in allowed if a is not None)}"
    return f"{name} must be {_expected(hint)} (got {value!r})"


def check_fields(obj: Any) -> None:
    """Check every field of a config against its declaration: type, allowed values (Literal), range. Raises a
    ConfigError naming the field, the bad value and what is allowed. Configs call it first in `validate()`."""
    cls = type(obj)
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        value = getattr(obj, f.name)
        if not _check_type(value, hints[f.name]):
            raise ConfigError(_type_error(f.name, value, hints[f.name]))
        if value is not None and isinstance(value, (int, float)) and not isinstance(value, bool):
            if not _in_range(value, f.metadata):
                raise ConfigError(f"{f.name} must be {_range_text(f.metadata)} (got {value!r})")


def _check_type(value: Any, hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if hint is Any:
        return True
    if origin is Literal:
        return any(value == a and type(value) is type(a) for a in typing.get_args(hint))
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
            if choices(hints[key]):
                raise ConfigError(f"{where}: {_type_error(key, value, hints[key])}")
            raise ConfigError(f"{where}.{key}: {value!r} is not {_expected(hints[key])} ({field_help(cls).get(key, '')})")
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
