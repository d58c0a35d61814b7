"""Weights published by other code bases, read from local files as they are shipped (nothing is downloaded).

A :class:`WeightsReader` knows one format (facebookresearch/mae's ``.pth``, a HuggingFace folder, MCG-NJU VideoMAE's
``.pth``, ...): it recognises a file from its contents (:meth:`~WeightsReader.detect`) and maps it
(:meth:`~WeightsReader.read`) to the anymae parts it describes, their configuration with the sizes taken from the
file, and their weights under our names, as :class:`ImportedWeights`. Plugins register readers for their modality
(``registry.add(MyReader)``); :func:`read_weights` asks each in turn. ``anymae.load_encoder``, the evaluation
commands, ``TeacherFeatureTarget``, ``MaskedAutoencoder(init_from=...)`` and ``anymae convert`` read through it.

Files are read with :func:`load_checkpoint` (``torch.load(weights_only=True, mmap=True)``: a pickled object is refused,
in one line, as for every checkpoint anymae reads) or safetensors, so a large file is not copied into memory before
its tensors are used.
"""

import argparse
import pickle
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, ClassVar

import torch
from torch import Tensor

from ..config import ConfigError

__all__ = ["ImportedWeights", "WeightsFile", "WeightsReader", "load_checkpoint", "read_anymae_folder", "read_weights"]

#: where checkpoints nest their state dict, outermost first (timm, DeiT and MAE: "model"; Lightning: "state_dict";
#: Point-MAE: "base_model"; DDP: "module")
NESTING = ("model", "state_dict", "base_model", "module", "net")


@dataclass(frozen=True)
class WeightsFile:
    """What a reader sees of a file or folder: ``contents`` (the loaded object of a ``.pth``/``.ckpt``/``.bin``, or
    ``{"state_dict": ...}`` for a ``.safetensors`` file), ``config`` (a HuggingFace folder's ``config.json``)."""

    path: Path
    contents: Mapping[str, Any]
    config: Mapping[str, Any] | None = None

    @property
    def tensors(self) -> dict[str, Tensor]:
        """The file's state dict: the tensors at the top level, or under the first of :data:`NESTING` that holds
        tensors (a DDP ``module.`` prefix dropped)."""
        contents: Any = self.contents
        for key in NESTING:
            inner = contents.get(key) if isinstance(contents, Mapping) else None
            if isinstance(inner, Mapping) and any(isinstance(v, Tensor) for v in inner.values()):
                contents = inner
                break
        state = {k: v for k, v in contents.items() if isinstance(v, Tensor)} if isinstance(contents, Mapping) else {}
        if state and all(k.startswith("module.") for k in state):
            state = {k.removeprefix("module."): v for k, v in state.items()}
        return state


@dataclass
class ImportedWeights:
    """A published file mapped to anymae parts.

    Attributes:
        source: what the file is, in words (``"facebookresearch/mae ViT-B/16 encoder"``).
        parts: the parts' configurations (``class_path``/``init_args``), sizes from the file: ``tokenizer`` and
            ``encoder`` always, ``decoder`` (with ``target`` and ``masker``, the paper's defaults) where the file holds
            a decoder.
        state: their weights under our names (``tokenizer.*``, ``encoder.*``, ``decoder.*``).
        left_out: the file's weights not mapped, in groups with why (``"head.*: a classifier head"``).
        missing: what the parts have that the file does not (``"decoder: the file holds the encoder only"``).
    """

    source: str
    parts: dict[str, Any]
    state: dict[str, Tensor]
    left_out: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    def report(self) -> list[str]:
        """One line each for what was mapped, left out and missing (``anymae convert`` prints them)."""
        groups = sorted({key.split(".")[0] for key in self.state})
        lines = [f"read {self.source}: {len(self.state)} tensors mapped ({', '.join(groups)})"]
        for name, part in self.parts.items():  # the sizes read from the file, as a config would set them
            if isinstance(part, Mapping) and "class_path" in part:
                init_args = (part.get("init_args") or {}).items()
                args = ", ".join(f"{k}={v}" for k, v in init_args if not isinstance(v, dict))
                lines.append(f"{name}: {str(part['class_path']).rsplit('.', 1)[-1]}({args})")
        lines += [f"left out: {item}" for item in self.left_out]
        lines += [f"missing: {item}" for item in self.missing]
        return lines


class WeightsReader(ABC):
    """Reads one published format.

    Attributes:
        format: a short name (``"mae"``, ``"hf-vitmae"``), said in messages.
    """

    format: ClassVar[str]

    @abstractmethod
    def detect(self, file: WeightsFile) -> bool:
        """Whether ``file`` is in this format, from its keys and config alone (no tensor read)."""

    @abstractmethod
    def read(self, file: WeightsFile) -> ImportedWeights:
        """The parts and weights ``file`` describes; :class:`~anymae.ConfigError` for a file in this format that
        cannot be mapped (naming what)."""


def open_weights(path: str | Path) -> WeightsFile:
    """A file (``.pth``, ``.pt``, ``.bin``, ``.ckpt``, ``.safetensors``) or a HuggingFace folder, loaded without
    copying its tensors (memory-mapped)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    if path.is_dir():
        import json

        try:
            config = json.loads((path / "config.json").read_text()) if (path / "config.json").is_file() else None
        except json.JSONDecodeError as error:
            raise ConfigError(f"{path / 'config.json'} is not valid JSON ({error})") from None
        weights = next((path / n for n in ("model.safetensors", "pytorch_model.bin") if (path / n).is_file()), None)
        if weights is None:
            found = ", ".join(sorted(p.name for p in path.iterdir())[:8]) or "nothing"
            raise ConfigError(f"{path}: no model.safetensors or pytorch_model.bin in the folder (found: {found})")
        return WeightsFile(path, open_weights(weights).contents, config)
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return WeightsFile(path, {"state_dict": load_file(path)})
        except (SafetensorError, OSError) as error:
            raise ConfigError(f"{path} cannot be read as safetensors ({error})") from None
    return WeightsFile(path, load_checkpoint(path, mmap=True))


def load_checkpoint(
    path: str | Path | IO[bytes], map_location: Any = "cpu", mmap: bool = False, trusted: bool = False
) -> dict[str, Any]:
    """A checkpoint's contents, read as tensors and plain data only (``torch.load(weights_only=True)``): a file that
    holds pickled Python objects, which could run code, is refused with a :class:`~anymae.ConfigError` that names it
    and what it holds, as is a file that is no checkpoint. ``trusted``: the caller vouches for the file (pickles
    run)."""
    try:  # argparse.Namespace: the training arguments many reference repositories save beside the weights (plain data)
        with torch.serialization.safe_globals([argparse.Namespace]):
            try:
                checkpoint = torch.load(path, map_location=map_location, weights_only=not trusted, mmap=mmap)
            except RuntimeError as error:  # a file of torch's legacy format (before 1.6) cannot be memory-mapped
                if not (mmap and "mmap can only be used with files saved with" in str(error)):
                    raise
                checkpoint = torch.load(path, map_location=map_location, weights_only=not trusted)
    except FileNotFoundError:
        raise
    except Exception as error:  # torch raises many kinds for a file that is no checkpoint (KeyError, EOFError...)
        what = re.search(r"GLOBAL (\S+)", str(error))
        if isinstance(error, pickle.UnpicklingError) and what:
            raise ConfigError(
                f"{path} refused: it holds a pickled Python object ({what[1]}) that could run code when loaded; "
                "anymae reads checkpoints as tensors and plain data only (every checkpoint anymae writes is one). Do "
                "not load this file unless you trust where it came from"
            ) from None
        # torch's weights-only report wraps the reason in advice (load it with weights_only=False) we do not give
        reason = [p for p in str(error).split("\n\n") if p.strip() and not p.startswith(("Weights only", "Check the"))]
        found = " ".join(f"{type(error).__name__}: {reason[0] if reason else error}".split())[:200]
        raise ConfigError(f"{path} cannot be read as a checkpoint ({found})") from None
    if not isinstance(checkpoint, dict):
        raise ConfigError(f"{path} is no checkpoint: it holds a {type(checkpoint).__name__}, not a dict")
    return checkpoint


def read_anymae_folder(path: Path) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """An ``anymae export`` or ``anymae convert`` folder: ``config.yaml`` (the parts) and the weights of
    ``encoder.safetensors``, and of ``decoder.safetensors`` where the config has a decoder (the decoder, and a
    masker's or target's own weights)."""
    import yaml
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from ..config import upgrade_class_paths

    try:
        config = yaml.safe_load((path / "config.yaml").read_text())
    except yaml.YAMLError as error:
        raise ConfigError(f"{path / 'config.yaml'} is not valid YAML ({getattr(error, 'problem', error)})") from None
    if not isinstance(config, dict) or not isinstance(config.get("encoder"), dict):
        raise ConfigError(f"{path / 'config.yaml'} records no encoder configuration")
    files = ["encoder.safetensors"] + (["decoder.safetensors"] if "decoder" in config else [])
    state: dict[str, Tensor] = {}
    for name in files:
        try:
            state.update(load_file(path / name))
        except (SafetensorError, OSError) as error:
            raise ConfigError(f"{path / name} cannot be read ({error})") from None
    return upgrade_class_paths(config), state


def read_weights(path: str | Path, readers: Iterable[type[WeightsReader]] | None = None) -> ImportedWeights:
    """The parts and weights of a published file, by the first reader (of ``readers``; by default those the installed
    plugins register) that recognises it; a file none recognises is a :class:`~anymae.ConfigError` saying what it
    holds."""
    if readers is None:
        from ..plugins.loader import get_plugins

        readers = [c.cls for c in get_plugins().registry.of_kind("reader")]
    readers = list(readers)  # asked in turn, then named
    file = open_weights(path)
    for reader in readers:
        instance = reader()
        if instance.detect(file):
            with torch.no_grad():
                return instance.read(file)
    known = ", ".join(r.format for r in readers) or "none (install the modality plugins)"
    raise ConfigError(f"{file.path}: no known weights format ({describe(file)}); formats read: {known}")


def describe(file: WeightsFile) -> str:
    """What a file holds, in a few words: its top-level keys, how many tensors, and a classifier or text tower."""
    state = file.tensors
    if not state:
        top = ", ".join(list(map(str, file.contents))[:6])
        return f"no tensors; top-level keys: {top or 'none'}"
    keys = list(state)
    hints = []
    if any(k.startswith(("head.", "fc.", "classifier.")) for k in keys):
        hints.append("a classifier head")
    if any(k.startswith(("text", "transformer.resblocks", "token_embedding")) for k in keys):
        hints.append("a text tower (a CLIP-like model)")
    shown = ", ".join(keys[:4])
    return f"{len(keys)} tensors ({shown}, ...)" + (f" with {' and '.join(hints)}" if hints else "")
