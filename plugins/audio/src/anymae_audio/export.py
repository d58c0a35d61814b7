"""Export a spectrogram ViT encoder as a ``timm`` Vision Transformer over a one-channel ``T x F`` image, as Audio-MAE
fine-tunes it: ``timm.create_model("vit_base_patch16_224", pretrained=False, img_size=(T, F), in_chans=1, ...)`` then
``load_state_dict`` strict. Our blocks are timm's; the token embedding (a linear map of ``p x p`` patches, listed
``(time, frequency)``-major) becomes timm's ``Conv2d`` over ``[1, T, F]``, and the position table gets a zero row
for the class token (ours has no position)."""

import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

import anymae
from anymae import PretrainedEncoder

from .tokenizers import SpectrogramPatchTokenizer

__all__ = ["TimmAudioViTExporter", "create_timm_audio_vit", "timm_audio_vit_config", "timm_audio_vit_state_dict"]

#: the timm model the files name (its architecture is rebuilt from the keyword arguments)
TIMM_MODEL = "vit_base_patch16_224"


def timm_audio_vit_config(encoder: PretrainedEncoder) -> dict[str, Any]:
    """``timm.create_model`` keyword arguments for an equivalent ViT (features only: ``num_classes=0``)."""
    tokenizer, vit = encoder.tokenizer, encoder.encoder
    block = vit.blocks[0]
    return {
        "img_size": [tokenizer.target_length, tokenizer.num_mel_bins],
        "patch_size": tokenizer.patch_size,
        "in_chans": 1,
        "embed_dim": vit.embed_dim,
        "depth": len(vit.blocks),
        "num_heads": block.attn.num_heads,
        "mlp_ratio": block.mlp.fc1.out_features / vit.embed_dim,
        "qkv_bias": block.attn.qkv.bias is not None,
        "class_token": vit.cls_token is not None,
        "global_pool": "token" if vit.cls_token is not None else "avg",
        "fc_norm": False,  # our final LayerNorm is per token, also with average pooling
        "num_classes": 0,
    }


def timm_audio_vit_state_dict(encoder: PretrainedEncoder) -> dict[str, Tensor]:
    """Our encoder's weights under timm's ``VisionTransformer`` keys."""
    tokenizer, vit = encoder.tokenizer, encoder.encoder
    p, d = tokenizer.patch_size, vit.embed_dim
    grid = tokenizer.layout.shape
    cells, device = grid[0] * grid[1], vit.token_embed.weight.device  # the table is computed where the weights are
    tokens = anymae.TokenBatch(torch.zeros(1, cells, 1, device=device), anymae.GridLayout(grid))
    table = vit.pos_embed(tokens, torch.arange(cells, device=device)[None])[0]
    if vit.cls_token is not None:
        table = torch.cat([table.new_zeros(1, d), table], dim=0)  # the class token gets no position
    state = {
        "patch_embed.proj.weight": vit.token_embed.weight.reshape(d, 1, p, p),
        "patch_embed.proj.bias": vit.token_embed.bias,
        "pos_embed": table[None],
        **{f"blocks.{k}": v for k, v in vit.blocks.state_dict().items()},
        "norm.weight": vit.norm.weight,
        "norm.bias": vit.norm.bias,
    }
    if vit.cls_token is not None:
        state["cls_token"] = vit.cls_token
    return {k: v.detach().contiguous().clone() for k, v in state.items()}


def create_timm_audio_vit(folder: str | Path) -> torch.nn.Module:
    """The timm model written by ``anymae export --format timm`` for a spectrogram encoder, weights loaded."""
    import timm
    from safetensors.torch import load_file

    folder = Path(folder)
    spec = json.loads((folder / "timm_vit.json").read_text())
    model = timm.create_model(spec["model"], pretrained=False, **spec["kwargs"])
    model.load_state_dict(load_file(folder / "timm_vit.safetensors"), strict=True)
    return model.eval()


class TimmAudioViTExporter(anymae.Exporter):
    """``--format timm`` for spectrogram encoders: ``timm_vit.safetensors`` and ``timm_vit.json`` (the model name and
    keyword arguments); read back with :func:`create_timm_audio_vit`. Non-overlapping patches only (timm's patch
    embedding has no stride of its own)."""

    format = "timm"

    def check(self, encoder: PretrainedEncoder) -> None:
        tokenizer, vit = encoder.tokenizer, encoder.encoder
        if not isinstance(tokenizer, SpectrogramPatchTokenizer) or not isinstance(vit, anymae.ViTEncoder):
            raise ValueError("the timm format for audio needs a SpectrogramPatchTokenizer with a ViTEncoder")
        if tokenizer.stride != tokenizer.patch_size:
            raise ValueError(
                f"timm's ViT cuts non-overlapping patches; this tokenizer steps {tokenizer.stride} for "
                f"{tokenizer.patch_size}-wide patches"
            )
        if vit.pos_every_block:
            raise ValueError("timm's ViT adds positions once; this encoder adds them before every block")
        if getattr(vit, "fc_norm", None) is not None:
            raise ValueError("this encoder normalises its pooled feature (fc_norm); the audio timm export writes norm")
        if any(abs(m.eps - 1e-6) > 1e-12 for m in vit.modules() if isinstance(m, torch.nn.LayerNorm)):
            raise ValueError("timm's ViT uses LayerNorm eps 1e-6; this encoder uses another")

    def export(self, encoder: PretrainedEncoder, out: Path) -> list[Path]:
        from safetensors.torch import save_file

        save_file(timm_audio_vit_state_dict(encoder), out / "timm_vit.safetensors")
        spec = {"model": TIMM_MODEL, "kwargs": timm_audio_vit_config(encoder)}
        (out / "timm_vit.json").write_text(json.dumps(spec, indent=2))
        return [out / "timm_vit.safetensors", out / "timm_vit.json"]
