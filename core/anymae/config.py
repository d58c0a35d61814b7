"""Configuration checking shared by every component.

Constructor arguments carry pydantic-constrained annotations (``Annotated[float, Field(gt=0, lt=1)]``,
``PositiveInt``, ``Literal[...]``). LightningCLI (jsonargparse) checks them while it parses a YAML file or the command
line, so a wrong value fails before anything is built. :func:`validated` applies the same annotations when a component
is constructed from Python, and turns pydantic's report into a :class:`ConfigError` whose message names the class, the
field and what is allowed.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import ConfigDict, ValidationError, validate_call

__all__ = ["ConfigError", "validated"]

F = TypeVar("F", bound=Callable[..., Any])


class ConfigError(ValueError):
    """A configuration that cannot work, found before training; the message names the field and what is allowed."""


def format_validation_error(owner: str, error: ValidationError) -> str:
    """One line per problem: ``Owner.field: what is wrong (got value)``."""
    lines = []
    for item in error.errors(include_url=False):
        where = ".".join(str(part) for part in item["loc"])
        lines.append(f"{owner}.{where}: {item['msg']} (got {item.get('input')!r})")
    return "; ".join(lines)


def validated(init: F) -> F:
    """Check ``__init__``'s arguments against their annotations with pydantic.

    The wrapped function keeps its signature (``functools.wraps``), so LightningCLI still reads the parameters, their
    types and their docstrings from it.
    """
    checked = validate_call(config=ConfigDict(arbitrary_types_allowed=True))(init)

    @functools.wraps(init)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return checked(self, *args, **kwargs)
        except ValidationError as error:
            raise ConfigError(format_validation_error(type(self).__name__, error)) from None

    return wrapper  # type: ignore[return-value]
