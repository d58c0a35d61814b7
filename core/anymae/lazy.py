"""Lazy package exports: ``from package import Name`` imports Name's module on first use, not at ``import package``.

The ``anymae`` command lists its commands (``anymae --help``) by loading every installed plugin's entry module. A
package ``__init__`` that imports its whole API would pull in torch, Lightning and each plugin's media libraries
(seconds) before a line is printed, so the core and our plugins export their API through :func:`lazy_exports`
(PEP 562 module ``__getattr__``). The names stay public and importable exactly as before; only the time of import
moves.

Example, in a plugin's ``__init__.py``::

    from anymae.lazy import lazy_exports

    __all__ = ["DNAKmerTokenizer", "SyntheticDNADataModule"]
    exports = {".tokenizers": ["DNAKmerTokenizer"], ".data": ["SyntheticDNADataModule"]}
    __getattr__, __dir__ = lazy_exports(__name__, exports)
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from types import ModuleType
from typing import Any

__all__ = ["lazy_exports", "require"]


def lazy_exports(
    package: str, exports: Mapping[str, str | Iterable[str]]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for the module ``package`` (pass ``__name__``) that import each exported name
    from its module (``exports``: module path, relative to ``package`` when it starts with a dot, -> names, as a list
    or one space-separated string) on first access, and keep it in the package's namespace so the next access is a
    plain attribute lookup."""
    where = {
        name: module
        for module, names in exports.items()
        for name in (names.split() if isinstance(names, str) else names)
    }

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, package), name)
        setattr(importlib.import_module(package), name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(importlib.import_module(package))) | set(where))

    return __getattr__, __dir__


def require(module: str, *, install: str, feature: str) -> ModuleType:
    """Import an optional dependency, or fail with a message that says what to install.

    Example: ``sklearn = require("sklearn", install="anymae-image[digits]", feature="the digits data set")``.
    """
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ImportError(f"{feature} needs the package {module!r}: pip install '{install}'") from error
