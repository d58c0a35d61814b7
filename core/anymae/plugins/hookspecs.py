"""The hooks a plugin may implement: functions decorated with :data:`anymae.hookimpl` in the module its ``anymae``
entry point names. docs/plugins.md documents each (tests/core/test_docs.py keeps it in step)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from .registry import Registry

__all__ = ["anymae_commands", "anymae_register", "hookimpl", "hookspec"]

hookspec = pluggy.HookspecMarker("anymae")
hookimpl = pluggy.HookimplMarker("anymae")


@hookspec
def anymae_register(registry: Registry) -> None:
    """Register component classes with ``registry.add(*classes)``, each under its class name (its short name in
    YAML) as the kind its base class says.

    Called once per plugin, the first time components are needed (not for ``anymae --help``): import the classes
    inside the hook, so that loading the entry module stays light. A name another plugin registered first is an error
    naming both, and the first keeps it.
    """


@hookspec
def anymae_commands(registry: Registry) -> None:
    """Register commands with ``registry.add_command(name, run, help)``: ``anymae <name>`` calls ``run(argv)``, the
    function or its import path ``"package.module:function"`` (imported only when the command runs).

    Called on its own to list the commands (``anymae --help``), so it must not import the plugin's components; a
    component registered here is an error.
    """
