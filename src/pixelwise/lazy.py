"""Package attributes imported on first use (PEP 562).

A method package re-exports its loss, model and task for the library's users, but ``pixelwise CMD --help`` only
needs its options module: with :func:`lazy_exports` the package's ``__init__`` names what it exports without
importing it, so reading the options never imports torch.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any


def lazy_exports(
    package: str, exports: dict[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package`` whose name ``N`` lives in its submodule ``exports[N]``.

    A name may not be one of the submodules': importing that submodule binds the module to the package under its
    name, which would then shadow the export (eager ``from .x import x`` rebinds it; a lazy export cannot)."""
    shadowed = sorted(set(exports) & set(exports.values()))
    if shadowed:
        raise ValueError(f"{package}: {', '.join(shadowed)} would be shadowed by the submodule of that name")

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{exports[name]}"), name)
        setattr(sys.modules[package], name, value)  # the next lookup is an ordinary attribute
        return value

    def __dir__() -> list[str]:
        return sorted(set(exports) | set(vars(sys.modules[package])))

    return __getattr__, __dir__
