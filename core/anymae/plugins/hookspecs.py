"""Hook specifications: the functions a plugin may implement.

A plugin is a module (named by an entry point in the ``anymae`` group) that defines functions decorated with
:data:`anymae.hookimpl`. Each hook is documented in docs/plugins.md.
"""

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
    """Register component classes (not instances) with ``registry``.

    Called once per plugin, the first time the components are asked for (by the ``anymae`` CLI before a command
    runs, or by :attr:`anymae.Plugins.registry`); import the classes inside the hook, so that loading the plugin's
    entry module (which ``anymae --help`` does) stays light.
    Each class is registered under its class name, which is the short name used in YAML (``class_path:
    ImagePatchTokenizer``), as the kind its base class says; a name another plugin already registered is an error
    that names both plugins, and the first registration keeps the name. (A command added here with
    ``registry.add_command`` still works, but then ``anymae --help`` has to import the plugin's components to list it:
    add commands in :func:`anymae_commands`.)

    Example::

        @anymae.hookimpl
        def anymae_register(registry):
            from .data import DigitsDataModule
            from .tokenizers import ImagePatchTokenizer

            registry.add(ImagePatchTokenizer, DigitsDataModule)
    """


@hookspec
def anymae_commands(registry: Registry) -> None:
    """Register commands with ``registry.add_command(name, run, help)``: ``anymae <name>`` calls ``run(argv)``, the
    function or its import path ``"package.module:function"`` (imported only when the command runs).

    Called without :func:`anymae_register`, to list the commands (``anymae --help``) or run one, so it must not
    import the plugin's components; a component registered here is an error.

    Example::

        @anymae.hookimpl
        def anymae_commands(registry):
            registry.add_command("fbank_stats", "anymae_audio.commands:run", help="mean and std of fbank features")
    """
