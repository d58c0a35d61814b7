"""The ``anymae`` command: a table of subcommands (``anymae --help`` lists them), each run with plugins loaded.

``anymae fit --config examples/image/mae_tiny_digits.yaml`` parses the YAML and any ``--key value`` override,
checks every constrained field and the model's build (contracts and dry run), and only then trains. Every wrong
configuration ends the command with exit status 2 and one line, ``anymae: error: <where>: <what>``, instead of a
traceback (``ANYMAE_TRACEBACK=1`` shows the traceback too).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
import warnings
from collections.abc import Sequence
from typing import TextIO

from ..config import ConfigError
from ..errors import RunStopped
from ..plugins.loader import get_plugins
from ..plugins.registry import Command, PluginError
from ..plugins.resolution import resolving
from .errors import format_cli_error

__all__ = ["format_cli_error", "main"]

USAGE = "usage: anymae <command> [options]   (anymae <command> --help for a command's options)"


def print_help(table: dict[str, Command], file: TextIO | None = None) -> None:
    file = file or sys.stdout
    print(USAGE, file=file)
    print("\nMasked-autoencoder pretraining for any modality.\n\ncommands:", file=file)
    width = max(len(name) for name in table)
    for command in table.values():
        owner = f" ({command.owner})" if command.owner != "anymae" else ""
        print(f"  {command.name:<{width}}  {command.help}{owner}", file=file)


def _quiet() -> None:
    """Keep the console to the progress bar, warnings and our own lines (the CLI only; importing anymae changes no
    logging)."""
    for name in ("lightning.pytorch", "lightning.fabric", "pytorch_lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    for message in (
        r".*does not have many workers.*",  # in-memory data sets need none
        r".*`tensorboardX` has been removed as a dependency.*",  # CSVLogger is a fine default
        r".*isinstance\(treespec, LeafSpec\)` is deprecated.*",  # inside Lightning, not ours to fix
        r"LightningCLI's args parameter is intended.*",  # the protocol commands pass their own arguments
        r".*module\(s\) in eval mode at the start of training.*",  # a linear probe's frozen encoder, on purpose
    ):
        warnings.filterwarnings("ignore", message=message)


def _error(message: str) -> int:
    print(f"anymae: error: {message}", file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    name, rest = (args[0], args[1:]) if args else (None, [])
    try:
        with warnings.catch_warnings():  # a failed plugin is reported below, in one line
            warnings.filterwarnings("ignore", "anymae plugin ", RuntimeWarning)
            plugins = get_plugins()
            if name not in (None, "-h", "--help"):  # a command runs: now each plugin's components (torch, Lightning)
                plugins.registry  # noqa: B018
            table = plugins.commands  # the core's, then the plugins' own: for --help, no component imported
    except PluginError as error:  # strict mode (ANYMAE_STRICT_PLUGINS=1)
        return _error(str(error))
    if name != "plugins":  # which lists them itself
        for info in plugins.failed:  # a broken plugin: one line each; the others work
            print(f"anymae: warning: plugin {info.name} is {info.status}; its components are unusable", file=sys.stderr)
    if name is None or name in ("-h", "--help"):
        print_help(table, sys.stdout if args else sys.stderr)
        return 0 if args else 2
    if name not in table:
        return _error(f"unknown command {name!r}; commands: {', '.join(table)}")
    _quiet()
    try:
        with resolving(plugins):
            return table[name].load()(rest)
    except (argparse.ArgumentError, ConfigError, FileNotFoundError) as error:
        if os.environ.get("ANYMAE_TRACEBACK"):
            traceback.print_exc()
        if isinstance(error, argparse.ArgumentError):
            return _error(format_cli_error(error, plugins, rest))
        return _error(" ".join(str(error).split()))
    except RunStopped as error:  # not a configuration error: exit 1, and say where to resume from
        if os.environ.get("ANYMAE_TRACEBACK"):
            traceback.print_exc()
        if os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0")) == "0":  # every rank stops; one says why
            print(f"anymae: error: {' '.join(str(error).split())}", file=sys.stderr)
        return 1
    finally:
        _leave_process_group()


def _leave_process_group() -> None:
    """End a DDP run's process group before the interpreter exits: Lightning leaves it open, and a gloo group torn
    down at exit can abort the process ("terminate called without an active exception") after the work is done."""
    distributed = sys.modules.get("torch.distributed")  # never imported for a command that did not use it
    if distributed is not None and distributed.is_available() and distributed.is_initialized():
        distributed.destroy_process_group()  # no barrier: a rank that failed must not keep the others waiting
