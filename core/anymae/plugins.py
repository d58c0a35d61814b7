"""Plugin discovery and the component registry.

Plugins are found through the ``anymae`` entry-point group (entry-point name = distribution name) and loaded in a
function, never at import: one at a time, so a plugin that fails to import or to register is reported with its name
and the others still load. ``ANYMAE_DISABLE_PLUGINS=name1,name2`` blocks plugins; ``ANYMAE_STRICT_PLUGINS=1`` (or
``strict=True``) turns any plugin failure into an error, as our CI runs.
"""

from __future__ import annotations

import importlib.metadata
import os
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field

import lightning.pytorch as pl
import pluggy

from . import hookspecs
from .decoders import Decoder
from .encoders import Encoder
from .export import Exporter
from .masking import Masker
from .position import PositionEmbedding
from .targets import Target
from .tokenizers import Tokenizer

__all__ = [
    "ENTRY_POINT_GROUP",
    "PLUGIN_API_VERSION",
    "Component",
    "DuplicateComponentError",
    "IncompatiblePluginError",
    "PluginError",
    "PluginInfo",
    "Plugins",
    "Registry",
    "get_plugins",
    "load_plugins",
]

ENTRY_POINT_GROUP = "anymae"
#: The plugin API this core provides. A plugin module declares the one it was written for as
#: ``ANYMAE_PLUGIN_API = 1``; the core refuses a plugin built for another. Raised only on incompatible changes to
#: the hooks, the registry or the component interfaces.
PLUGIN_API_VERSION = 1
API_ATTRIBUTE = "ANYMAE_PLUGIN_API"
DISABLE_ENV = "ANYMAE_DISABLE_PLUGINS"
STRICT_ENV = "ANYMAE_STRICT_PLUGINS"
CORE_NAME = "anymae"

#: The kinds of component a plugin can register, and the base class each must derive from.
KINDS: dict[str, type] = {
    "tokenizer": Tokenizer,
    "masker": Masker,
    "encoder": Encoder,
    "decoder": Decoder,
    "target": Target,
    "position_embedding": PositionEmbedding,
    "datamodule": pl.LightningDataModule,
    "callback": pl.Callback,
    "exporter": Exporter,
}


class PluginError(RuntimeError):
    """A plugin could not be loaded or registered (raised in strict mode)."""


class DuplicateComponentError(PluginError):
    """Two plugins registered components under the same short name."""


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


class Registry:
    """Component classes by short name (the class name). Plugins receive one in :func:`anymae_register`."""

    def __init__(self, owner: str = CORE_NAME) -> None:
        self.owner = owner
        self._components: dict[str, Component] = {}

    def add(self, kind: str, cls: type) -> None:
        """Register ``cls`` as a component of ``kind`` (one of :data:`KINDS`) under its class name."""
        if kind not in KINDS:
            raise ValueError(f"unknown component kind {kind!r}; kinds: {', '.join(KINDS)}")
        if not isinstance(cls, type) or not issubclass(cls, KINDS[kind]):
            raise TypeError(f"{self.owner}: a {kind} must be a subclass of {KINDS[kind].__name__}, got {cls!r}")
        self._insert(Component(cls.__name__, kind, cls, self.owner))

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

    def add_tokenizer(self, cls: type[Tokenizer]) -> None:
        self.add("tokenizer", cls)

    def add_masker(self, cls: type[Masker]) -> None:
        self.add("masker", cls)

    def add_encoder(self, cls: type[Encoder]) -> None:
        self.add("encoder", cls)

    def add_decoder(self, cls: type[Decoder]) -> None:
        self.add("decoder", cls)

    def add_target(self, cls: type[Target]) -> None:
        self.add("target", cls)

    def add_position_embedding(self, cls: type[PositionEmbedding]) -> None:
        self.add("position_embedding", cls)

    def add_datamodule(self, cls: type[pl.LightningDataModule]) -> None:
        self.add("datamodule", cls)

    def add_callback(self, cls: type[pl.Callback]) -> None:
        self.add("callback", cls)

    def add_exporter(self, cls: type[Exporter]) -> None:
        self.add("exporter", cls)

    def merge(self, other: Registry) -> None:
        """Add every component of ``other``; nothing is added if one of its names is taken."""
        for component in other:
            self._check_free(component)
        self._components.update((component.name, component) for component in other)

    def get(self, name: str) -> Component:
        return self._components[name]

    def __contains__(self, name: object) -> bool:
        return name in self._components

    def __iter__(self):
        return iter(self._components.values())

    def __len__(self) -> int:
        return len(self._components)

    def of_kind(self, kind: str) -> list[Component]:
        return [c for c in self._components.values() if c.kind == kind]

    def owned_by(self, owner: str) -> list[Component]:
        return [c for c in self._components.values() if c.owner == owner]


@dataclass
class PluginInfo:
    """One plugin: its distribution name and version, and the error that stopped it, if any."""

    name: str
    version: str | None = None
    module: str | None = None
    api: int | None = None
    error: str | None = None
    disabled: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None and not self.disabled


@dataclass
class Plugins:
    """The result of :func:`load_plugins`: the registry and what happened to each plugin."""

    registry: Registry
    plugins: list[PluginInfo] = field(default_factory=list)
    manager: pluggy.PluginManager | None = None

    @property
    def failed(self) -> list[PluginInfo]:
        return [p for p in self.plugins if p.error is not None]


def _env_list(name: str) -> set[str]:
    return {item.strip() for item in os.environ.get(name, "").split(",") if item.strip()}


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


class IncompatiblePluginError(PluginError):
    """A plugin was written for another plugin API version than this core provides."""


def _check_api(plugin: object, info: PluginInfo, required: bool) -> None:
    api = getattr(plugin, API_ATTRIBUTE, None)
    info.api = api
    if api is None and not required:
        return
    if api is None:
        raise IncompatiblePluginError(
            f"{info.module or info.name} does not declare the plugin API it targets; add "
            f"`{API_ATTRIBUTE} = {PLUGIN_API_VERSION}` to it (this anymae provides plugin API {PLUGIN_API_VERSION})"
        )
    if api != PLUGIN_API_VERSION:
        raise IncompatiblePluginError(
            f"built for plugin API {api}, but this anymae provides plugin API {PLUGIN_API_VERSION}: install a release "
            f"of {info.name} made for API {PLUGIN_API_VERSION}, or an anymae that provides API {api}"
        )


def _register(manager: pluggy.PluginManager, plugin: object, name: str) -> None:
    """Register one plugin and check its hooks (a misspelt hook name is an error), or leave no trace of it."""
    manager.register(plugin, name=name)
    try:
        manager.check_pending()
    except Exception:
        manager.unregister(name=name)
        raise


def load_plugins(
    *,
    strict: bool | None = None,
    autoload: bool = True,
    extra: Iterable[tuple[str, object]] = (),
) -> Plugins:
    """Discover and load plugins, and collect their components.

    Args:
        strict: raise :class:`PluginError` on the first plugin that fails; default from ``ANYMAE_STRICT_PLUGINS``.
        autoload: load the plugins installed under the ``anymae`` entry-point group (tests turn this off).
        extra: in-process plugins as ``(name, module_or_object)`` pairs, registered after the installed ones.
    """
    from . import _builtins

    strict = _env_flag(STRICT_ENV) if strict is None else strict
    disabled = _env_list(DISABLE_ENV)
    manager = pluggy.PluginManager(ENTRY_POINT_GROUP)
    manager.add_hookspecs(hookspecs)
    manager.register(_builtins, name=CORE_NAME)
    infos: dict[str, PluginInfo] = {}

    def fail(info: PluginInfo, error: BaseException, what: str) -> None:
        info.error = f"{what}: {type(error).__name__}: {error}"
        if strict:
            if isinstance(error, PluginError):  # already names the plugins involved
                raise error
            raise PluginError(f"plugin {info.name} {info.error}") from error
        warnings.warn(f"anymae plugin {info.name} was skipped ({info.error})", RuntimeWarning, stacklevel=3)

    entry_points = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP) if autoload else []
    for ep in sorted(entry_points, key=lambda ep: ep.name):
        info = infos[ep.name] = PluginInfo(ep.name, ep.dist.version if ep.dist else None, ep.value)
        if ep.name in disabled:
            info.disabled = True
            continue
        try:
            module = ep.load()
        except Exception as error:  # a broken plugin must not take the others down
            fail(info, error, "failed to import")
            continue
        try:
            _check_api(module, info, required=True)
            _register(manager, module, ep.name)
        except Exception as error:
            fail(info, error, "failed to load")
    for name, plugin in extra:
        info = infos[name] = PluginInfo(name, module=getattr(plugin, "__name__", type(plugin).__name__))
        try:
            _check_api(plugin, info, required=False)
            _register(manager, plugin, name)
        except Exception as error:
            fail(info, error, "failed to load")

    registry = Registry()
    for impl in manager.hook.anymae_register.get_hookimpls():  # in registration order
        own = Registry(owner=impl.plugin_name)
        try:
            impl.function(registry=own)
            registry.merge(own)
        except Exception as error:
            fail(infos.get(impl.plugin_name) or PluginInfo(impl.plugin_name), error, "failed to register")
    return Plugins(registry=registry, plugins=list(infos.values()), manager=manager)


_loaded: Plugins | None = None


def get_plugins(*, reload: bool = False) -> Plugins:
    """The installed plugins, loaded once per process (what the CLI uses)."""
    global _loaded
    if _loaded is None or reload:
        _loaded = load_plugins()
    return _loaded
