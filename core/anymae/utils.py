"""Small helpers for plugins."""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["require"]


def require(module: str, *, install: str, feature: str) -> ModuleType:
    """Import an optional dependency, or fail with a message that says what to install.

    Example: ``sklearn = require("sklearn", install="anymae-image[digits]", feature="the digits data set")``.
    """
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ImportError(f"{feature} needs the package {module!r}: pip install '{install}'") from error
