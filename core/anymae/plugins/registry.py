"""The component registry: what plugins (and the core) register, by short name.

A plugin's ``anymae_register(registry)`` hook gets a :class:`Registry` of its own and adds component classes (each
one's kind read from its base class) and commands; the loader merges them. A short name registered twice is an error
naming both owners, and the first registration keeps the name.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

__all__ = ["BASES", "CORE_NAME", "KINDS", "Command", "Component", "DuplicateComponentError", "PluginError", "Registry"]

CORE_NAME = "anymae"
#: Each kind of component and its base class, in the order they are checked (``Command.load``'s import-path syntax:
#: the classes are imported on first use, so the command table, ``anymae --help``, needs no torch).
BASES = {
    "tokenizer": "anymae:Tokenizer",
    "masker": "anymae:Masker",
    "encoder": "anymae:Encoder",
    "decoder": "anymae:Decoder",
    "target": "anymae:Target",
    "position_embedding": "anymae:PositionEmbedding",
    "datamodule": "lightning.pytorch:LightningDataModule",
    "callback": "lightning.pytorch:Callback",
    "exporter": "anymae:Exporter",
    "reader": "anymae:WeightsReader",
}
KINDS = tuple(BASES)


@functools.cache
def kind_bases() -> dict[str, type]:
    """Each kind's base class, imported on the first call and kept (every ``registry.add`` asks)."""
    return {kind: _import(path) for kind, path in BASES.items()}


def _import(path: str) -> Any:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def kind_of(cls: object) -> str | None:
    """The kind of component ``cls`` is (by its base class), or ``None``."""
    return next((k for k, base in kind_bases().items() if isinstance(cls, type) and issubclass(cls, base)), None)


class PluginError(RuntimeError):
    """A plugin could not be loaded or registered (raised in strict mode)."""


class DuplicateComponentError(PluginError):
    """Two owners registered a component or command under the same name."""


@dataclass(frozen=True)
class Component:
    """A registered component class: its short name, kind, class and the plugin that registered it."""

    name: str
    kind: str
    cls: type[Any]
    owner: str

    @property
    def class_path(self) -> str:
        return f"{self.cls.__module__}.{self.cls.__qualname__}"


@dataclass(frozen=True)
class Command:
    """``anymae <name>``: ``run(argv) -> exit status``, or its import path ``"package.module:function"`` (imported
    only when the command runs, so listing commands stays light); ``help`` is its line in ``anymae --help``."""

    name: str
    help: str
    run: Callable[[list[str]], int] | str
    owner: str = CORE_NAME

    def load(self) -> Callable[[list[str]], int]:
        return _import(self.run) if isinstance(self.run, str) else self.run


class Registry:
    """Component classes by short name (the class name) and commands by name, as ``owner`` registered them."""

    def __init__(self, owner: str = CORE_NAME) -> None:
        self.owner = owner
        self.components: dict[str, Component] = {}
        self.commands: dict[str, Command] = {}

    def add(self, *classes: type) -> None:
        """Register each class under its class name, as the kind its base class says (a subclass of
        :class:`~anymae.Tokenizer` is a tokenizer, of ``LightningDataModule`` a data module, ...)."""
        for cls in classes:
            kind = kind_of(cls)
            if kind is None:
                bases = ", ".join(base.__name__ for base in kind_bases().values())
                raise TypeError(f"{self.owner}: {cls!r} is not a component class; a component derives from {bases}")
            self._merge({cls.__name__: Component(cls.__name__, kind, cls, self.owner)}, {})

    def add_command(self, name: str, run: Callable[[list[str]], int] | str, help: str) -> None:
        """Register ``anymae <name>``, which calls ``run`` (or imports it from ``"module:function"``) with the
        arguments after the name; ``help`` is its line in ``anymae --help``."""
        if not name.isidentifier() or name.startswith("_"):
            raise ValueError(f"{self.owner}: command name {name!r} must be a plain identifier")
        self._merge({}, {name: Command(name, help, run, self.owner)})

    def merge(self, other: Registry) -> None:
        """Add every component and command of ``other``; nothing is added if one of its names is taken."""
        self._merge(other.components, other.commands)

    def _merge(self, components: dict[str, Component], commands: dict[str, Command]) -> None:
        for new in components.values():
            known = self.components.get(new.name)
            if known is not None and known.cls is not new.cls:
                raise DuplicateComponentError(
                    f"component name {new.name!r} is registered twice: by {known.owner} ({known.class_path}) "
                    f"and by {new.owner} ({new.class_path}); rename one class"
                )
        for name in commands.keys() & self.commands.keys():
            raise DuplicateComponentError(
                f"command {name!r} is registered twice: by {self.commands[name].owner} and by {commands[name].owner}; "
                "rename one"
            )
        self.components.update(components)
        self.commands.update(commands)

    def get(self, name: str) -> Component:
        return self.components[name]

    def of_kind(self, kind: str) -> list[Component]:
        return [c for c in self if c.kind == kind]

    def owned_by(self, owner: str) -> list[Component]:
        return [c for c in self if c.owner == owner]

    def __contains__(self, name: object) -> bool:
        return name in self.components

    def __iter__(self) -> Iterator[Component]:
        return iter(self.components.values())

    def __len__(self) -> int:
        return len(self.components)
