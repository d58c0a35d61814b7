"""Hook specifications: the functions a plugin may implement.

A plugin is a module (named by an entry point in the ``anymae`` group) that defines functions decorated with
:data:`anymae.hookimpl`. Each hook is documented in docs/plugins.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from .registry import Registry

__all__ = ["anymae_register", "hookimpl", "hookspec"]

hookspec = pluggy.HookspecMarker("anymae")
hookimpl = pluggy.HookimplMarker("anymae")


@hookspec
def anymae_register(registry: Registry) -> None:
    """Register component classes (not instances) and commands with ``registry``.

    Called once per plugin when plugins are loaded (by the ``anymae`` CLI, or by :func:`anymae.load_plugins`).
    Each class is registered under its class name, which is the short name used in YAML (``class_path:
    ImagePatchTokenizer``), as the kind its base class says; a name another plugin already registered is an error
    that names both plugins, and the first registration keeps the name. ``registry.add_command(name, run, help)``
    adds ``anymae <name>``.

    Example::

        @anymae.hookimpl
        def anymae_register(registry):
            registry.add(ImagePatchTokenizer, DigitsDataModule)
    """
