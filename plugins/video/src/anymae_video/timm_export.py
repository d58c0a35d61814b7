"""Export a video ViT encoder for timm (``anymae export --format timm``): timm has no 3-D patch embedding, so the clip
is laid out as an image that timm's 2-D ``VisionTransformer`` reads exactly as our tubelet tokenizer does.

A clip ``[B, C, T, H, W]`` of ``n = T / t`` tubelets is rearranged to ``[B, C * t, n * H, W]``: the ``t`` frames of a
tubelet become channels, and the ``n`` tubelets are stacked vertically. A ``Conv2d`` patch embedding over ``C * t``
channels then sees each ``t x p x p`` tubelet as one ``p x p`` patch, and timm's row-major patch order (``n * H / p``
rows of ``W / p``) is our ``(n, H / p, W / p)`` token order, so the position table and the blocks carry over unchanged
and ``timm.create_model(..., pretrained=False, **kwargs)`` loads the weights with ``strict=True``.
:func:`create_timm_video_vit` rebuilds it with the rearrangement in front (:class:`TimmVideoViT`).
"""

import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

import anymae
from anymae import PretrainedEncoder

from .tokenizers import VideoTubeletTokenizer

__all__ = ["TimmVideoViT", "TimmVideoViTExporter", "clip_as_image", "create_timm_video_vit"]


def clip_as_image(clips: Tensor, tubelet: int) -> Tensor:
    """``[B, C, T, H, W]`` -> ``[B, C * t, (T / t) * H, W]``: each tubelet's frames as channels, the tubelets stacked
    vertically."""
    b, c, frames, h, w = clips.shape
    return clips.view(b, c, frames // tubelet, tubelet, h, w).transpose(2, 3).reshape(b, c * tubelet, -1, w)


def timm_video_config(encoder: PretrainedEncoder) -> dict[str, Any]:
    """``timm.create_model`` keyword arguments of the 2-D ViT (features only)."""
    tokenizer, vit = encoder.tokenizer, encoder.encoder
    n, (h, w), t = tokenizer.num_frames // tokenizer.tubelet_size, tokenizer.image_size, tokenizer.tubelet_size
    block = vit.blocks[0]
    avg = vit.cls_token is None or vit.fc_norm is not None
    return {
        "img_size": [n * h, w],
        "patch_size": list(tokenizer.patch_size),
        "in_chans": tokenizer.in_chans * t,
        "embed_dim": vit.embed_dim,
        "depth": len(vit.blocks),
        "num_heads": block.attn.num_heads,
        "mlp_ratio": block.mlp.fc1.out_features / vit.embed_dim,
        "qkv_bias": block.attn.qkv.bias is not None,
        "class_token": vit.cls_token is not None,
        "global_pool": "avg" if avg else "token",
        "fc_norm": vit.fc_norm is not None,
        "num_classes": 0,
    }


def timm_video_state_dict(encoder: PretrainedEncoder) -> dict[str, Tensor]:
    """Our encoder's weights under timm's ``VisionTransformer`` keys, the tubelet embedding as a ``Conv2d`` over
    ``C * t`` channels (channel ``c * t + dt``, as :func:`clip_as_image` lays them out)."""
    tokenizer, vit = encoder.tokenizer, encoder.encoder
    (ph, pw), c, t, d = tokenizer.patch_size, tokenizer.in_chans, tokenizer.tubelet_size, vit.embed_dim
    grid = tokenizer.layout.shape
    cells = int(torch.tensor(grid).prod())
    dummy = anymae.TokenBatch(torch.zeros(1, cells, 1), anymae.GridLayout(grid))
    table = vit.pos_embed(dummy, torch.arange(cells)[None])[0]  # [cells, D], our token order
    if vit.cls_token is not None:
        table = torch.cat([torch.zeros(1, d), table])  # the class token gets no position
    # our token: (t, p, p, C) values, channel last (anymae.patchify)
    weight = vit.token_embed.weight.reshape(d, t, ph, pw, c).permute(0, 4, 1, 2, 3).reshape(d, c * t, ph, pw)
    state = {
        "patch_embed.proj.weight": weight,
        "patch_embed.proj.bias": vit.token_embed.bias,
        "pos_embed": table[None],
        **{f"blocks.{k}": v for k, v in vit.blocks.state_dict().items()},
    }
    norm = "fc_norm" if vit.fc_norm is not None else "norm"
    state |= {f"{norm}.weight": getattr(vit, norm).weight, f"{norm}.bias": getattr(vit, norm).bias}
    if vit.cls_token is not None:
        state["cls_token"] = vit.cls_token
    return {k: v.detach().contiguous().clone() for k, v in state.items()}


class TimmVideoViT(nn.Module):
    """timm's 2-D ViT behind :func:`clip_as_image`: ``forward(clips)`` gives timm's pooled features,
    ``forward_features(clips)`` its tokens."""

    def __init__(self, vit: nn.Module, tubelet: int) -> None:
        super().__init__()
        self.vit, self.tubelet = vit, tubelet

    def forward_features(self, clips: Tensor) -> Tensor:
        return self.vit.forward_features(clip_as_image(clips, self.tubelet))  # type: ignore[operator]

    def forward(self, clips: Tensor) -> Tensor:
        return self.vit(clip_as_image(clips, self.tubelet))  # type: ignore[no-any-return]


def create_timm_video_vit(folder: str | Path) -> TimmVideoViT:
    """The timm model ``anymae export --format timm`` wrote into ``folder`` (weights loaded strictly), behind the
    clip-to-image rearrangement."""
    import timm
    from safetensors.torch import load_file

    folder = Path(folder)
    spec = json.loads((folder / "timm_video_vit.json").read_text())
    vit = timm.create_model(spec["model"], pretrained=False, **spec["kwargs"])
    vit.load_state_dict(load_file(folder / "timm_video_vit.safetensors"), strict=True)
    return TimmVideoViT(vit, spec["tubelet"]).eval()


class TimmVideoViTExporter(anymae.Exporter):
    """``--format timm`` for a video encoder: ``timm_video_vit.safetensors`` and ``timm_video_vit.json`` (model name,
    keyword arguments and the tubelet size the clip is rearranged by); read back with :func:`create_timm_video_vit`."""

    format = "timm"

    def check(self, encoder: PretrainedEncoder) -> None:
        tokenizer, vit = encoder.tokenizer, encoder.encoder
        if not isinstance(tokenizer, VideoTubeletTokenizer) or not isinstance(vit, anymae.ViTEncoder):
            raise ValueError("the timm format for video needs a VideoTubeletTokenizer with a ViTEncoder")
        if vit.pos_every_block:
            raise ValueError("timm's ViT adds positions once; this encoder adds them before every block")
        if any(abs(m.eps - 1e-6) > 1e-12 for m in vit.modules() if isinstance(m, nn.LayerNorm)):
            raise ValueError("timm's ViT uses LayerNorm eps 1e-6; this encoder uses another")

    def export(self, encoder: PretrainedEncoder, out: Path) -> list[Path]:
        from safetensors.torch import save_file

        save_file(timm_video_state_dict(encoder), out / "timm_video_vit.safetensors")
        spec = {"model": "vit_base_patch16_224", "kwargs": timm_video_config(encoder)}
        spec["tubelet"] = encoder.tokenizer.tubelet_size
        (out / "timm_video_vit.json").write_text(json.dumps(spec, indent=2))
        return [out / "timm_video_vit.safetensors", out / "timm_video_vit.json"]
