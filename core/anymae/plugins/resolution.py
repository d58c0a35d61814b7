"""How the names in a config become classes, for the ``anymae`` commands.

jsonargparse (under LightningCLI) turns ``class_path`` values into classes: a full class path is imported, and a
short name is looked up among the already imported subclasses of the expected base class. Within :func:`resolving`
three rules of ours come first:

* a short name means the class the registry holds under it, so a class that a plugin failed to register (a
  duplicate name) never shadows the first registration;
* a class path into a plugin that failed to load or is disabled is refused before anything more of it is imported,
  naming the plugin and why;
* a class path into a module that is not installed names the module and, for ``anymae_<name>`` packages, the
  distribution to install (``pip install anymae-image``);
* with ``ANYMAE_ALLOWED_MODULES=pkg1,pkg2`` set (for running configs from others: a config can name any importable
  class, and naming a module imports it), a class path outside those packages, anymae, its plugins, torch and
  lightning is refused before anything is imported.

The hook points are two functions of jsonargparse's (``resolve_class_path_by_name`` and ``import_object``), swapped
only for the duration of the ``with`` block: jsonargparse has no public hook for name resolution.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
from collections.abc import Iterator
from typing import Any

from .loader import Plugins

__all__ = ["ComponentImportError", "install_hint", "resolving"]

_HOOK_MODULES = ("jsonargparse._typehints", "jsonargparse._actions")
ALLOWED_ENV = "ANYMAE_ALLOWED_MODULES"
ALWAYS_ALLOWED = ("anymae", "torch", "lightning", "pytorch_lightning")


class ComponentImportError(ImportError):
    """A class path that cannot be used: its plugin is blocked, or its module is not installed."""


def install_hint(module: str) -> str:
    """What to install for a missing module: ``anymae_image.x`` -> ``pip install anymae-image``."""
    top = module.split(".")[0]
    if top.startswith("anymae_"):
        return f"; it comes from the plugin {top.replace('_', '-')}: pip install {top.replace('_', '-')}"
    return "; install the package that provides it"


def allowed_modules(plugins: Plugins) -> tuple[str, ...] | None:
    """The module prefixes a config may name when ``ANYMAE_ALLOWED_MODULES`` is set (``None``: no allow-list)."""
    listed = os.environ.get(ALLOWED_ENV)
    if listed is None:
        return None
    healthy = [package for info in plugins.plugins if info.ok for package in info.packages]
    return (*ALWAYS_ALLOWED, *healthy, *(entry.strip() for entry in listed.split(",") if entry.strip()))


def _missing_module(class_path: str) -> str | None:
    """The longest importable-looking prefix of ``class_path`` that is not installed, if any."""
    parts = class_path.split(".")
    for end in range(1, len(parts)):
        module = ".".join(parts[:end])
        try:
            if importlib.util.find_spec(module) is None:
                return module
        except (ImportError, ValueError):  # a parent package failed to import, or is not a package
            return module if end == 1 else None
        except Exception:  # the parent package raised while importing: not a missing module
            return None
    return None


@contextlib.contextmanager
def resolving(plugins: Plugins) -> Iterator[list[str]]:
    """Within the block, jsonargparse resolves class names through ``plugins`` (see the module docstring).

    Yields the list of the refusals raised so far (jsonargparse nests them among its other attempts in the error it
    reports, so the CLI looks them up there to report the one that matters).
    """
    import importlib

    modules = [importlib.import_module(name) for name in _HOOK_MODULES]
    raised: list[str] = []
    allowed = allowed_modules(plugins)
    from jsonargparse import _typehints

    original_resolve = _typehints.resolve_class_path_by_name
    original_imports = {module: module.import_object for module in modules}

    def resolve_class_path_by_name(cls: type | tuple[type, ...], name: str) -> str:
        if "." not in name and name in plugins.registry:
            component = plugins.registry.get(name)
            bases = cls if isinstance(cls, tuple) else (cls,)
            if any(isinstance(base, type) and issubclass(component.cls, base) for base in bases):
                return component.class_path
        return original_resolve(cls, name)

    def checked_import(original: Any) -> Any:
        def import_object(name: str, *args: Any, **kwargs: Any) -> Any:
            from_config = kwargs.get("check_path", args[0] if args else True)  # False: a path from code, not a value
            if isinstance(name, str) and "." in name:
                if allowed is not None and from_config and not any(name.startswith(f"{p}.") for p in allowed):
                    raised.append(f"{name} is outside {ALLOWED_ENV} ({', '.join(allowed)}); add its package to run it")
                    raise ComponentImportError(raised[-1])
                blocked = plugins.blocking(name)
                if blocked is not None:
                    raised.append(f"{name} belongs to the plugin {blocked.name}, which is {blocked.status}")
                    raise ComponentImportError(raised[-1])
            try:
                return original(name, *args, **kwargs)
            except ModuleNotFoundError as error:
                missing = _missing_module(name) if isinstance(name, str) else None
                if missing is None:
                    raise
                raised.append(f"{name}: no module named {missing!r}{install_hint(missing)}")
                raise ComponentImportError(raised[-1]) from error

        return import_object

    _typehints.resolve_class_path_by_name = resolve_class_path_by_name
    for module in modules:
        module.import_object = checked_import(original_imports[module])
    try:
        yield raised
    finally:
        _typehints.resolve_class_path_by_name = original_resolve
        for module, original in original_imports.items():
            module.import_object = original
