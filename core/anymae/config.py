"""Configuration checking shared by every component.

Constructor arguments carry pydantic-constrained annotations (``Annotated[float, Field(gt=0, lt=1)]``,
``PositiveInt``, ``Literal[...]``). LightningCLI (jsonargparse) checks them while it parses a YAML file or the command
line, so a wrong value fails before anything is built. :func:`validated` applies the same annotations when a component
is constructed from Python, and turns pydantic's report into a :class:`ConfigError` whose message names the class, the
field and what is allowed.
"""

from __future__ import annotations

import functools
import importlib.util
import inspect
import os
import sys
from collections.abc import Callable, Sequence
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, validate_call
from pydantic_core import PydanticCustomError

__all__ = [
    "ConfigError",
    "PathStr",
    "ScaleRange",
    "component_config",
    "instantiate_component",
    "upgrade_class_paths",
    "validated",
]

INIT_ARGS_ATTR = "_anymae_init_args"
_FORWARDED_ATTR = "_anymae_forwarded_args"

F = TypeVar("F", bound=Callable[..., Any])


class ConfigError(ValueError):
    """A configuration that cannot work, found before training; the message names the field and what is allowed."""


def _fspath(value: Any) -> Any:
    return os.fspath(value) if isinstance(value, os.PathLike) else value


#: a file or folder path, given as text or as a ``pathlib.Path`` (kept as text, which configs record)
PathStr = Annotated[str, BeforeValidator(_fspath)]


def _ordered(bounds: tuple[float, float]) -> tuple[float, float]:
    if bounds[0] > bounds[1]:
        raise PydanticCustomError("bounds_order", "the lower bound (first) is above the upper bound")
    return bounds


#: ``(lower, upper)`` shares of an area, each in (0, 1], lower first: a random resized crop's ``scale`` (checked at
#: parse time like any constrained field)
ScaleRange = Annotated[
    tuple[Annotated[float, Field(gt=0, le=1)], Annotated[float, Field(gt=0, le=1)]], AfterValidator(_ordered)
]


def format_validation_error(owner: str, error: ValidationError, names: Sequence[str] = ()) -> str:
    """One line per problem: ``Owner.field: what is wrong (got value)``; ``names`` are the parameters in order, which
    name an argument given by position (pydantic locates it by its index)."""
    lines = []
    for item in error.errors(include_url=False):
        first, *rest = item["loc"] or ("?",)
        if isinstance(first, int) and first < len(names):
            first = names[first]
        where = ".".join(str(part) for part in (first, *rest))
        lines.append(f"{owner}.{where}: {item['msg']} (got {item.get('input')!r})")
    return "; ".join(lines)


def validated(init: F) -> F:
    """Check ``__init__``'s arguments against their annotations with pydantic.

    The wrapped function keeps its signature (``functools.wraps``), so LightningCLI still reads the parameters, their
    types and their docstrings from it. The arguments are recorded on the instance, so :func:`component_config` can
    describe a component built in Python the way a YAML file would.

    Do not use ``from __future__ import annotations`` in a module whose constructors carry constrained types:
    jsonargparse then drops the ``Annotated`` metadata and checks the field only at instantiation.
    """
    checked = validate_call(config=ConfigDict(arbitrary_types_allowed=True))(init)
    signature = inspect.signature(init)
    names = list(signature.parameters)
    forwards = next((p.name for p in signature.parameters.values() if p.kind is p.VAR_KEYWORD), None)

    @functools.wraps(init)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            result = checked(self, *args, **kwargs)
        except ValidationError as error:
            raise ConfigError(format_validation_error(type(self).__name__, error, names)) from None
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        arguments = dict(list(bound.arguments.items())[1:])
        # A parent's constructor runs inside its subclass's and leaves its record behind (tagged with itself); a
        # constructor that forwards **kwargs merges the record of its direct parent only, so a chain of forwarding
        # constructors collects every argument. Arguments forwarded to a parent that recorded nothing (no
        # @validated) cannot be described: no record then. Only the outermost constructor stores the record.
        left, forwarded = vars(self).pop(_FORWARDED_ATTR, (None, None))
        record: dict[str, Any] | None = arguments
        if forwards is not None:
            passed_on = arguments.pop(forwards)
            if left is not None and left is _parent_init(type(self), wrapper):
                record = (
                    None
                    if forwarded is None
                    else {**arguments, **{k: v for k, v in forwarded.items() if k not in arguments}}
                )
            elif passed_on:
                record = None
        if type(self).__init__ is not wrapper:
            vars(self)[_FORWARDED_ATTR] = (wrapper, record)
            return result
        if record is not None:
            setattr(self, INIT_ARGS_ATTR, record)
        return result

    return wrapper  # type: ignore[return-value]  # functools.wraps' type is not F; the signature is init's


def _parent_init(cls: type, init: Callable[..., Any]) -> Any:
    """The constructor that ``super().__init__`` calls from ``init``, one of ``cls``'s classes' own constructors."""
    mro = cls.__mro__
    owner = next((i for i, base in enumerate(mro) if vars(base).get("__init__") is init), len(mro))
    return next((vars(base)["__init__"] for base in mro[owner + 1 :] if "__init__" in vars(base)), None)


def init_parameters(cls: type) -> list[inspect.Parameter]:
    """The parameters ``cls(...)`` takes, by name: its constructor's, and where it forwards ``**kwargs`` to its
    parent's constructor (as LightningCLI reads them), the parent's that it does not name itself."""
    own = list(inspect.signature(cls).parameters.values())
    named = [p for p in own if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    if not any(p.kind is p.VAR_KEYWORD for p in own):
        return named
    parent = next((base for base in cls.__mro__[1:] if "__init__" in vars(base)), object)
    if parent is object:
        return named
    names = {p.name for p in named}
    return named + [p for p in init_parameters(parent) if p.name not in names]


def _class_path(cls: type) -> str:
    """The shortest import path of ``cls``: its package's public name (``anymae.ViTEncoder``, as jsonargparse records
    it) when the package exports it, so a recorded config survives moves inside the package; else its module's."""
    package = sys.modules.get(cls.__module__.split(".")[0])
    if package is not None and getattr(package, cls.__name__, None) is cls:
        return f"{package.__name__}.{cls.__name__}"
    return f"{cls.__module__}.{cls.__qualname__}"


def upgrade_class_paths(config: Any) -> Any:
    """``config`` with the class paths of anymae 0.2's module layout (``anymae.encoders.ViTEncoder``, which configs
    built in Python recorded) replaced by the public names (``anymae.ViTEncoder``), so old checkpoints still load."""
    if isinstance(config, dict):
        upgraded = {key: upgrade_class_paths(value) for key, value in config.items()}
        path = upgraded.get("class_path")
        if isinstance(path, str) and path.startswith("anymae.") and path.count(".") > 1:
            import anymae

            name = path.rsplit(".", 1)[1]
            if name in anymae.__all__ and importlib.util.find_spec(path.rsplit(".", 1)[0]) is None:
                upgraded["class_path"] = f"anymae.{name}"
        return upgraded
    if isinstance(config, list):
        return [upgrade_class_paths(item) for item in config]
    return config


def component_config(value: Any) -> Any:
    """Describe ``value`` as LightningCLI's YAML would: ``{"class_path": ..., "init_args": {...}}`` for components
    built with :func:`validated` constructors (recursively), plain data for pydantic models, classes and partials of
    classes (optimizer factories); any other object is returned as it is."""
    init_args = getattr(value, INIT_ARGS_ATTR, None)
    if init_args is not None:
        args = {name: component_config(arg) for name, arg in init_args.items()}
        return {"class_path": _class_path(type(value)), "init_args": args}
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, type):
        return {"class_path": _class_path(value)}
    if isinstance(value, functools.partial) and isinstance(value.func, type) and not value.args:
        return {"class_path": _class_path(value.func), "init_args": component_config(value.keywords)}
    if isinstance(value, (list, tuple)):
        return [component_config(item) for item in value]
    if isinstance(value, dict):
        return {key: component_config(item) for key, item in value.items()}
    return value


def instantiate_component(config: Any, base: type) -> Any:
    """Build a component from ``{"class_path": ..., "init_args": {...}}`` (or a registered short name as
    ``class_path``) the way LightningCLI does, checking it against ``base``."""
    from jsonargparse import ArgumentParser

    parser = ArgumentParser(exit_on_error=False)
    parser.add_subclass_arguments(base, "component")
    parsed = parser.parse_object({"component": config})
    instantiate = getattr(parser, "instantiate", None) or parser.instantiate_classes
    return instantiate(parsed).component
