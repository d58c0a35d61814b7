"""Export a spectrogram ViT encoder as a ``timm`` Vision Transformer over a one-channel ``T x F`` image, as Audio-MAE
fine-tunes it: ``timm.create_model("vit_base_patch16_224", pretrained=False, img_size=(T, F), in_chans=1, ...)`` then
``load_state_dict`` strict. Our blocks are timm's; the token embedding (a linear map of ``p x p`` patches, listed
``(time, frequency)``-major) becomes timm's ``Conv2d`` over ``[1, T, F]``, and the position table gets a zero row
for the class token (ours has no position)."""

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

import anymae
from anymae import PretrainedEncoder

from .tokenizers import SpectrogramPatchTokenizer

__all__ = ["TimmAudioViTExporter", "create_timm_audio_vit", "timm_audio_vit_config", "timm_audio_vit_state_dict"]


def _timm(encoder: PretrainedEncoder) -> tuple[dict[str, Any], dict[str, Tensor]]:
    tokenizer, vit = encoder.tokenizer, encoder.encoder
    p, d = tokenizer.patch_size, vit.embed_dim  # one channel: our token is the patch's p * p values, row-major
    size = [tokenizer.target_length, tokenizer.num_mel_bins]
    return anymae.timm_vit_export(encoder, vit.token_embed.weight.reshape(d, 1, p, p), size)


def timm_audio_vit_config(encoder: PretrainedEncoder) -> dict[str, Any]:
    """``timm.create_model`` keyword arguments for an equivalent ViT (features only: ``num_classes=0``)."""
    return _timm(encoder)[0]


def timm_audio_vit_state_dict(encoder: PretrainedEncoder) -> dict[str, Tensor]:
    """Our encoder's weights under timm's ``VisionTransformer`` keys."""
    return _timm(encoder)[1]


def create_timm_audio_vit(folder: str | Path) -> torch.nn.Module:
    """The timm model written by ``anymae export --format timm`` for a spectrogram encoder, weights loaded."""
    return anymae.load_timm_export(folder)[0]


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
        if any(abs(m.eps - 1e-6) > 1e-12 for m in vit.modules() if isinstance(m, torch.nn.LayerNorm)):
            raise ValueError("timm's ViT uses LayerNorm eps 1e-6; this encoder uses another")

    def export(self, encoder: PretrainedEncoder, out: Path) -> list[Path]:
        return anymae.write_timm_export(*_timm(encoder), out, "timm_vit")
