"""Generate argparse flags from a config dataclass, so every flag's help lives next to its field.

Precedence: dataclass default < ``--config FILE.yaml`` < explicit flag. Flags left unset on the command line
are ``None`` in the namespace (argparse.SUPPRESS-like), which is how we know the YAML value should win.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from typing import Any, TypeVar

from pixelwise.engine.config import load_yaml

T = TypeVar("T")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _base_type(annotation: Any) -> tuple[Any, bool]:
    """(element type, is_list) of an annotation like ``int``, ``list[int] | None``, ``str | None``."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _base_type(args[0])
    if origin is list:
        return typing.get_args(annotation)[0], True
    return annotation, False


def add_dataclass_arguments(parser: argparse.ArgumentParser, cls: type, skip: tuple[str, ...] = ()) -> None:
    """One flag per field; defaults are shown in --help but applied later by :func:`build_config`."""
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        if field.name in skip:
            continue
        kind, is_list = _base_type(hints[field.name])
        default = field.default if field.default is not dataclasses.MISSING else field.default_factory()  # type: ignore[misc]
        help_text = f"{field.metadata.get('help', '')} (default: {default})"
        kwargs: dict[str, Any] = {"default": None, "help": help_text, "dest": field.name}
        if kind is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["type"] = kind
            if is_list:
                kwargs["nargs"] = "*"
            if "choices" in field.metadata:
                kwargs["choices"] = field.metadata["choices"]
        parser.add_argument(_flag(field.name), **kwargs)


def build_config(cls: type[T], args: argparse.Namespace) -> T:
    """Defaults, then the YAML file given by ``--config``, then explicit flags."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    values: dict[str, Any] = {}
    if getattr(args, "config", None):
        from_file = load_yaml(args.config)
        unknown = sorted(set(from_file) - names)
        if unknown:
            raise SystemExit(f"{args.config}: unknown option(s) {', '.join(unknown)}")
        values.update(from_file)
    values.update({k: v for k, v in vars(args).items() if k in names and v is not None})
    return cls(**values)
