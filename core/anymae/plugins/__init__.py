"""Plugins: the hooks a plugin implements (``hookspecs.py``), the registry it fills (``registry.py``), discovery and
loading (``loader.py``), how config names become classes (``resolution.py``) and the core's own registrations
(``builtins.py``)."""
