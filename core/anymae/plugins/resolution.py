"""How the names in a config become classes, for the ``anymae`` commands.

jsonargparse (under LightningCLI) imports a full class path and looks a short name up among the imported subclasses
of the expected base. Within :func:`resolving`, through its public ``set_parsing_settings``, a class path is refused
before anything is imported when it points into a plugin that failed to load or is disabled, or, with
``ANYMAE_ALLOWED_MODULES=pkg1,pkg2`` set (for configs from others: naming a module imports it), when it is outside
those packages, anymae, its healthy plugins, torch and Lightning. :mod:`anymae.cli.errors` words jsonargparse's
refusals for the user (the plugin and why, the variable, the distribution to install) with :func:`refusal`.
:func:`checked_config` applies the same policy where Python code builds components from a stored config
(``anymae.load_encoder``, ``MaskedAutoencoder.load_from_checkpoint``), so a checkpoint's config is held to the rules
the commands follow.

jsonargparse has no public hook for short names: a plugin's class that the registry rejected as a duplicate would make
the core's short name ambiguous. The one shim, swapped in only within the block, makes a registered short name mean
the registered class; it and the settings' restoration rely on jsonargparse 4.53 internals (pinned in pyproject.toml,
checked by tests/core/test_plugins.py::test_the_jsonargparse_shim_holds).
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator

from ..config import ConfigError
from .loader import Plugins, get_plugins

__all__ = ["ALLOWED_ENV", "allowed_modules", "checked_config", "refusal", "resolving"]

ALLOWED_ENV = "ANYMAE_ALLOWED_MODULES"
ALWAYS_ALLOWED = ("anymae", "torch", "lightning", "pytorch_lightning")
_DENIED = re.compile(r"Importing '([\w.]+)' is not allowed, denied by the '([\w.*]+)' entry")
_MISSING = re.compile(r"class_path '([\w.]+)':\s+No module named '([\w.]+)'")


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


@contextlib.contextmanager
def checked_config(source: str) -> Iterator[None]:
    """Within the block, components built from a stored config (a checkpoint's, an export folder's) resolve as in a
    command (:func:`resolving` with the installed plugins): with ``ANYMAE_ALLOWED_MODULES`` set a class path outside
    the allowed packages is refused before its module is imported, as is one into a failed plugin. A refusal is a
    :class:`~anymae.ConfigError` naming ``source`` and the class path."""
    plugins = get_plugins()
    try:
        with resolving(plugins):
            yield
    except ConfigError:
        raise
    except Exception as error:
        why = refusal(str(error), plugins)
        if why is None:
            raise
        raise ConfigError(f"{source}: {why}") from None


def refusal(report: str, plugins: Plugins) -> str | None:
    """Our message for a class path jsonargparse refused (``report`` is its error) or could not import, if any."""
    if denied := _DENIED.search(report):
        path, entry = denied.groups()
        blocked = next((info for info in plugins.plugins if not info.ok and entry in info.packages), None)
        allowed = ", ".join(allowed_modules(plugins) or ())
        if entry == "*":
            return f"{path} is outside {ALLOWED_ENV} ({allowed}); add its package to run it"
        if blocked is not None:
            return f"{path} belongs to the plugin {blocked.name}, which is {blocked.status}"
        return f"{path} is not allowed in a config (jsonargparse denies {entry!r})"
    if missing := _MISSING.search(report):
        path, module = missing.groups()
        dist = module.split(".")[0].replace("_", "-")
        hint = f"it comes from the plugin {dist}: pip install {dist}" if dist.startswith("anymae-") else ""
        return f"{path}: no module named {module!r}; {hint or 'install the package that provides it'}"
    return None
