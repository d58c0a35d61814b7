"""Plugin discovery and loading.

Plugins are found through the ``anymae`` entry-point group (entry-point name = distribution name) and loaded in a
function, never at import: one at a time, so a plugin that fails to import or to register is reported with its name
and the others still load. ``ANYMAE_DISABLE_PLUGINS=name1,name2`` blocks plugins; ``ANYMAE_STRICT_PLUGINS=1`` (or
``strict=True``) turns any plugin failure into an error, as our CI runs.

A plugin that failed or is disabled is *blocked*: :meth:`Plugins.blocking` tells the plugin a module belongs to, and
the CLI refuses any class path into its packages (:mod:`anymae.plugins.resolution`), whichever way a config names
the class.
"""

from __future__ import annotations

import importlib.metadata
import os
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import pluggy

from . import builtins as _builtins
from . import hookspecs
from .registry import CORE_NAME, Command, DuplicateComponentError, PluginError, Registry

__all__ = [
    "API_CHANGES",
    "ENTRY_POINT_GROUP",
    "DuplicateComponentError",
    "PLUGIN_API_VERSION",
    "IncompatiblePluginError",
    "PluginError",
    "PluginInfo",
    "Plugins",
    "get_plugins",
    "load_plugins",
]

ENTRY_POINT_GROUP = "anymae"
#: The plugin API this core provides. A plugin module declares the one it was written for as
#: ``ANYMAE_PLUGIN_API = 3``; the core refuses a plugin built for another. Raised only on incompatible changes to
#: the hooks, the registry or the component interfaces.
PLUGIN_API_VERSION = 3
#: What changed at each plugin API version, told to the author of a plugin written for an older one.
API_CHANGES: dict[int, str] = {
    2: (
        "tokenizers take forward(batch, extras), implement example_batch() and list what they can compute in "
        "`provides`; targets bind(TokenizerSpec) and declare `needs` (no isinstance checks on tokenizers); "
        "TokenBatch.aux is TokenBatch.extras; register with registry.add(*classes); file data modules build on "
        "anymae.DataModule / anymae.FolderDataModule (see docs/writing-a-plugin.md)"
    ),
    3: (
        "every part builds once from a BuildContext: Target.bind(spec) and Target.build(encoder_dim) are "
        "Target.build(ctx) (ctx.tokens is the tokenizer's spec, ctx.encoder.embed_dim the encoder's width), as are "
        "Encoder/Decoder/Masker.build(ctx) (Masker.check_layout is called by its build) / "
        "tokenizers: forward(batch, needs), TokenBatch(provided=...) and tokens.provided (were extras); "
        "TokenizerSpec.offers is TokenizerSpec.provides and TokenizerSpec.require is to_compute / "
        "maskers: scores() is noise(), forward(tokens, generator, noise) takes no context (the encoder and the "
        "training progress come with build(ctx)), auxiliary_loss(MaskFeedback) is feedback(step), `learns` is gone / "
        "targets: score(batch, tokens, mask, pred, target, visible) is loss(step) (an anymae.Step), scores = "
        "'visible' is predicted_by = 'encoder' / encoders: forward(tokens, mask=None, layers=False) returns an "
        "anymae.EncoderOutput (forward_masked and forward_layers are gone); decoders: forward(encoded, tokens, mask) "
        "/ figures call module(batch, needs=...) (see docs/writing-a-plugin.md, 'Porting from API 2')"
    ),
}
API_ATTRIBUTE = "ANYMAE_PLUGIN_API"
DISABLE_ENV = "ANYMAE_DISABLE_PLUGINS"
STRICT_ENV = "ANYMAE_STRICT_PLUGINS"


class IncompatiblePluginError(PluginError):
    """A plugin was written for another plugin API version than this core provides."""


@dataclass
class PluginInfo:
    """One plugin: its distribution name and version, where it lives, and the error that stopped it, if any."""

    name: str
    version: str | None = None
    module: str | None = None
    api: int | None = None
    error: str | None = None
    disabled: bool = False
    packages: frozenset[str] = frozenset()  # its top-level packages (module prefixes), blocked when it is not ok

    @property
    def ok(self) -> bool:
        return self.error is None and not self.disabled

    @property
    def status(self) -> str:
        """Why the plugin is not usable: ``disabled by ANYMAE_DISABLE_PLUGINS`` or ``BROKEN (<error>)``."""
        if self.disabled:
            return f"disabled by {DISABLE_ENV}"
        return f"BROKEN ({self.error})" if self.error else "ok"


@dataclass
class Plugins:
    """The result of :func:`load_plugins`: what happened to each plugin, and what they register.

    Commands (:attr:`commands`) and components (:attr:`registry`) are collected on first use, each from its own hook:
    listing the commands imports no plugin's components (nor torch or Lightning), and a plugin that fails to register
    is reported then (raised in strict mode), with the others kept.
    """

    plugins: list[PluginInfo] = field(default_factory=list)
    manager: pluggy.PluginManager | None = None
    strict: bool = False
    _commands: dict[str, Command] | None = field(default=None, init=False, repr=False)
    _registry: Registry | None = field(default=None, init=False, repr=False)

    @property
    def failed(self) -> list[PluginInfo]:
        return [p for p in self.plugins if p.error is not None]

    def blocking(self, module: str) -> PluginInfo | None:
        """The failed or disabled plugin that ``module`` (a dotted module path) belongs to, if any."""
        for info in self.plugins:
            if not info.ok and any(module == p or module.startswith(p + ".") for p in info.packages):
                return info
        return None

    @property
    def commands(self) -> dict[str, Command]:
        """``anymae``'s commands by name, the core's first: before :attr:`registry` is used, those of the
        ``anymae_commands`` hooks (no component imported); after, also any a plugin added in ``anymae_register``."""
        if self._registry is not None:
            return self._registry.commands
        if self._commands is None:
            self._commands = self._collect(("anymae_commands",)).commands
        return self._commands

    @property
    def registry(self) -> Registry:
        """Every plugin's components and commands (each plugin's ``anymae_register`` runs on first use)."""
        if self._registry is None:
            self._registry = self._collect(("anymae_commands", "anymae_register"))
        return self._registry

    def _hooks(self, hook: str) -> dict[str, Callable[..., None]]:
        if self.manager is None:
            return {}
        return {impl.plugin_name: impl.function for impl in getattr(self.manager.hook, hook).get_hookimpls()}

    def _collect(self, hooks: tuple[str, ...]) -> Registry:
        registry = Registry()
        if self.manager is None:
            return registry
        impls = {hook: self._hooks(hook) for hook in hooks}
        infos = {info.name: info for info in self.plugins}
        for name in self._order():
            info = infos.get(name) or PluginInfo(name)
            if info.error is not None:  # failed already (reported then)
                continue
            own = Registry(owner=name)
            try:
                for hook in hooks:
                    if name in impls[hook]:
                        impls[hook][name](registry=own)
                        if hook == "anymae_commands" and len(own):
                            raise PluginError("anymae_commands registered components; register them in anymae_register")
                registry.merge(own)
            except Exception as error:
                if not info.packages:  # an in-process plugin: block the modules of the classes it tried to register
                    modules = {c.cls.__module__ for c in own}
                    info.packages = frozenset(m for m in modules if m.split(".")[0] != CORE_NAME)
                if name not in infos:
                    self.plugins.append(info)
                self._fail(info, error, "failed to register")
        return registry

    def _order(self) -> list[str]:
        """Plugin names in registration order (the core first)."""
        return [name for name, _ in self.manager.list_name_plugin()] if self.manager is not None else []

    def _fail(self, info: PluginInfo, error: BaseException, what: str) -> None:
        info.error = f"{what}: {type(error).__name__}: {error}"
        if self.strict:
            if isinstance(error, PluginError):  # already names the plugins involved
                raise error
            raise PluginError(f"plugin {info.name} {info.error}") from error
        warnings.warn(f"anymae plugin {info.name} was skipped ({info.error})", RuntimeWarning, stacklevel=4)


def _env_list(name: str) -> set[str]:
    return {item.strip() for item in os.environ.get(name, "").split(",") if item.strip()}


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def _packages(entry_point: importlib.metadata.EntryPoint) -> frozenset[str]:
    """The top-level packages of the plugin: its entry module's, and those its distribution installs."""
    packages = {entry_point.value.split(":")[0].split(".")[0]}
    dist = entry_point.dist
    if dist is not None:
        top_level = dist.read_text("top_level.txt") or ""
        packages.update(line.strip() for line in top_level.splitlines() if line.strip())
        for file in dist.files or ():
            parts = file.parts
            if len(parts) > 1 and parts[-1] == "__init__.py" and ".dist-info" not in parts[0]:
                packages.add(parts[0])
    return frozenset(packages - {CORE_NAME, ""})


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
        changed = [API_CHANGES[v] for v in range(api + 1, PLUGIN_API_VERSION + 1) if v in API_CHANGES]
        what = f"; what changed since API {api}: {' / '.join(changed)}" if changed else ""
        raise IncompatiblePluginError(
            f"built for plugin API {api}, but this anymae provides plugin API {PLUGIN_API_VERSION}: install a release "
            f"of {info.name} made for API {PLUGIN_API_VERSION}, or an anymae that provides API {api}{what}"
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
    components: bool = True,
) -> Plugins:
    """Discover and load plugins (import each entry module and check its API), and collect their components.

    Args:
        strict: raise :class:`PluginError` on the first plugin that fails; default from ``ANYMAE_STRICT_PLUGINS``.
        autoload: load the plugins installed under the ``anymae`` entry-point group (tests turn this off).
        extra: in-process plugins as ``(name, module_or_object)`` pairs, registered after the installed ones.
        components: collect the components now (each plugin's ``anymae_register``); ``False`` leaves them (and
            their imports) to the first use of :attr:`Plugins.registry`, as the CLI does.
    """
    strict = _env_flag(STRICT_ENV) if strict is None else strict
    disabled = _env_list(DISABLE_ENV)
    manager = pluggy.PluginManager(ENTRY_POINT_GROUP)
    manager.add_hookspecs(hookspecs)
    manager.register(_builtins, name=CORE_NAME)
    loaded = Plugins(manager=manager, strict=strict)
    entry_points = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP) if autoload else []
    for ep in sorted(entry_points, key=lambda ep: ep.name):
        info = PluginInfo(ep.name, ep.dist.version if ep.dist else None, ep.value, packages=_packages(ep))
        loaded.plugins.append(info)
        if ep.name in disabled:
            info.disabled = True
            continue
        try:
            module = ep.load()
        except Exception as error:  # a broken plugin must not take the others down
            loaded._fail(info, error, "failed to import")
            continue
        try:
            _check_api(module, info, required=True)
            _register(manager, module, ep.name)
        except Exception as error:
            loaded._fail(info, error, "failed to load")
    for name, plugin in extra:
        info = PluginInfo(name, module=getattr(plugin, "__name__", type(plugin).__name__))
        loaded.plugins.append(info)
        try:
            _check_api(plugin, info, required=False)
            _register(manager, plugin, name)
        except Exception as error:
            loaded._fail(info, error, "failed to load")
    if components:
        loaded.registry  # noqa: B018 (collects the components, raising in strict mode)
    return loaded


_loaded: Plugins | None = None


def get_plugins(*, reload: bool = False) -> Plugins:
    """The installed plugins, loaded once per process (what the CLI uses); components are collected on first use."""
    global _loaded
    if _loaded is None or reload:
        _loaded = load_plugins(components=False)
    return _loaded
