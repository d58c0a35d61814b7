"""The ``anymae`` command: LightningCLI over :class:`~anymae.MaskedAutoencoder`, plus ``anymae plugins``.

``anymae fit --config examples/image/mae_tiny_digits.yaml`` parses the YAML and any ``--key value`` override,
checks every constrained field (pydantic types on the components' constructors) and the build-time contracts, and
only then trains. A configuration error ends the command with exit status 2 and one line naming the field and what
is allowed, instead of a traceback.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
import warnings
from collections.abc import Sequence

import lightning.pytorch as pl
from lightning.pytorch.cli import LightningCLI

from .config import ConfigError
from .module import MaskedAutoencoder
from .plugins import CORE_NAME, KINDS, PLUGIN_API_VERSION, PluginError, Plugins, get_plugins

__all__ = ["AnymaeCLI", "main"]

SUBCOMMANDS = ("fit", "validate", "test", "predict")


class AnymaeCLI(LightningCLI):
    """LightningCLI for masked autoencoders; data modules and components are chosen by name or class path."""

    def __init__(self, args: Sequence[str] | None = None, run: bool = True) -> None:
        # Each subcommand has its own parser; all of them must raise instead of exiting so main() can report.
        parser_kwargs = {"exit_on_error": False, **{name: {"exit_on_error": False} for name in SUBCOMMANDS}}
        super().__init__(
            MaskedAutoencoder,
            pl.LightningDataModule,
            subclass_mode_data=True,
            args=args,
            run=run,
            parser_kwargs=parser_kwargs if run else {"exit_on_error": False},
            save_config_kwargs={"overwrite": True},
        )

    def after_fit(self) -> None:
        callback = self.trainer.checkpoint_callback
        path = getattr(callback, "last_model_path", "") or getattr(callback, "best_model_path", "")
        if path and self.trainer.is_global_zero:
            print(f"checkpoint: {path}")


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


def format_cli_error(error: BaseException, plugins: Plugins | None = None) -> str:
    """Condense jsonargparse's nested report into one line: ``field: problem (got value)``."""
    text = str(error)
    field = ".".join(k for k in _KEY.findall(text) if k not in {"class_path", "init_args"}).replace(".init_args.", ".")
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


def plugins_command(args: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="anymae plugins", description="List installed plugins and components.")
    parser.add_argument("--verbose", "-v", action="store_true", help="also show each component's config fields")
    options = parser.parse_args(args)
    from . import __version__

    plugins = get_plugins()
    real = [p for p in plugins.plugins if p.name != CORE_NAME]
    if not real:
        print("No plugins installed. Install one, e.g. `pip install anymae-image`.")
    for info in real:
        version = f" {info.version}" if info.version else ""
        if info.disabled:
            print(f"{info.name}{version}: disabled by ANYMAE_DISABLE_PLUGINS")
        elif info.error:
            print(f"{info.name}{version}: BROKEN ({info.error})")
        else:
            print(f"{info.name}{version} (plugin API {info.api}): {info.module}")
            _print_components(plugins, info.name, options.verbose)
    print(f"{CORE_NAME} {__version__} (built in, provides plugin API {PLUGIN_API_VERSION})")
    _print_components(plugins, CORE_NAME, options.verbose)
    return 1 if plugins.failed else 0


def _print_components(plugins: Plugins, owner: str, verbose: bool) -> None:
    import inspect

    for kind in KINDS:
        components = [c for c in plugins.registry.owned_by(owner) if c.kind == kind]
        if not components:
            continue
        print(f"  {kind}: {', '.join(c.name for c in components)}")
        if verbose:
            for component in components:
                params = list(inspect.signature(component.cls.__init__).parameters.values())[1:]
                fields = ", ".join(
                    p.name + ("" if p.default is inspect.Parameter.empty else f"={p.default!r}")
                    for p in params
                    if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
                )
                print(f"    {component.name}({fields})")


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        plugins = get_plugins()
    except PluginError as error:  # strict mode (ANYMAE_STRICT_PLUGINS=1)
        print(f"anymae: error: {error}", file=sys.stderr)
        return 2
    if args[:1] == ["plugins"]:
        return plugins_command(args[1:])
    if args[:1] == ["masks"]:
        from .masks import masks_command

        return masks_command(args[1:])
    if args[:1] == ["table"]:
        from .evaluation.table import table_command

        _quiet()
        return table_command(args[1:])
    if args[:1] == ["export"]:
        from .export import export_command

        return export_command(args[1:])
    if args[:1] and args[0] in ("probe", "knn", "finetune"):
        from .evaluation.cli import evaluate_command

        _quiet()
        try:
            return evaluate_command(args[0], args[1:])
        except argparse.ArgumentError as error:
            print(f"anymae: error: {format_cli_error(error, plugins)}", file=sys.stderr)
            return 2
        except (ConfigError, FileNotFoundError) as error:
            print(f"anymae: error: {error}", file=sys.stderr)
            return 2
    _quiet()
    try:
        AnymaeCLI(args=None if argv is None else args)  # None: LightningCLI reads sys.argv itself
    except argparse.ArgumentError as error:
        print(f"anymae: error: {format_cli_error(error, plugins)}", file=sys.stderr)
        return 2
    except ConfigError as error:
        print(f"anymae: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
