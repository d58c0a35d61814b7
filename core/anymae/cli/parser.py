"""The argument parser every ``anymae`` subcommand outside ``fit`` starts from."""

import argparse
from typing import Any

__all__ = ["command_parser"]


def command_parser(name: str, description: str | None, **kwargs: Any) -> argparse.ArgumentParser:
    """The parser of ``anymae <name>``, described by the first paragraph of ``description`` (a command module's
    docstring, say). Abbreviated options are refused, so an option added later cannot change what an old command
    line means."""
    summary = (description or "").split("\n\n")[0].replace("``", "")
    return argparse.ArgumentParser(allow_abbrev=False, prog=f"anymae {name}", description=summary, **kwargs)
