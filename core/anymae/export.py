"""``anymae export``: a pretrained encoder as safetensors weights plus its configuration, and in other libraries'
formats through exporters that plugins register (the image plugin's ``timm`` exporter writes a ``timm`` ViT).

    anymae export lightning_logs/version_0/checkpoints/last.ckpt --out exported/ --format timm

The folder reads back with ``anymae.load_encoder("exported/")``.
"""

import argparse
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import torch
import yaml

from .config import component_config
from .evaluation.encoder import PretrainedEncoder, load_encoder, resolve_checkpoint

__all__ = ["Exporter", "export_command", "export_encoder"]


class Exporter(ABC):
    """Writes a :class:`~anymae.evaluation.PretrainedEncoder` in another library's format.

    Attributes:
        format: the name given to ``anymae export --format``.
    """

    format: ClassVar[str]

    @abstractmethod
    def check(self, encoder: PretrainedEncoder) -> None:
        """Raise ``ValueError`` saying why this encoder cannot be written in this format."""

    @abstractmethod
    def export(self, encoder: PretrainedEncoder, out: Path) -> list[Path]:
        """Write the files into ``out``; return their paths."""


def export_encoder(encoder: PretrainedEncoder, out: Path) -> list[Path]:
    """``encoder.safetensors`` (tokenizer and encoder weights) and ``config.yaml`` (their configuration)."""
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in encoder.state_dict().items()}
    save_file(state, out / "encoder.safetensors")
    config = {"tokenizer": component_config(encoder.tokenizer), "encoder": component_config(encoder.encoder)}
    (out / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return [out / "encoder.safetensors", out / "config.yaml"]


def export_command(argv: Sequence[str]) -> int:
    from .plugins import get_plugins

    parser = argparse.ArgumentParser(prog="anymae export", description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", help="an anymae fit checkpoint, or 'latest'")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--format", action="append", default=[], help="also write this format (e.g. timm)")
    options = parser.parse_args(argv)
    exporters = {c.cls.format: c.cls for c in get_plugins().registry.of_kind("exporter")}
    unknown = [f for f in options.format if f not in exporters]
    if unknown:
        parser.error(f"unknown format {', '.join(unknown)}; installed: {', '.join(sorted(exporters)) or 'none'}")
    path = resolve_checkpoint(options.checkpoint)
    encoder = load_encoder(path)
    with torch.no_grad():
        written = export_encoder(encoder, options.out)
        for name in options.format:
            exporter = exporters[name]()
            exporter.check(encoder)
            written += exporter.export(encoder, options.out)
    for file in written:
        print(f"wrote {file}")
    return 0
