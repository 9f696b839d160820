"""Generate argparse flags from a config dataclass, so every flag's help lives next to its field.

Precedence: dataclass default < ``--config FILE.yaml`` < explicit flag. Flags left unset on the command line
are ``None`` in the namespace (argparse.SUPPRESS-like), which is how we know the YAML value should win.
Flag values and YAML values both pass :func:`~pixelwise.engine.config.check_option` (type, count, range): a bad
flag is argparse's usual error (exit status 2), a bad YAML value a one-line ``ConfigError`` naming the file.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from pixelwise.engine.config import (
    ConfigError,
    OptionType,
    check_option,
    describe_range,
    load_yaml,
    option_fields,
)

T = TypeVar("T")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


class _CheckedStore(argparse.Action):
    """Store a flag's value once :func:`check_option` accepts it, so a value out of range fails while parsing.

    argparse converts each word with ``type`` first (``--epochs one`` is its own "invalid int value" error);
    this adds what ``type`` cannot see: the declared range, and how many values a list flag got.
    """

    def __init__(self, *args: Any, field: dataclasses.Field, accepts: OptionType, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.field, self.accepts = field, accepts

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        try:
            setattr(namespace, self.dest, check_option(self.field, self.accepts, values))
        except ConfigError as err:
            raise argparse.ArgumentError(self, str(err)) from None  # argparse prints usage + this, exits 2


def checked_flag(kind: type, **bounds: Any) -> dict[str, Any]:
    """``add_argument`` keywords for a hand-written flag, checked like a config field's, e.g. ``minimum=1``."""
    field = dataclasses.field(metadata=bounds)
    return {"type": kind, "action": _CheckedStore, "field": field, "accepts": OptionType(kind, False, False)}


def add_dataclass_arguments(parser: argparse.ArgumentParser, cls: type, skip: tuple[str, ...] = ()) -> None:
    """One flag per field; defaults are shown in --help but applied later by :func:`build_config`."""
    for name, (field, accepts) in option_fields(cls).items():
        if name in skip:
            continue
        default = field.default if field.default is not dataclasses.MISSING else field.default_factory()  # type: ignore[misc]
        accepted = describe_range(field.metadata)
        help_text = (
            f"{field.metadata.get('help', '')} (default: {default}{'; ' + accepted if accepted else ''})"
        )
        kwargs: dict[str, Any] = {"default": None, "help": help_text, "dest": name}
        if accepts.kind is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs.update(action=_CheckedStore, field=field, accepts=accepts, type=accepts.kind)
            if accepts.is_list:
                kwargs["nargs"] = "*"  # the count is checked by _CheckedStore, with the same words as YAML's
            if "choices" in field.metadata:
                kwargs["choices"] = field.metadata["choices"]
        parser.add_argument(_flag(name), **kwargs)


def build_config(cls: type[T], args: argparse.Namespace) -> T:
    """Defaults, then the YAML file given by ``--config``, then explicit flags (already checked by argparse).

    Raises :class:`ConfigError` (a ``ValueError``: one line from the CLI, exit status 2) for an unreadable or
    malformed file, an unknown option, or a value of the wrong type, count or range.
    """
    fields = option_fields(cls)
    values: dict[str, Any] = {}
    if getattr(args, "config", None):
        from_file = load_yaml(args.config)
        unknown = sorted(set(from_file) - set(fields))
        if unknown:
            raise ConfigError(f"{args.config}: unknown option(s) {', '.join(unknown)}")
        for name, value in from_file.items():
            try:
                values[name] = check_option(*fields[name], value)
            except ConfigError as err:
                raise ConfigError(f"{args.config}: {name.replace('_', '-')}: {err}") from None
    values.update({k: v for k, v in vars(args).items() if k in fields and v is not None})
    config = cls(**values)
    output = getattr(config, "output", None)
    if isinstance(output, str) and output:
        check_output(Path(output), is_file=getattr(cls, "OUTPUT_IS_FILE", False))
    return config


def check_output(path: Path, is_file: bool = False) -> None:
    """Refuse, before anything runs, an --output that cannot be written: a file where a folder is needed (or
    the reverse), a parent that is a file, or a folder this user may not write to."""
    flag = f"--output {path}"
    if path.exists() and path.is_dir() == is_file:
        want = "a file name (e.g. model.onnx)" if is_file else "a folder"
        raise ConfigError(f"{flag}: is {'a folder' if is_file else 'a file'}; give {want}")
    existing = path if path.exists() and not is_file else path.parent
    while not existing.exists():  # the deepest ancestor that exists is where the folders will be made
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(
            f"{flag}: {existing} is a file, so nothing can be written below it; choose another path"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"{flag}: {existing} is not writable by this user; choose another --output")


def deferred(module: str, name: str) -> Callable[[argparse.Namespace], int]:
    """A command's ``run`` that imports ``module`` only when the command runs, so building its parser (and
    ``--help``) stays free of what the work needs (torch, OpenCV, ...)."""

    def run(args: argparse.Namespace) -> int:
        return getattr(importlib.import_module(module), name)(args)

    return run
