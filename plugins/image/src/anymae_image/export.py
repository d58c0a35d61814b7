"""Export an image MAE encoder as a ``timm`` Vision Transformer: ``timm.create_model(name, **kwargs)`` then
``load_state_dict`` with matching keys, strict. Our blocks are timm's, so only the patch embedding (a linear map of
``(p, p, C)`` patches here, a ``Conv2d`` there) and the position table (timm's has a row for the class token) are
rewritten."""

import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

import anymae
from anymae import PretrainedEncoder

from .tokenizers import ImagePatchTokenizer

__all__ = ["TimmViTExporter", "create_timm_vit", "timm_vit_config", "timm_vit_state_dict"]


def timm_vit_config(encoder: PretrainedEncoder) -> dict[str, Any]:
    """``timm.create_model`` keyword arguments for an equivalent ViT (features only: ``num_classes=0``)."""
    tokenizer, vit = encoder.tokenizer, encoder.encoder
    block = vit.blocks[0]
    return {
        "img_size": list(tokenizer.image_size),
        "patch_size": list(tokenizer.patch_size),
        "in_chans": tokenizer.in_chans,
        "embed_dim": vit.embed_dim,
        "depth": len(vit.blocks),
        "num_heads": block.attn.num_heads,
        "mlp_ratio": block.mlp.fc1.out_features / vit.embed_dim,
        "qkv_bias": block.attn.qkv.bias is not None,
        "class_token": vit.cls_token is not None,
        "global_pool": "token" if vit.cls_token is not None else "avg",
        "fc_norm": False,  # our final LayerNorm stays where it is, also with average pooling
        "num_classes": 0,
    }


def timm_vit_state_dict(encoder: PretrainedEncoder) -> dict[str, Tensor]:
    """Our encoder's weights under timm's ``VisionTransformer`` keys."""
    tokenizer, vit = encoder.tokenizer, encoder.encoder
    (ph, pw), c, d = tokenizer.patch_size, tokenizer.in_chans, vit.embed_dim
    grid = tokenizer.layout.shape
    table = vit.pos_embed(
        anymae.TokenBatch(torch.zeros(1, grid[0] * grid[1], 1), anymae.GridLayout(grid)),
        torch.arange(grid[0] * grid[1])[None],
    )[0]
    if vit.cls_token is not None:
        table = torch.cat([torch.zeros(1, d), table], dim=0)  # the class token gets no position
    state = {
        "patch_embed.proj.weight": vit.token_embed.weight.reshape(d, ph, pw, c).permute(0, 3, 1, 2),
        "patch_embed.proj.bias": vit.token_embed.bias,
        "pos_embed": table[None],
        **{f"blocks.{k}": v for k, v in vit.blocks.state_dict().items()},
        "norm.weight": vit.norm.weight,
        "norm.bias": vit.norm.bias,
    }
    if vit.cls_token is not None:
        state["cls_token"] = vit.cls_token
    return {k: v.detach().contiguous().clone() for k, v in state.items()}


def create_timm_vit(folder: str | Path) -> torch.nn.Module:
    """The timm model written by ``anymae export --format timm`` into ``folder``, weights loaded."""
    import timm
    from safetensors.torch import load_file

    folder = Path(folder)
    spec = json.loads((folder / "timm_vit.json").read_text())
    model = timm.create_model(spec["model"], pretrained=False, **spec["kwargs"])
    model.load_state_dict(load_file(folder / "timm_vit.safetensors"), strict=True)
    return model.eval()


class TimmViTExporter(anymae.Exporter):
    """``--format timm``: ``timm_vit.safetensors`` and ``timm_vit.json`` (the model name and keyword arguments);
    read back with :func:`create_timm_vit`."""

    format = "timm"

    def check(self, encoder: PretrainedEncoder) -> None:
        if not isinstance(encoder.tokenizer, ImagePatchTokenizer) or not isinstance(encoder.encoder, anymae.ViTEncoder):
            raise ValueError("the timm format needs an ImagePatchTokenizer with a ViTEncoder")
        if any(abs(m.eps - 1e-6) > 1e-12 for m in encoder.encoder.modules() if isinstance(m, torch.nn.LayerNorm)):
            raise ValueError("timm's ViT uses LayerNorm eps 1e-6; this encoder uses another")

    def export(self, encoder: PretrainedEncoder, out: Path) -> list[Path]:
        from safetensors.torch import save_file

        save_file(timm_vit_state_dict(encoder), out / "timm_vit.safetensors")
        spec = {"model": "vit_base_patch16_224", "kwargs": timm_vit_config(encoder)}
        (out / "timm_vit.json").write_text(json.dumps(spec, indent=2))
        return [out / "timm_vit.safetensors", out / "timm_vit.json"]
