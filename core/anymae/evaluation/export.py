"""Exporting a pretrained encoder: safetensors weights plus its configuration (:func:`export_encoder`, read back with
``anymae.load_encoder("exported/")``), and other libraries' formats through :class:`Exporter` classes that plugins
register (the image plugin's ``timm`` exporter writes a ``timm`` ViT). ``anymae export`` runs them.
"""

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml

from ..config import component_config
from ..model.pretrained import PretrainedEncoder

__all__ = ["Exporter", "export_encoder"]


class Exporter(ABC):
    """Writes a :class:`~anymae.evaluation.PretrainedEncoder` (or, with ``reads = "model"``, a whole
    :class:`~anymae.MaskedAutoencoder`: a format with the decoder, as HuggingFace's ``ViTMAEForPreTraining``) in
    another library's format.

    Attributes:
        format: the name given to ``anymae export --format``.
        reads: what :meth:`check` and :meth:`export` receive: ``"encoder"`` a ``PretrainedEncoder``, ``"model"`` the
            ``MaskedAutoencoder`` of an ``anymae fit`` checkpoint (or of a converted folder with a decoder).
    """

    format: ClassVar[str]
    reads: ClassVar[Literal["encoder", "model"]] = "encoder"

    @abstractmethod
    def check(self, encoder: Any) -> None:
        """Raise ``ValueError`` saying why this encoder (or model) cannot be written in this format."""

    @abstractmethod
    def export(self, encoder: Any, out: Path) -> list[Path]:
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
