"""``anymae export``: a pretrained encoder as safetensors weights plus its configuration, and in other libraries'
formats through the exporters plugins register.

    anymae export lightning_logs/version_0/checkpoints/last.ckpt --out exported/ --format timm

The folder reads back with ``anymae.load_encoder("exported/")``.
"""

import argparse
from collections.abc import Sequence
from pathlib import Path

import torch

from ..evaluation.export import export_encoder
from ..model.pretrained import load_encoder, resolve_checkpoint
from ..plugins.loader import get_plugins

__all__ = ["run"]


def run(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        allow_abbrev=False, prog="anymae export", description=__doc__.split("\n\n")[0].replace("``", "")
    )
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
