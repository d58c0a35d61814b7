"""Plugins: the hooks a plugin implements (``hookspecs.py``), the registry it fills (``registry.py``), discovery and
loading (``loader.py``), how config names become classes (``resolution.py``) and the core's own registrations
(``builtins.py``)."""

from .loader import (
    API_CHANGES,
    ENTRY_POINT_GROUP,
    PLUGIN_API_VERSION,
    IncompatiblePluginError,
    PluginInfo,
    Plugins,
    get_plugins,
    load_plugins,
)
from .registry import DuplicateComponentError, PluginError, Registry

__all__ = [
    "API_CHANGES",
    "ENTRY_POINT_GROUP",
    "PLUGIN_API_VERSION",
    "DuplicateComponentError",
    "IncompatiblePluginError",
    "PluginError",
    "PluginInfo",
    "Plugins",
    "Registry",
    "get_plugins",
    "load_plugins",
]
