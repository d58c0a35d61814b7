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
import re
import sys
import traceback
import warnings
from collections.abc import Callable, Sequence
from typing import TypeVar

from ..config import ConfigError
from ..errors import TrainingDiverged
from ..plugins.loader import Plugins, get_plugins
from ..plugins.registry import KINDS, Command, PluginError
from ..plugins.resolution import ComponentImportError, resolving

T = TypeVar("T")

__all__ = ["format_cli_error", "main"]

USAGE = "usage: anymae <command> [options]   (anymae <command> --help for a command's options)"


def print_help(table: dict[str, Command], file=None) -> None:
    file = file or sys.stdout
    print(USAGE, file=file)
    print("\nMasked-autoencoder pretraining for any modality.\n\ncommands:", file=file)
    width = max(len(name) for name in table)
    for command in table.values():
        owner = f" ({command.owner})" if command.owner != "anymae" else ""
        print(f"  {command.name:<{width}}  {command.help}{owner}", file=file)


_KEY = re.compile(r'(?:Parser key|Key) "([^"]+)"')
_VALUE = re.compile(r"(?:Got|Given) value: (\S+?)\.?(?:\s|$)")
_EXPECTED = re.compile(r"Expected an? (?:<class '([^']+)'>|(.+?))\.?(?: Got value: .*)?$", re.M)
_LITERAL = re.compile(r"^(?:typing\.)?Literal\[(.*)\]$")
_UNKNOWN_CLASS = re.compile(r"Expected a dot import path string: (\S+)|Import path (\S+) does not correspond")
_NOISE = re.compile(
    r"^\d+ validation errors? for|errors\.pydantic\.dev|^Problem with given class_path|^Expected a path|^Given value"
    r"|^Subtypes:|^Errors$|^Does not validate against"
)


def _a(noun: str) -> str:
    return f"an {noun}" if noun[0] in "aeiou" else f"a {noun}"


def format_cli_error(error: BaseException, plugins: Plugins | None = None, refusals: Sequence[str] = ()) -> str:
    """Condense jsonargparse's nested report into one line: ``field: problem (got value)``.

    ``refusals`` are the messages :func:`anymae.plugins.resolution.resolving` raised; one found in the report is the
    problem (jsonargparse lists it among the other types it tried).
    """
    text = str(error)
    field = ".".join(k for k in _KEY.findall(text) if k not in {"class_path", "init_args"}).replace(".init_args.", ".")
    refusal = next((r for r in refusals if r in text), None)
    if refusal is not None:
        return f"{field}: {refusal}" if field else refusal
    unknown = _UNKNOWN_CLASS.search(text)
    if unknown and field:
        name = unknown.group(1) or unknown.group(2)
        kind = field.rsplit(".", 1)[-1]
        kind = {"data": "datamodule", "callbacks": "callback"}.get(kind, kind)
        registry = plugins.registry if plugins is not None else None
        short = name.rsplit(".", 1)[-1]
        if registry is not None and short in registry and registry.get(short).kind != kind:
            return f"{field}: {name} is registered as {_a(registry.get(short).kind)}, not as {_a(kind)}"
        known = sorted(c.name for c in registry.of_kind(kind)) if registry is not None and kind in KINDS else []
        allowed = f"registered: {', '.join(known)}, or a full class path" if known else "give a full class path"
        allowed += "; a plugin's component needs its plugin installed (`anymae plugins` lists what is)"
        return f"{field}: unknown component {name!r}; {allowed}"
    values = _VALUE.findall(text)
    value = values[0].strip() if values else None
    lines = [line.strip(" :-") for line in _VALUE.sub("", _KEY.sub("", text)).splitlines()]
    lines = [line for line in lines if line and not _NOISE.search(line)]
    pydantic_lines = [line for line in lines if "[type=" in line]
    expected = [a or b for a, b in _EXPECTED.findall(text) if (a or b) != "NoneType"]
    if pydantic_lines:  # a constrained type: pydantic says what is allowed
        message = re.sub(r"\s*\[type=[^\]]*\]", "", pydantic_lines[0])
    elif expected:
        choices = [(_LITERAL.match(e) or [None, None])[1] for e in expected]
        if all(choices):
            message = "allowed: " + ", ".join(choices)
        else:
            message = "expected " + " or ".join(dict.fromkeys(expected))
    else:
        message = lines[-1] if lines else text.strip()
    suffix = f" (got {value})" if value else ""
    return f"{field}: {message}{suffix}" if field else message + suffix


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


def _load(what: Callable[[], T]) -> T:
    """``what()``, with the plugins' own failure warnings held back (the CLI reports them as one line each) and
    any other warning passed on as it came."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        result = what()
    for warning in caught:
        if not str(warning.message).startswith("anymae plugin "):
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    name, rest = (args[0], args[1:]) if args else (None, [])
    try:
        plugins = _load(get_plugins)
        table = _load(lambda: plugins.commands)  # the core's, then the plugins' own: no component imported yet
        if name not in (None, "-h", "--help"):  # a command runs: now each plugin's components (torch, Lightning)
            _load(lambda: plugins.registry)
            table = plugins.commands
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
    refusals: list[str] = []
    try:
        with resolving(plugins) as refusals:
            return table[name].load()(rest)
    except (argparse.ArgumentError, ConfigError, ComponentImportError, FileNotFoundError) as error:
        if os.environ.get("ANYMAE_TRACEBACK"):
            traceback.print_exc()
        if isinstance(error, argparse.ArgumentError):
            return _error(format_cli_error(error, plugins, refusals))
        return _error(" ".join(str(error).split()))
    except TrainingDiverged as error:  # not a configuration error: exit 1, and say where to resume from
        print(f"anymae: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
