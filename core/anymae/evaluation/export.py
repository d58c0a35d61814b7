"""Exporting a pretrained encoder: safetensors weights plus its configuration (:func:`export_encoder`, read back with
``anymae.load_encoder("exported/")``), and other libraries' formats through :class:`Exporter` classes that plugins
register (the image plugin's ``timm`` exporter writes a ``timm`` ViT). ``anymae export`` runs them.
"""

from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar

import yaml

from ..config import component_config
from ..model.pretrained import PretrainedEncoder

__all__ = ["Exporter", "export_encoder"]


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
