"""The component registry: what plugins (and the core) register, by short name.

A plugin's ``anymae_register(registry)`` hook gets a :class:`Registry` of its own and adds component classes
(``registry.add(ImagePatchTokenizer, DigitsDataModule)``: each class's kind is read from its base class) and
commands (``registry.add_command(...)``). The loader (:mod:`anymae.plugins`) merges them; a short name registered
twice is an error naming both owners, and the first registration keeps the name.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

__all__ = [
    "CORE_NAME",
    "KINDS",
    "Command",
    "Component",
    "DuplicateComponentError",
    "PluginError",
    "Registry",
    "kind_bases",
]

CORE_NAME = "anymae"

#: The kinds of component that can be registered, in the order their base classes are checked.
KINDS: tuple[str, ...] = (
    "tokenizer",
    "masker",
    "encoder",
    "decoder",
    "target",
    "position_embedding",
    "datamodule",
    "callback",
    "exporter",
)


@functools.cache
def kind_bases() -> dict[str, type]:
    """Each kind's base class. Imported on first use, not with this module: the command table (``anymae --help``)
    is read without torch or Lightning."""
    import lightning.pytorch as pl

    from ..evaluation.export import Exporter
    from ..masking import Masker
    from ..model.decoders import Decoder
    from ..model.encoder import Encoder
    from ..model.position import PositionEmbedding
    from ..model.targets import Target
    from ..model.tokenizer import Tokenizer

    bases = (Tokenizer, Masker, Encoder, Decoder, Target, PositionEmbedding, pl.LightningDataModule, pl.Callback)
    return dict(zip(KINDS, (*bases, Exporter), strict=True))


class PluginError(RuntimeError):
    """A plugin could not be loaded or registered (raised in strict mode)."""


class DuplicateComponentError(PluginError):
    """Two owners registered a component or command under the same name."""


@dataclass(frozen=True)
class Component:
    """A registered component class: its short name, kind, class and the plugin that registered it."""

    name: str
    kind: str
    cls: type
    owner: str

    @property
    def class_path(self) -> str:
        return f"{self.cls.__module__}.{self.cls.__qualname__}"


@dataclass(frozen=True)
class Command:
    """A subcommand of ``anymae``.

    Args:
        name: what follows ``anymae`` on the command line.
        help: one line for ``anymae --help``.
        run: the function, or its import path ``"package.module:function"`` (imported when the command runs).
        owner: the plugin that registered it (``"anymae"`` for the core's).
    """

    name: str
    help: str
    run: Callable[[list[str]], int] | str
    owner: str = "anymae"

    def load(self) -> Callable[[list[str]], int]:
        if not isinstance(self.run, str):
            return self.run
        module, _, function = self.run.partition(":")
        return getattr(importlib.import_module(module), function)


def kind_of(cls: type) -> str | None:
    """The kind of component ``cls`` is (by its base class), or ``None``."""
    if isinstance(cls, type):
        for kind, base in kind_bases().items():
            if issubclass(cls, base):
                return kind
    return None


class Registry:
    """Component classes by short name (the class name) and commands by name."""

    def __init__(self, owner: str = CORE_NAME) -> None:
        self.owner = owner
        self._components: dict[str, Component] = {}
        self.commands: dict[str, Command] = {}

    def add(self, *classes: type) -> None:
        """Register each class under its class name, as the kind its base class says (a subclass of
        :class:`~anymae.Tokenizer` is a tokenizer, of ``LightningDataModule`` a data module, ...)."""
        for cls in classes:
            kind = kind_of(cls)
            if kind is None:
                bases = ", ".join(base.__name__ for base in kind_bases().values())
                raise TypeError(f"{self.owner}: {cls!r} is not a component class; a component derives from {bases}")
            self._insert(Component(cls.__name__, kind, cls, self.owner))

    def add_command(self, name: str, run: Callable[[list[str]], int] | str, help: str) -> None:
        """Register ``anymae <name>``: ``run(argv) -> exit status`` (or its import path ``"module:function"``) gets
        the arguments after the name; ``help`` is its line in ``anymae --help``."""
        if not name.isidentifier() or name.startswith("_"):
            raise ValueError(f"{self.owner}: command name {name!r} must be a plain identifier")
        self._check_command_free(Command(name, help, run, self.owner))
        self.commands[name] = Command(name, help, run, self.owner)

    def _insert(self, component: Component) -> None:
        self._check_free(component)
        self._components[component.name] = component

    def _check_free(self, component: Component) -> None:
        known = self._components.get(component.name)
        if known is not None and known.cls is not component.cls:
            raise DuplicateComponentError(
                f"component name {component.name!r} is registered twice: by {known.owner} ({known.class_path}) "
                f"and by {component.owner} ({component.class_path}); rename one class"
            )

    def _check_command_free(self, command: Command) -> None:
        taken = self.commands.get(command.name)
        if taken is not None:
            raise DuplicateComponentError(
                f"command {command.name!r} is registered twice: by {taken.owner} and by {command.owner}; rename one"
            )

    def merge(self, other: Registry) -> None:
        """Add every component and command of ``other``; nothing is added if one of its names is taken."""
        for component in other:
            self._check_free(component)
        for command in other.commands.values():
            self._check_command_free(command)
        self._components.update((component.name, component) for component in other)
        self.commands.update(other.commands)

    def get(self, name: str) -> Component:
        return self._components[name]

    def find_class(self, cls: type) -> Component | None:
        """The registration of ``cls``, if it is registered."""
        component = self._components.get(cls.__name__)
        return component if component is not None and component.cls is cls else None

    def __contains__(self, name: object) -> bool:
        return name in self._components

    def __iter__(self) -> Iterator[Component]:
        return iter(self._components.values())

    def __len__(self) -> int:
        return len(self._components)

    def of_kind(self, kind: str) -> list[Component]:
        return [c for c in self._components.values() if c.kind == kind]

    def owned_by(self, owner: str) -> list[Component]:
        return [c for c in self._components.values() if c.owner == owner]
