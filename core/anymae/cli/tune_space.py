"""The search space of ``anymae tune``: which settings of a pretraining config a study varies, and over what range.

A :class:`Param` names a setting by its dotted path in the config (``model.masker.init_args.mask_ratio``), as an
``anymae fit`` override would. :func:`default_space` derives a space from the config itself, each range centred on
the config's own value, for the settings it has:

* the mask ratio (0.4 to 0.95), the length of the schedule (``trainer.max_steps`` or ``trainer.max_epochs``, a third
  to 3x the config's), the learning rate (a fifth to 5x ``lr`` or ``blr``), the encoder's width (half, same, double;
  a multiple of its heads) and depth (2 blocks fewer to 2 more), the patch size (half, same, double; dividing the
  image or series it cuts),
* the augmentation strength of data modules that have one: image crops (``crop_scale``), series jitter, scaling and
  crops, audio time shift, gain and input masking.

A space file (``--space``) replaces it: a YAML list of ``{key, low, high[, log, int]}`` or ``{key, choices}``.
"""

from __future__ import annotations

import importlib
import inspect
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..config import ConfigError

if TYPE_CHECKING:
    import optuna

__all__ = ["Param", "apply", "config_value", "default_space", "get", "grid_size", "read_space"]


@dataclass(frozen=True)
class Param:
    """One setting a study varies: a float or int range (``log``: sampled on a log scale), or a list of
    ``choices`` (any YAML values: lists, strings, numbers)."""

    key: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    integer: bool = False
    choices: tuple[Any, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.choices:
            return
        if self.low is None or self.high is None or self.low > self.high:
            raise ConfigError(f"tune space: {self.key} needs low <= high, or choices")
        if self.log and self.low <= 0:
            raise ConfigError(f"tune space: {self.key} is sampled on a log scale: low must be above 0")

    def suggest(self, trial: optuna.Trial) -> Any:
        """The trial's value (choices go through Optuna as JSON strings, so any YAML value can be one)."""
        if self.choices:
            return json.loads(trial.suggest_categorical(self.key, [json.dumps(c) for c in self.choices]))
        assert self.low is not None and self.high is not None  # __post_init__
        if self.integer:
            return trial.suggest_int(self.key, int(self.low), int(self.high), log=self.log)
        return float(f"{trial.suggest_float(self.key, self.low, self.high, log=self.log):.4g}")  # as tables show it

    def encode(self, value: Any) -> Any:
        """``value`` as Optuna stores it for this parameter (for enqueueing the config's own recipe)."""
        return json.dumps(value) if self.choices else value

    def decode(self, stored: Any) -> Any:
        """What a trial trained with, from what Optuna stored."""
        if self.choices:
            return json.loads(stored)
        return stored if self.integer else float(f"{stored:.4g}")


def get(config: dict[str, Any], key: str) -> Any:
    """The value at a dotted ``key`` of a nested config (``None`` when absent)."""
    node: Any = config
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def apply(config: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``config`` with each dotted key set (missing levels created)."""
    out = json.loads(json.dumps(config))
    for key, value in values.items():
        *parents, last = key.split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return out


def config_value(config: dict[str, Any], key: str) -> Any:
    """The value a run of ``config`` uses for a dotted ``key``: the config's own, else its class's default (the key
    ``data.init_args.crop_scale`` of a config that sets no crop scale: the data module's default)."""
    value = get(config, key)
    if value is not None or ".init_args." not in key:
        return value
    section, _, name = key.rpartition(".init_args.")
    found = _defaults(get(config, section)).get(name)
    return list(found) if isinstance(found, tuple) else found


def _defaults(section: Any) -> dict[str, Any]:
    """A ``class_path``/``init_args`` section's arguments: its class's defaults, then the config's own values."""
    if not isinstance(section, dict):
        return {}
    given = dict(section.get("init_args") or {})
    path = section.get("class_path")
    if not isinstance(path, str) or "." not in path:
        return given
    module, _, name = path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return given
    found: dict[str, Any] = {}
    for klass in getattr(cls, "__mro__", ()):  # a constructor passing **kwargs on: its bases' arguments count too
        try:
            params = list(inspect.signature(klass.__init__).parameters.values())
        except (TypeError, ValueError):
            break
        for p in params:
            if p.default is not inspect.Parameter.empty:
                found.setdefault(p.name, p.default)
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
            break
    return {**found, **given}


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _sizes(value: int, divides: Any) -> tuple[int, ...]:
    """Half, the same and double ``value``, those that divide ``divides`` (an int; anything else divides nothing
    out)."""
    found = [size for size in (value // 2, value, value * 2) if size >= 1]
    if isinstance(divides, int) and not isinstance(divides, bool):
        found = [size for size in found if divides % size == 0]
    return tuple(dict.fromkeys(found))


#: augmentation strengths per argument name: (low, high), for the data modules that have them
AUGMENTATION = {
    "jitter": (0.0, 0.1),
    "scaling": (0.0, 0.3),
    "crop": (0.0, 0.4),
    "time_shift": (0.0, 0.3),
    "gain_db": (0.0, 6.0),
    "mixup": (0.0, 0.5),
}
MASKS = {"freq_mask": (0, 48), "time_mask": (0, 192)}  # SpecAugment widths (Audio-MAE fine-tunes with 48 and 192)


def _space_items(config: dict[str, Any]) -> Iterator[Param]:
    ratio = get(config, "model.masker.init_args.mask_ratio")
    masker = _defaults(get(config, "model.masker"))
    ratio = masker.get("mask_ratio", ratio)
    if _is_number(ratio):
        yield Param("model.masker.init_args.mask_ratio", 0.4, 0.95)
    steps, epochs = get(config, "trainer.max_steps"), get(config, "trainer.max_epochs")
    if _is_number(steps) and steps > 0:
        yield Param("trainer.max_steps", max(1, steps // 3), steps * 3, log=True, integer=True)
    elif _is_number(epochs) and epochs > 0:
        yield Param("trainer.max_epochs", max(1, epochs // 3), epochs * 3, log=True, integer=True)
    for key in ("model.blr", "model.optimizer.init_args.lr"):
        lr = get(config, key)
        if _is_number(lr) and lr > 0:
            yield Param(key, lr / 5, lr * 5, log=True)
            break
    encoder = _defaults(get(config, "model.encoder"))
    width, heads, depth = encoder.get("embed_dim"), encoder.get("num_heads"), encoder.get("depth")
    if isinstance(width, int) and isinstance(heads, int) and heads > 0:
        widths = tuple(w for w in (width // 2, width, width * 2) if w % heads == 0 and (w // heads) % 2 == 0)
        if len(widths) > 1:
            yield Param("model.encoder.init_args.embed_dim", choices=widths)
    if isinstance(depth, int) and depth > 0:
        yield Param("model.encoder.init_args.depth", max(1, depth - 2), depth + 2, integer=True)
    tokenizer = _defaults(get(config, "model.tokenizer"))
    for name, cuts in (("patch_size", "image_size"), ("patch_len", "length")):
        size = tokenizer.get(name)
        if isinstance(size, int) and not isinstance(size, bool):
            sizes = _sizes(size, tokenizer.get(cuts))
            if len(sizes) > 1:
                yield Param(f"model.tokenizer.init_args.{name}", choices=sizes)
    data = _defaults(get(config, "data"))
    crop_scale = data.get("crop_scale")
    if isinstance(crop_scale, (list, tuple)) and len(crop_scale) == 2:
        yield Param("data.init_args.crop_scale", choices=([0.2, 1.0], [0.5, 1.0], [0.8, 1.0]))
    for name, (low, high) in AUGMENTATION.items():
        if _is_number(data.get(name)):
            yield Param(f"data.init_args.{name}", low, high)
    for name, (low, high) in MASKS.items():
        if _is_number(data.get(name)):
            yield Param(f"data.init_args.{name}", low, high, integer=True)


def default_space(config: dict[str, Any]) -> list[Param]:
    """The settings of ``config`` a study varies by default (see the module's docstring)."""
    return list(_space_items(config))


def read_space(entries: Any) -> list[Param]:
    """A space file's entries (a YAML list of mappings) as parameters."""
    if not isinstance(entries, list) or not entries:
        raise ConfigError("tune --space: expected a YAML list of {key, low, high[, log, int]} or {key, choices}")
    space = []
    for entry in entries:
        if not isinstance(entry, dict) or "key" not in entry:
            raise ConfigError(f"tune --space: every entry needs a key, got {entry!r}")
        unknown = set(entry) - {"key", "low", "high", "log", "int", "choices"}
        if unknown:
            raise ConfigError(f"tune --space: {entry['key']}: unknown fields {sorted(unknown)}")
        choices = entry.get("choices") or ()
        if choices and not isinstance(choices, list):
            raise ConfigError(f"tune --space: {entry['key']}: choices must be a list")
        low, high = entry.get("low"), entry.get("high")
        for name, value in (("low", low), ("high", high)):
            if value is not None and not _is_number(value):
                raise ConfigError(f"tune --space: {entry['key']}: {name} must be a number, got {value!r}")
        integer = bool(entry.get("int", False)) or (
            not choices and isinstance(low, int) and isinstance(high, int) and not entry.get("log")
        )
        space.append(Param(str(entry["key"]), low, high, bool(entry.get("log", False)), integer, tuple(choices)))
    return space


def grid_size(space: list[Param]) -> float:
    """How many recipes the space holds (``inf`` with a continuous range): a study stops when it has tried them
    all."""
    total = 1.0
    for param in space:
        if param.choices:
            total *= len(param.choices)
        elif param.integer and param.low is not None and param.high is not None:
            total *= int(param.high) - int(param.low) + 1
        else:
            return math.inf
    return total
