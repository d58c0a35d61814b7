"""How the names in a config become classes, for the ``anymae`` commands.

jsonargparse (under LightningCLI) imports a full class path and looks a short name up among the imported subclasses
of the expected base. Within :func:`resolving`, through its public ``set_parsing_settings``, a class path is refused
before anything is imported when it points into a plugin that failed to load or is disabled, or, with
``ANYMAE_ALLOWED_MODULES=pkg1,pkg2`` set (for configs from others: naming a module imports it), when it is outside
those packages, anymae, its healthy plugins, torch and Lightning. :mod:`anymae.cli.errors` words jsonargparse's
refusals for the user (the plugin and why, the variable, the distribution to install).

jsonargparse has no public hook for short names: a plugin's class that the registry rejected as a duplicate would make
the core's short name ambiguous. The one shim, swapped in only within the block, makes a registered short name mean
the registered class; it and the settings' restoration rely on jsonargparse 4.53 internals (pinned in pyproject.toml,
checked by tests/core/test_plugins.py::test_the_jsonargparse_shim_holds).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from ..config import ConfigError
from .loader import Plugins

__all__ = ["ALLOWED_ENV", "allowed_modules", "resolving"]

ALLOWED_ENV = "ANYMAE_ALLOWED_MODULES"
ALWAYS_ALLOWED = ("anymae", "torch", "lightning", "pytorch_lightning")


def allowed_modules(plugins: Plugins) -> list[str] | None:
    """The packages a config may name when ``ANYMAE_ALLOWED_MODULES`` is set (``None``: no allow-list)."""
    listed = os.environ.get(ALLOWED_ENV)
    if listed is None:
        return None
    listed_packages = filter(None, map(str.strip, listed.split(",")))
    return list(dict.fromkeys([*ALWAYS_ALLOWED, *_packages(plugins, ok=True), *listed_packages]))


def _packages(plugins: Plugins, ok: bool) -> list[str]:
    """The packages of the healthy (or of the failed and disabled) plugins, those an import path can name."""
    packages = (package for info in plugins.plugins if info.ok is ok for package in info.packages)
    return [package for package in packages if all(part.isidentifier() for part in package.split("."))]


@contextlib.contextmanager
def resolving(plugins: Plugins) -> Iterator[None]:
    """Within the block, jsonargparse resolves class names through ``plugins`` (see the module docstring); its
    settings are restored after, so one command's plugins and allow-list never leak into the next."""
    import jsonargparse
    from jsonargparse import _common, _typehints  # the shim's two internals

    blocked = _packages(plugins, ok=False)
    allowed = allowed_modules(plugins)
    saved, original = dict(_common.parsing_settings), _typehints.resolve_class_path_by_name

    def resolve_class_path_by_name(cls: type | tuple[type, ...], name: str) -> str:
        component = plugins.registry.components.get(name)
        bases = cls if isinstance(cls, tuple) else (cls,)
        if component is not None and any(isinstance(b, type) and issubclass(component.cls, b) for b in bases):
            return component.class_path
        return original(cls, name)  # type: ignore[arg-type]  # jsonargparse says tuple[type]; it takes any tuple

    try:
        try:  # a blocked package stays refused even when the allow-list names it
            jsonargparse.set_parsing_settings(
                import_path_denylist=[*blocked, *(["*"] if allowed is not None else [])],
                import_path_allowlist=[p for p in allowed or () if p not in blocked],
            )
        except ValueError as error:
            raise ConfigError(f"{ALLOWED_ENV}: {error}") from None
        _typehints.resolve_class_path_by_name = resolve_class_path_by_name
        yield
    finally:
        _typehints.resolve_class_path_by_name = original
        _common.parsing_settings.update(saved)
