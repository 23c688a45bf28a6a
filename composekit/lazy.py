"""Package ``__init__``s that name their public API without importing it (PEP 562): a name is
imported from its submodule the first time it is used. ``composekit restore`` needs the deploy
lock, not the deploy machinery behind ``composekit.deploy``'s other names."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any


def exports(package: str, modules: dict[str, str]) -> Callable[[str], Any]:
    """The module-level ``__getattr__`` of ``package``, whose public names live in submodules:
    ``modules`` maps each submodule to its names, space-separated."""
    where = {name: sub for sub, names in modules.items() for name in names.split()}

    def __getattr__(name: str) -> Any:
        sub = where.get(name)
        if sub is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{sub}"), name)
        setattr(sys.modules[package], name, value)  # found once: the next use is a plain lookup
        return value

    return __getattr__
