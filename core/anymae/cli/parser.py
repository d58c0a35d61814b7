"""The argument parser every ``anymae`` subcommand outside ``fit`` starts from, and what LightningCLI's arguments go
through first."""

import argparse
import json
from collections.abc import Sequence
from typing import Any

__all__ = ["command_parser", "nested_nulls"]

_NULLS = frozenset({"null", "Null", "NULL", "~"})  # YAML's spellings of null


def command_parser(name: str, description: str | None, **kwargs: Any) -> argparse.ArgumentParser:
    """The parser of ``anymae <name>``, described by the first paragraph of ``description`` (a command module's
    docstring, say). Abbreviated options are refused, so an option added later cannot change what an old command
    line means."""
    summary = (description or "").split("\n\n")[0].replace("``", "")
    return argparse.ArgumentParser(allow_abbrev=False, prog=f"anymae {name}", description=summary, **kwargs)


def nested_nulls(args: Sequence[str]) -> list[str]:
    """``args`` with each null given to an option two or more levels deep (``--data.data.val_root null``: the data
    module inside ``FewLabels``) passed as a config string instead (``--config {"data": {"data": {"val_root":
    null}}}``), in its place. jsonargparse 4.53 hands such a null to the inner component as the text ``"None"`` (a
    folder named None, or a refused number); the same null in a config string reaches it intact.
    ``tests/core/test_cli_nulls.py`` checks both, so an upgrade that fixes it shows."""
    out: list[str] = []
    i = 0
    while i < len(args):
        arg, key, value, width = args[i], None, None, 1
        if arg.startswith("--") and "=" in arg:
            key, value = arg[2:].split("=", 1)
        elif arg.startswith("--") and i + 1 < len(args):
            key, value, width = arg[2:], args[i + 1], 2
        if key is not None and value in _NULLS and key.count(".") >= 2:
            nested: Any = None
            for part in reversed(key.split(".")):
                nested = {part: nested}
            out += ["--config", json.dumps(nested)]
            i += width
        else:
            out.append(arg)
            i += 1
    return out
