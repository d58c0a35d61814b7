"""One line for a configuration jsonargparse refused: ``<field>: <problem>``, what ``anymae: error:`` prints.

jsonargparse reports a wrong value as a tree (each nested parser's key, the union members it tried, pydantic's
validation errors); the user needs the field and the innermost problem. A class path refused by the import-path
policy of :func:`anymae.plugins.resolution.resolving` names the plugin and why, or the variable; a module that is not
installed names, for ``anymae_<name>``, the distribution to install.
"""

from __future__ import annotations

import re

from ..plugins.loader import Plugins
from ..plugins.resolution import ALLOWED_ENV, allowed_modules

__all__ = ["format_cli_error"]

_KEY = re.compile(r'(?:Parser key|Key) "([^"]+)"')
_VALUE = re.compile(r"(?:Got|Given) value: (\S+?)\.?(?:\s|$)")
_NOT_A_CLASS = re.compile(r"Expected a dot import path string: (\S+)|Import path (\S+) does not correspond")
_DENIED = re.compile(r"Importing '([\w.]+)' is not allowed, denied by the '([\w.*]+)' entry")
_MISSING = re.compile(r"class_path '([\w.]+)':\s+No module named '([\w.]+)'")
_NOISE = re.compile(
    r"^$|validation errors? for|errors\.pydantic\.dev|^Problem with given class_path|^Expected a path|^Given value"
    r"|^Subtypes:|^Errors$|^Does not validate against|^Expected a <class 'NoneType'>"
)


def format_cli_error(error: BaseException, plugins: Plugins | None = None) -> str:
    """jsonargparse's report on ``error`` in one line, ``field: problem``: the nested parsers' keys make the field;
    the problem is a refusal or a missing module said our way, a class that is no component of the field's kind
    said by the registry (``plugins``), or else the report's innermost problem."""
    text = str(error)
    field = ".".join(key for key in _KEY.findall(text) if key not in ("class_path", "init_args"))
    not_a_class = _NOT_A_CLASS.search(text)
    if plugins is not None and (explained := _refusal(text, plugins)):
        message = explained
    elif not_a_class and field:
        message = _unknown_component(not_a_class[1] or not_a_class[2], field, plugins)
    else:
        message = _innermost(text)
    return f"{field}: {message}" if field else message


def _refusal(report: str, plugins: Plugins) -> str | None:
    """Our message for a class path jsonargparse refused (``report`` is its error) or could not import, if any."""
    if denied := _DENIED.search(report):
        path, entry = denied.groups()
        blocked = next((info for info in plugins.plugins if not info.ok and entry in info.packages), None)
        allowed = ", ".join(allowed_modules(plugins) or ())
        if entry == "*":
            return f"{path} is outside {ALLOWED_ENV} ({allowed}); add its package to run it"
        if blocked is not None:
            return f"{path} belongs to the plugin {blocked.name}, which is {blocked.status}"
        return f"{path} is not allowed in a config (jsonargparse denies {entry!r})"
    if missing := _MISSING.search(report):
        path, module = missing.groups()
        dist = module.split(".")[0].replace("_", "-")
        hint = f"it comes from the plugin {dist}: pip install {dist}" if dist.startswith("anymae-") else ""
        return f"{path}: no module named {module!r}; {hint or 'install the package that provides it'}"
    return None


def _innermost(text: str) -> str:
    """What the report ends with, and the value it was given: pydantic's message for a constrained type, a Literal's
    choices, the expected types, or else the last line that is not jsonargparse's framing."""
    lines = [line.strip(" -:") for line in _KEY.sub("", _VALUE.sub("", text)).splitlines()]
    expected = re.findall(r"Expected an? (?:<class '([^']+)'>|(?:typing\.)?Literal\[(.*)\])", text)
    types = list(dict.fromkeys(t for t, _ in expected if t and t != "NoneType"))
    choices = [c for _, c in expected if c]
    pydantic = [line.split(" [type=")[0] for line in lines if " [type=" in line]
    if pydantic:
        message = pydantic[0]
    elif choices and not types:
        message = f"allowed: {', '.join(choices)}"
    elif types or choices:
        message = "expected " + " or ".join([*types, *([f"one of {', '.join(choices)}"] if choices else [])])
    else:
        message = next((line for line in reversed(lines) if not _NOISE.search(line)), text.strip())
    value = _VALUE.search(text)
    return f"{message} (got {value[1]})" if value else message


def _unknown_component(name: str, field: str, plugins: Plugins | None) -> str:
    """A class that is no component of the field's kind: the kind the registry holds it as, or the names it holds."""
    kind = field.rsplit(".", 1)[-1]
    kind = {"data": "datamodule", "callbacks": "callback"}.get(kind, kind)
    registry, short = (plugins.registry if plugins is not None else None), name.rsplit(".", 1)[-1]
    if registry is not None and short in registry and registry.get(short).kind != kind:
        return f"{name} is registered as {_a(registry.get(short).kind)}, not as {_a(kind)}"
    known = sorted(c.name for c in registry.of_kind(kind)) if registry is not None else []
    allowed = f"registered: {', '.join(known)}, or a full class path" if known else "give a full class path"
    return f"unknown component {name!r}; {allowed}; a plugin's component needs its plugin installed (`anymae plugins`)"


def _a(noun: str) -> str:
    return f"an {noun}" if noun[0] in "aeiou" else f"a {noun}"
