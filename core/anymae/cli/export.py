"""``anymae export``: a pretrained encoder as safetensors weights plus its configuration, and in other libraries'
formats through the exporters plugins register.

    anymae export lightning_logs/version_0/checkpoints/last.ckpt --out exported/ --format timm
    anymae export lightning_logs/version_0/checkpoints/last.ckpt --out hf/ --format hf   # with the decoder

The folder reads back with ``anymae.load_encoder("exported/")``. A format that holds the decoder (HuggingFace's
``ViTMAEForPreTraining``) reads the whole model: an ``anymae fit`` checkpoint, or a converted folder with a decoder.
"""

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ..config import ConfigError
from ..evaluation.export import Exporter, export_encoder
from ..model.pretrained import PretrainedEncoder, load_encoder, resolve_checkpoint
from ..plugins.loader import get_plugins
from ..training.imported import load_model
from ..training.module import MaskedAutoencoder
from .parser import command_parser

__all__ = ["run"]


def run(argv: Sequence[str]) -> int:
    parser = command_parser("export", __doc__)
    parser.add_argument("checkpoint", help="an anymae fit checkpoint, a converted or published file, or 'latest'")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--format", action="append", default=[], help="also write this format (timm, hf)")
    options = parser.parse_args(argv)
    exporters: dict[str, list[type[Exporter]]] = {}  # a format's exporters, one per modality (timm: image, audio)
    for component in get_plugins().registry.of_kind("exporter"):
        exporters.setdefault(component.cls.format, []).append(component.cls)
    unknown = [f for f in options.format if f not in exporters]
    if unknown:
        parser.error(f"unknown format {', '.join(unknown)}; installed: {', '.join(sorted(exporters)) or 'none'}")
    path = resolve_checkpoint(options.checkpoint)
    encoder = load_encoder(path)
    reads_model = any(e.reads == "model" for name in options.format for e in exporters[name])
    model = load_model(path) if reads_model else None
    with torch.no_grad():
        written = export_encoder(encoder, options.out)
        for name in options.format:
            exporter, source = _first_that_fits(name, exporters[name], encoder, model)
            written += exporter.export(source, options.out)
    for file in written:
        print(f"wrote {file}")
    return 0


def _first_that_fits(
    name: str, candidates: list[type[Exporter]], encoder: PretrainedEncoder, model: MaskedAutoencoder | None
) -> tuple[Exporter, Any]:
    """The first exporter of the format that can write this encoder (or model), and what it reads; else one line with
    each one's reason."""
    reasons = []
    for cls in candidates:
        exporter = cls()
        source = model if exporter.reads == "model" else encoder
        try:
            exporter.check(source)
        except ValueError as error:
            reasons.append(str(error))
            continue
        return exporter, source
    raise ConfigError(f"--format {name}: {'; '.join(dict.fromkeys(reasons))}")
