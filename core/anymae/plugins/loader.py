"""Plugin discovery and loading.

Plugins are found through the ``anymae`` entry-point group (entry-point name = distribution name) and loaded in a
function, never at import: one at a time, so a plugin that fails to import or to register is reported with its name
and the others still load. ``ANYMAE_DISABLE_PLUGINS=name1,name2`` blocks plugins; ``ANYMAE_STRICT_PLUGINS=1`` (or
``strict=True``) turns any plugin failure into an error, as our CI runs. A failed or disabled plugin's packages are
refused in configs (:mod:`anymae.plugins.resolution`).
"""

from __future__ import annotations

import importlib.metadata
import os
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field

import pluggy

from . import builtins, hookspecs
from .registry import CORE_NAME, Command, PluginError, Registry

__all__ = [
    "API_CHANGES",
    "PLUGIN_API_VERSION",
    "IncompatiblePluginError",
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
#: What changed at each plugin API version, one item a string, told to the author of a plugin written for an older one.
API_CHANGES: dict[int, list[str]] = {
    2: [
        "tokenizers take forward(batch, extras), implement example_batch() and list what they can compute in "
        "`provides`",
        "targets bind(TokenizerSpec) and declare `needs` (no isinstance checks on tokenizers)",
        "TokenBatch.aux is TokenBatch.extras",
        "register with registry.add(*classes)",
        "file data modules build on anymae.DataModule / anymae.FolderDataModule (see docs/writing-a-plugin.md)",
    ],
    3: [
        "every part builds once from a BuildContext: Target.bind(spec) and Target.build(encoder_dim) are "
        "Target.build(ctx) (ctx.tokens is the tokenizer's spec, ctx.encoder.embed_dim the encoder's width), as are "
        "Encoder, Decoder and Masker.build(ctx)",
        "tokenizers: forward(batch, needs), TokenBatch(provided=...) and tokens.provided (were extras); "
        "TokenizerSpec.offers is TokenizerSpec.provides, TokenizerSpec.require is to_compute",
        "maskers: scores() is noise(); forward(tokens, generator, noise) takes no context (the encoder and the "
        "training progress come with build(ctx)); auxiliary_loss(MaskFeedback) is feedback(step); `learns` is gone",
        "targets: score(batch, tokens, mask, pred, target, visible) is loss(step), with an anymae.Step; "
        "scores = 'visible' is predicted_by = 'encoder'",
        "encoders: forward(tokens, mask=None, layers=False) returns an anymae.EncoderOutput (forward_masked and "
        "forward_layers are gone); decoders: forward(encoded, tokens, mask)",
        "figures call module(batch, needs=...) (see docs/writing-a-plugin.md, 'Porting a plugin from API 2')",
    ],
}
DISABLE_ENV = "ANYMAE_DISABLE_PLUGINS"


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
    packages: frozenset[str] = frozenset()  # its top-level packages, refused in configs when it is not ok

    @property
    def ok(self) -> bool:
        return self.error is None and not self.disabled

    @property
    def status(self) -> str:
        """``ok``, ``disabled by ANYMAE_DISABLE_PLUGINS`` or ``BROKEN (<error>)``."""
        return f"disabled by {DISABLE_ENV}" if self.disabled else f"BROKEN ({self.error})" if self.error else "ok"


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
    _commands: Registry | None = field(default=None, init=False, repr=False)
    _registry: Registry | None = field(default=None, init=False, repr=False)

    @property
    def failed(self) -> list[PluginInfo]:
        return [p for p in self.plugins if p.error is not None]

    @property
    def commands(self) -> dict[str, Command]:
        """``anymae``'s commands by name, the core's first: before :attr:`registry` is used, those of the
        ``anymae_commands`` hooks (no component imported); after, also any a plugin added in ``anymae_register``."""
        source = self._registry if self._registry is not None else self._commands
        if source is None:
            source = self._commands = self._collect("anymae_commands")
        return source.commands

    @property
    def registry(self) -> Registry:
        """Every plugin's components and commands (each plugin's ``anymae_register`` runs on first use)."""
        if self._registry is None:
            self._registry = self._collect("anymae_commands", "anymae_register")
        return self._registry

    def _collect(self, *hooks: str) -> Registry:
        """Run ``hooks`` plugin by plugin (the core first), each into a registry of its own that is merged only if
        every hook of the plugin succeeded: a plugin that fails leaves nothing half-registered."""
        registry, infos = Registry(), {info.name: info for info in self.plugins}
        if self.manager is None:
            return registry
        impls = {h: {i.plugin_name: i.function for i in getattr(self.manager.hook, h).get_hookimpls()} for h in hooks}
        for name, _ in self.manager.list_name_plugin():
            info = infos.get(name) or PluginInfo(name)
            if info.error is not None:  # failed already (reported then)
                continue
            own = Registry(owner=name)
            try:
                for hook in hooks:
                    impls[hook].get(name, lambda registry: None)(registry=own)
                    if hook == "anymae_commands" and len(own):
                        raise PluginError("anymae_commands registered components; register them in anymae_register")
                registry.merge(own)
            except Exception as error:
                if not info.packages:  # an in-process plugin: refuse the modules of the classes it tried to register
                    modules = {c.cls.__module__ for c in own}
                    info.packages = frozenset(m for m in modules if m.split(".")[0] != CORE_NAME)
                if name not in infos:
                    self.plugins.append(info)
                self._fail(info, error, "failed to register")
        return registry

    def _fail(self, info: PluginInfo, error: BaseException, what: str) -> None:
        info.error = f"{what}: {type(error).__name__}: {error}"
        if self.strict:
            if isinstance(error, PluginError):  # already names the plugins involved
                raise error
            raise PluginError(f"plugin {info.name} {info.error}") from error
        warnings.warn(f"anymae plugin {info.name} was skipped ({info.error})", RuntimeWarning, stacklevel=4)


def _packages(entry_point: importlib.metadata.EntryPoint) -> frozenset[str]:
    """The top-level packages of the plugin: its entry module's, and those its distribution installs."""
    dist, packages = entry_point.dist, {entry_point.module.split(".")[0]}
    if dist is not None:
        packages.update((dist.read_text("top_level.txt") or "").split())
        packages.update(f.parts[0] for f in dist.files or () if f.name == "__init__.py" and len(f.parts) > 1)
    return frozenset(packages - {CORE_NAME})


def _check_api(plugin: object, info: PluginInfo, required: bool) -> None:
    info.api = getattr(plugin, "ANYMAE_PLUGIN_API", None)
    if info.api is None and required:
        raise IncompatiblePluginError(
            f"{info.module or info.name} does not declare the plugin API it targets; add "
            f"`ANYMAE_PLUGIN_API = {PLUGIN_API_VERSION}` to it (this anymae provides plugin API {PLUGIN_API_VERSION})"
        )
    if info.api is not None and info.api != PLUGIN_API_VERSION:
        changed = [item for v in range(info.api + 1, PLUGIN_API_VERSION + 1) for item in API_CHANGES.get(v, [])]
        raise IncompatiblePluginError(
            f"built for plugin API {info.api}, but this anymae provides plugin API {PLUGIN_API_VERSION}: install a "
            f"release of {info.name} made for API {PLUGIN_API_VERSION}, or an anymae that provides API {info.api}"
            + (f"; what changed since API {info.api}: {'; '.join(changed)}" if changed else "")
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
    if strict is None:
        strict = os.environ.get("ANYMAE_STRICT_PLUGINS", "").strip().lower() in {"1", "true", "yes", "on"}
    disabled = {name.strip() for name in os.environ.get(DISABLE_ENV, "").split(",")}
    manager = pluggy.PluginManager(ENTRY_POINT_GROUP)
    manager.add_hookspecs(hookspecs)
    manager.register(builtins, name=CORE_NAME)
    loaded = Plugins(manager=manager, strict=strict)
    entry_points = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP) if autoload else []
    candidates = [
        (PluginInfo(ep.name, ep.dist.version if ep.dist else None, ep.value, packages=_packages(ep)), ep.load, True)
        for ep in sorted(entry_points, key=lambda ep: ep.name)
    ] + [(PluginInfo(name, module=getattr(p, "__name__", type(p).__name__)), lambda p=p: p, False) for name, p in extra]
    for info, load, installed in candidates:
        loaded.plugins.append(info)
        info.disabled = installed and info.name in disabled
        if info.disabled:
            continue
        try:
            plugin = load()
        except Exception as error:  # a broken plugin must not take the others down
            loaded._fail(info, error, "failed to import")
            continue
        try:
            _check_api(plugin, info, required=installed)
            _register(manager, plugin, info.name)
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
