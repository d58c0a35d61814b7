"""``anymae plugins``: the installed plugins, their components and commands, and the core's."""

from __future__ import annotations

import importlib.metadata
import inspect
from collections.abc import Sequence

from ..config import init_parameters
from ..plugins.loader import PLUGIN_API_VERSION, Plugins, get_plugins
from ..plugins.registry import CORE_NAME, KINDS
from .parser import command_parser

__all__ = ["run"]


def run(argv: Sequence[str]) -> int:
    parser = command_parser("plugins", "List installed plugins and components.")
    parser.add_argument("--verbose", "-v", action="store_true", help="also show each component's config fields")
    options = parser.parse_args(argv)
    plugins = get_plugins()
    plugins.registry  # noqa: B018 (every plugin registers its components now, so a failure shows below)
    real = [p for p in plugins.plugins if p.name != CORE_NAME]
    if not real:
        print("No plugins installed. Install one, e.g. `pip install anymae-image`.")
    for info in real:
        version = f" {info.version}" if info.version else ""
        if info.ok:
            print(f"{info.name}{version} (plugin API {info.api}): {info.module}")
            _print_components(plugins, info.name, options.verbose)
        else:
            print(f"{info.name}{version}: {info.status}")
    try:
        version = importlib.metadata.version(CORE_NAME)
    except importlib.metadata.PackageNotFoundError:  # run from a source tree
        version = "(not installed)"
    print(f"{CORE_NAME} {version} (built in, provides plugin API {PLUGIN_API_VERSION})")
    _print_components(plugins, CORE_NAME, options.verbose)
    return 1 if plugins.failed else 0


def _print_components(plugins: Plugins, owner: str, verbose: bool) -> None:
    for kind in KINDS:
        components = [c for c in plugins.registry.owned_by(owner) if c.kind == kind]
        if not components:
            continue
        print(f"  {kind}: {', '.join(c.name for c in components)}")
        if verbose:
            for component in components:
                fields = ", ".join(
                    p.name + ("" if p.default is inspect.Parameter.empty else f"={p.default!r}")
                    for p in init_parameters(component.cls)
                )
                print(f"    {component.name}({fields})")
    commands = [c.name for c in plugins.registry.commands.values() if c.owner == owner]
    if commands:
        print(f"  command: {', '.join(commands)}")
