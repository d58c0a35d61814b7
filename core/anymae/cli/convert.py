"""``anymae convert``: a published checkpoint (or one of ours) as an anymae folder that every command reads.

    anymae convert mae_visualize_vit_base.pth --out mae-base/

The folder holds ``encoder.safetensors`` (tokenizer and encoder), ``decoder.safetensors`` where the file has a
decoder (with any weights of the masker and target), and ``config.yaml`` (the parts, with the sizes read from the
file). One line each says what was mapped, what was left out (a classifier head) and what is missing (a decoder the
file does not hold).
"""

from collections.abc import Sequence
from pathlib import Path

import torch
import yaml
from safetensors.torch import save_file

from ..config import component_config
from ..evaluation.export import export_encoder
from ..model.pretrained import PretrainedEncoder, build_encoder
from ..training.imported import build_model
from ..training.weights import read_model_weights
from .parser import command_parser

__all__ = ["run"]


def run(argv: Sequence[str]) -> int:
    parser = command_parser("convert", __doc__)
    parser.add_argument("source", help="a published file or folder (MAE, HuggingFace, VideoMAE, ...) or a checkpoint")
    parser.add_argument("--out", type=Path, required=True, help="the anymae folder to write")
    options = parser.parse_args(argv)
    imported = read_model_weights(options.source)
    for line in imported.report():
        print(line)
    with torch.no_grad():
        if "decoder" in imported.parts:  # the whole model: built and checked before anything is written
            model = build_model(imported, str(options.source))
            written = export_encoder(PretrainedEncoder(model.tokenizer, model.encoder), options.out)
            rest = {k: v.detach().contiguous() for k, v in model.state_dict().items()}  # decoder, masker, target
            rest = {k: v for k, v in rest.items() if k.startswith(("decoder.", "masker.", "target."))}
            save_file(rest, options.out / "decoder.safetensors")
            config = yaml.safe_load((options.out / "config.yaml").read_text())
            config.update({p: component_config(getattr(model, p)) for p in ("decoder", "target", "masker")})
            (options.out / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
            written.append(options.out / "decoder.safetensors")
        else:
            encoder = build_encoder(imported.parts, imported.state, str(options.source))
            written = export_encoder(encoder, options.out)
    for file in written:
        print(f"wrote {file}")
    return 0
