"""kubernetes_asyncio without its eager imports: its package ``__init__`` files import every API class
and all 800 models (36 MiB resident), while the operator uses only the ApiClient, Configuration
and the config loaders, with plain JSON bodies.

`install` registers those packages as lazy modules before anything imports them: each keeps its
real ``__path__`` (submodules import as usual) and resolves a name its ``__init__`` would have
imported (``from X import Name`` or ``import X as name``) on first access. Nothing changes for code
that uses a model: it is imported when first named.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
import types
from pathlib import Path

LAZY_PACKAGES = (
    "kubernetes_asyncio",
    "kubernetes_asyncio.client",
    "kubernetes_asyncio.client.api",
    "kubernetes_asyncio.client.models",
)
_FROM = re.compile(r"^from ([\w.]+) import (\w+)\s*$", re.MULTILINE)
_IMPORT_AS = re.compile(r"^import ([\w.]+) as (\w+)\s*$", re.MULTILINE)
_ASSIGN = re.compile(r"^(__\w+__) = \"([^\"]*)\"\s*$", re.MULTILINE)


class _LazyPackage(types.ModuleType):
    def __init__(self, name: str, where: dict[str, tuple[str, str | None]]) -> None:
        super().__init__(name)
        self._where = where

    def __getattr__(self, attr: str) -> object:
        where = self.__dict__.get("_where", {})
        if attr not in where:
            raise AttributeError(f"module {self.__name__!r} has no attribute {attr!r}")
        module, name = where[attr]
        value = importlib.import_module(module)
        if name is not None:
            value = getattr(value, name)
        setattr(self, attr, value)
        return value

    def __dir__(self) -> list[str]:
        return sorted({*super().__dir__(), *self.__dict__.get("_where", {})})


def install(packages: tuple[str, ...] = LAZY_PACKAGES) -> bool:
    """Register ``packages`` as lazy modules; False (and nothing changed) when one of them is
    already imported or cannot be found."""
    if any(p in sys.modules for p in packages):
        return False
    lazies: list[_LazyPackage] = []
    for name in packages:
        spec = importlib.util.find_spec(name) if "." not in name else _child_spec(name, lazies)
        if spec is None or spec.origin is None or spec.submodule_search_locations is None:
            return False
        source = Path(spec.origin).read_text(encoding="utf-8")
        where: dict[str, tuple[str, str | None]] = {n: (m, n) for m, n in _FROM.findall(source)}
        where |= {alias: (m, None) for m, alias in _IMPORT_AS.findall(source)}
        module = _LazyPackage(name, {k: v for k, v in where.items() if not k.startswith("_")})
        module.__spec__ = spec
        module.__file__ = spec.origin
        module.__path__ = list(spec.submodule_search_locations)
        module.__package__ = name
        for key, value in _ASSIGN.findall(source):
            setattr(module, key, value)
        lazies.append(module)
        sys.modules[name] = module
        parent, _, leaf = name.rpartition(".")
        if parent:
            setattr(sys.modules[parent], leaf, module)
    return True


def _child_spec(name: str, lazies: list[_LazyPackage]) -> importlib.machinery.ModuleSpec | None:
    parent = name.rpartition(".")[0]
    found = [m for m in lazies if m.__name__ == parent]
    if not found:
        return None
    return importlib.machinery.PathFinder.find_spec(name, found[0].__path__)
