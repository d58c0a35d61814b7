"""One line for a configuration jsonargparse refused: ``<field>: <problem>``, what ``anymae: error:`` prints.

jsonargparse reports a wrong value as a tree (each nested parser's key, the union members it tried, pydantic's
validation errors); the user needs the field and the innermost problem. A class path refused by the import-path
policy of :func:`anymae.plugins.resolution.resolving` names the plugin and why, or the variable; a module that is not
installed names, for ``anymae_<name>``, the distribution to install.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..config import ConfigError
from ..plugins.loader import Plugins
from ..plugins.resolution import refusal

__all__ = ["format_cli_error", "read_yaml"]

_KEY = re.compile(r'(?:Parser key|Key) "([^"]+)"')
# a list or tuple whole (its items are separated by ", "), else up to the first space
_VALUE = re.compile(r"(?:Got|Given) value: (\[[^\]\n]*\]|\([^)\n]*\)|\S+?)\.?(?:\s|$)")
_NOT_A_CLASS = re.compile(r"Expected a dot import path string: (\S+)|Import path (\S+) does not correspond")
_NOISE = re.compile(
    r"^$|validation errors? for|errors\.pydantic\.dev|^Problem with given class_path|^Expected a path|^Given value"
    r"|^Subtypes:|^Errors$|^Does not validate against|^Expected a <class 'NoneType'>"
)


def format_cli_error(error: BaseException, plugins: Plugins | None = None, argv: Sequence[str] = ()) -> str:
    """jsonargparse's report on ``error`` in one line, ``field: problem``: the nested parsers' keys make the field;
    the problem is a refusal or a missing module said our way, a class that is no component of the field's kind
    said by the registry (``plugins``), or else the report's innermost problem. A YAML file of ``argv`` that does not
    parse is named with its line and what is wrong there."""
    text = str(error)
    if '"<unicode string>"' in text and (problem := _yaml_problem(argv)):
        return problem
    field = ".".join(key for key in _KEY.findall(text) if key not in ("class_path", "init_args"))
    not_a_class = _NOT_A_CLASS.search(text)
    if plugins is not None and (explained := refusal(text, plugins)):
        message = explained
    elif not_a_class and field:
        message = _unknown_component(not_a_class[1] or not_a_class[2], field, plugins)
    else:
        message = _innermost(text)
    return f"{field}: {message}" if field else message


def _yaml_problem(argv: Sequence[str]) -> str | None:
    """The first YAML file named in ``argv`` (``--config x.yaml``, ``--model=y.yml``) that does not parse as plain
    data: ``file, line L: what``."""
    for arg in argv:
        path = Path(arg.split("=", 1)[-1])
        if path.suffix in (".yaml", ".yml") and path.is_file():
            try:
                read_yaml(path)
            except ConfigError as error:
                return str(error)
    return None


def read_yaml(path: str | Path) -> Any:
    """A YAML file's contents as plain data (``yaml.safe_load``); a file that does not parse, or holds a Python tag,
    is a :class:`~anymae.ConfigError` naming it, the line and what is wrong there."""
    import yaml

    try:
        return yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}, line {mark.line + 1}" if mark is not None else str(path)
        problem = getattr(error, "problem", None) or str(error)
        if tag := re.search(r"constructor for the tag '(?:tag:yaml\.org,2002:)?([^']+)'", problem):
            raise ConfigError(
                f"{where}: the tag !!{tag[1]} is not allowed: a config holds plain data (numbers, strings, lists, "
                "mappings), never Python objects"
            ) from None
        column = f", column {mark.column + 1}" if mark is not None else ""
        raise ConfigError(f"{where}{column}: {problem} (not valid YAML)") from None


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
    """A class that is no component of the field's kind: the kind the registry holds it as; else, for a short name,
    the plugins that could have registered it and did not load (their error), or that no installed plugin has it and
    what to do, with the names of that kind it does hold."""
    kind = field.rsplit(".", 1)[-1]
    kind = {"data": "datamodule", "callbacks": "callback"}.get(kind, kind)
    registry, short = (plugins.registry if plugins is not None else None), name.rsplit(".", 1)[-1]
    if registry is not None and short in registry and registry.get(short).kind != kind:
        return f"{name} is registered as {_a(registry.get(short).kind)}, not as {_a(kind)}"
    known = sorted(c.name for c in registry.of_kind(kind)) if registry is not None else []
    close = difflib.get_close_matches(short, known, n=1, cutoff=0.8)  # a typo, not a shared "Masker"
    message = f"unknown component {name!r}" + (f" (did you mean {close[0]}?)" if close else "")
    if "." in name:  # a class path that imported: a class of another kind, or no component at all
        return f"{message}; registered {kind}s: {', '.join(known) or 'none'}"
    unloaded = [info for info in (plugins.plugins if plugins is not None else ()) if not info.ok]
    if unloaded:
        which = "; ".join(f"{info.name} is {info.status}" for info in unloaded)
        return (
            f"{message}: no loaded plugin registers it, and {which}: if it comes from there, repair that plugin "
            "(`anymae plugins` shows each) or give the full class path"
        )
    installed = ", ".join(info.name for info in plugins.plugins) if plugins is not None and plugins.plugins else "none"
    return (
        f"{message}: no installed plugin registers it (plugins installed: {installed}); install the plugin that "
        f"provides it (pip install <its distribution>) or give its full class path; registered {kind}s: "
        f"{', '.join(known) or 'none'}"
    )


def _a(noun: str) -> str:
    return f"an {noun}" if noun[0] in "aeiou" else f"a {noun}"
