"""Export a video ViT encoder for timm (``anymae export --format timm``): timm has no 3-D patch embedding, so the clip
is laid out as an image that timm's 2-D ``VisionTransformer`` reads exactly as our tubelet tokenizer does.

A clip ``[B, C, T, H, W]`` of ``n = T / t`` tubelets is rearranged to ``[B, C * t, n * H, W]``: the ``t`` frames of a
tubelet become channels, and the ``n`` tubelets are stacked vertically. A ``Conv2d`` patch embedding over ``C * t``
channels then sees each ``t x p x p`` tubelet as one ``p x p`` patch, and timm's row-major patch order (``n * H / p``
rows of ``W / p``) is our ``(n, H / p, W / p)`` token order, so the position table and the blocks carry over unchanged
and ``timm.create_model(..., pretrained=False, **kwargs)`` loads the weights with ``strict=True``.
:func:`create_timm_video_vit` rebuilds it with the rearrangement in front (:class:`TimmVideoViT`).
"""

from pathlib import Path
from typing import Any

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


def _timm(encoder: PretrainedEncoder) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """timm's arguments and state dict, the tubelet embedding as a ``Conv2d`` over ``C * t`` channels (channel
    ``c * t + dt``, as :func:`clip_as_image` lays them out)."""
    tokenizer, vit = encoder.tokenizer, encoder.encoder
    (ph, pw), c, t, d = tokenizer.patch_size, tokenizer.in_chans, tokenizer.tubelet_size, vit.embed_dim
    # our token: (t, p, p, C) values, channel last (anymae.patchify)
    weight = vit.token_embed.weight.reshape(d, t, ph, pw, c).permute(0, 4, 1, 2, 3).reshape(d, c * t, ph, pw)
    n, (h, w) = tokenizer.num_frames // t, tokenizer.image_size
    return anymae.timm_vit_export(encoder, weight, (n * h, w))


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
    vit, spec = anymae.load_timm_export(folder, "timm_video_vit")
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
        return anymae.write_timm_export(*_timm(encoder), out, "timm_video_vit", tubelet=encoder.tokenizer.tubelet_size)
