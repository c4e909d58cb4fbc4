"""Command-line options made from the stage config dataclasses, so each default, help text, range and list of allowed
values is written once (in the config, see `xinstruct.config.setting`) and the CLI cannot drift from it.

    @app.command()
    @config_options(GenerateConfig, "lang", "limit", "batch_size", flags={"round_id": "--round"})
    def generate(cfg: GenerateConfig, db: DbOption = None) -> None: ...

The command gets one option per named field (`--batch-size` for `batch_size`, unless `flags` names it otherwise), with
the field's type (a `Literal` becomes a choice), default, help and inclusive range (`cli_min` where the command line is
stricter than the config; a field with only an exclusive bound, `above`, cannot be an option: tests/test_cli.py requires
every numeric option to declare its minimum), and is called with `cfg`: the config built from the defaults and the
options given. Fields not named keep their defaults (a pipeline YAML sets those).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import typing
from collections.abc import Callable
from typing import Annotated, Any, Optional

import typer

from ..config import MISSING, default_of, field_help


def _field(cls: type, name: str) -> dataclasses.Field:
    for f in dataclasses.fields(cls):
        if f.name == name:
            return f
    raise AttributeError(f"{cls.__name__} has no field {name!r}")


def _sentence(text: str) -> str:
    """The field's help as the option's (a config's help starts lower case, like 'vllm: ...': kept as written)."""
    text = text.strip()
    return text.rstrip(".") + "." if text else text


def option_type(cls: type, name: str, *, flag: str | None = None, help_prefix: str = "", override: bool = False) -> Any:
    """The `Annotated[type, typer.Option(...)]` of one config field. With `override`, the option is optional (None =
    keep the config's value) whatever the field's type."""
    f = _field(cls, name)
    hint = typing.get_type_hints(cls)[name]
    if typing.get_origin(hint) is list or override:
        hint = Optional[hint]  # noqa: UP007 (typer reads the annotation object)
    meta = f.metadata
    lo = meta.get("cli_min") if meta.get("cli_min") is not None else meta.get("min")
    option = typer.Option(*([flag] if flag else []), help=help_prefix + _sentence(field_help(cls).get(name, "")),
                          min=lo, max=meta.get("max"))
    return Annotated[hint, option]


def cli_default(cls: type, name: str) -> Any:
    """The option's default: the field's (None for a list, which the command line gives as a repeated option)."""
    value = default_of(_field(cls, name))
    return None if isinstance(value, list) or value is MISSING else value


def config_options(cls: type, *names: str, flags: dict[str, str] | None = None) -> Callable[[Callable], Callable]:
    """Decorate a command taking `cfg: cls` (and its own other parameters): it gets one option per field in `names`."""
    flags = flags or {}

    def decorate(func: Callable) -> Callable:
        own = [p for p in inspect.signature(func, eval_str=True).parameters.values() if p.name != "cfg"]
        made = [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, annotation=option_type(cls, n, flag=flags.get(n)),
                                  default=cli_default(cls, n)) for n in names]
        keyword = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own]
        empty = inspect.Parameter.empty  # the command's arguments first, then the config's options, then its own
        params = [*(p for p in keyword if p.default is empty), *made, *(p for p in keyword if p.default is not empty)]

        @functools.wraps(func)
        def command(**kwargs: Any) -> Any:
            values = {n: kwargs.pop(n) for n in names}
            for n, v in values.items():
                if v is None and isinstance(default_of(_field(cls, n)), list):  # a repeated option not given
                    values[n] = default_of(_field(cls, n))
            return func(cfg=cls(**values), **kwargs)

        del command.__wrapped__  # typer must see the signature made here, not the function's own
        command.__signature__ = inspect.Signature(params)
        command.__annotations__ = {p.name: p.annotation for p in params}
        return command

    return decorate
