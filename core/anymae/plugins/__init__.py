"""Plugins: the hooks a plugin implements (``hookspecs.py``), the registry it fills (``registry.py``), discovery and
loading (``loader.py``), how config names become classes (``resolution.py``) and the core's own registrations
(``builtins.py``)."""

from ..lazy import lazy_exports

_EXPORTS = {
    ".loader": [
        "API_CHANGES",
        "ENTRY_POINT_GROUP",
        "PLUGIN_API_VERSION",
        "IncompatiblePluginError",
        "PluginInfo",
        "Plugins",
        "get_plugins",
        "load_plugins",
    ],
    ".registry": ["DuplicateComponentError", "PluginError", "Registry"],
}
__all__ = sorted(name for names in _EXPORTS.values() for name in names)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
