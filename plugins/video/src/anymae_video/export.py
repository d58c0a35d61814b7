"""Export a video MAE as HuggingFace transformers' ``VideoMAEForPreTraining`` (``anymae export --format hf``): a folder
with ``config.json`` and ``model.safetensors`` that ``VideoMAEForPreTraining.from_pretrained(folder)`` loads, and
that computes the loss our model computes for the same ``bool_masked_pos``.

The weights are written under the names transformers writes (``q_bias``/``v_bias``; transformers 5 renames them on
load) and the config with both ``qkv_bias`` (transformers 4) and ``qv_bias`` (5), so either version reads the folder.
Our fused ``qkv`` becomes separate query/key/value maps; the key bias, which VideoMAE has not, is dropped (exactly:
softmax is shift-invariant, so a key bias never changes attention). transformers itself is not needed to write.

What HF's VideoMAE cannot represent is refused by :meth:`HFVideoMAEExporter.check` with a ``ValueError``: another
tokenizer, encoder or decoder, a class token, position embeddings other than VideoMAE's fixed 1-D sin-cos table, a
bias on the projection to the decoder, different LayerNorm epsilons in the encoder and the decoder's blocks, query
and value biases in only one of them, a target other than VideoMAE's pixels (``PatchTarget`` with ``normalize``
``channel`` or ``none``, MSE, for 3 channels the ImageNet normalisation undone, which HF hard-codes). Two things are
not refused: HF's decoder computes its final LayerNorm with epsilon 1e-5 whatever the config says (ours: the
decoder's ``norm_eps``, 1e-6 in VideoMAE; the losses differ by about 1e-6), and HF takes the mask from its caller
(``bool_masked_pos``) and decodes every hidden tubelet, so the masker (tube masking, VideoMAE V2's decoder masking)
is not part of the folder.
"""

import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

import anymae

from .published import IMAGENET_MEAN, IMAGENET_STD
from .targets import VideoPixelTarget
from .tokenizers import VideoTubeletTokenizer

__all__ = ["HFVideoMAEExporter", "hf_videomae_config", "hf_videomae_state_dict"]


def _flat_sincos(pos: Any, where: str) -> None:
    if not (isinstance(pos, anymae.SinCosPositionEmbedding) and pos.axes == "flat" and pos.temperature == 10000.0):
        raise ValueError(
            f"HF's VideoMAE adds a fixed 1-D sin-cos table to the {where}; this model uses {pos!r} (VideoMAE's is "
            "SinCosPositionEmbedding(axes='flat'))"
        )


def _blocks(blocks: Any, where: str) -> tuple[int, int, bool, float]:
    """Heads, MLP width, query/value biases and LayerNorm epsilon of a stack of our blocks, the same in each."""
    found, eps = set(), set()
    for block in blocks:
        attn, mlp = block.attn, block.mlp
        plain = all(isinstance(getattr(block, n), nn.Identity) for n in ("ls1", "ls2"))
        plain = plain and all(isinstance(getattr(attn, n, nn.Identity()), nn.Identity) for n in ("q_norm", "k_norm"))
        if not plain or not isinstance(mlp.act, nn.GELU) or mlp.act.approximate != "none":
            raise ValueError(f"the {where}'s blocks are not VideoMAE's (layer scale, q/k norms or another activation)")
        found.add((attn.num_heads, mlp.fc1.out_features, attn.qkv.bias is not None))
        eps |= {block.norm1.eps, block.norm2.eps}
    if len(found) != 1 or len(eps) != 1:
        raise ValueError(f"the {where}'s blocks differ from one another (HF's config describes them all at once)")
    return (*next(iter(found)), eps.pop())


def hf_videomae_config(model: anymae.MaskedAutoencoder) -> dict[str, Any]:
    """The ``config.json`` of an equivalent ``VideoMAEForPreTraining``; ``ValueError`` for what it cannot represent."""
    tokenizer, encoder, decoder, target = model.tokenizer, model.encoder, model.decoder, model.target
    if not isinstance(tokenizer, VideoTubeletTokenizer):
        raise ValueError(f"HF's VideoMAE reads video tubelets; this model's tokenizer is {type(tokenizer).__name__}")
    (ph, pw), (h, w) = tokenizer.patch_size, tokenizer.image_size
    if ph != pw:
        raise ValueError(f"HF's VideoMAE computes its target for square patches; these are {ph} x {pw}")
    if type(encoder) is not anymae.ViTEncoder:
        raise ValueError(f"HF's VideoMAE has a ViT encoder; this model's is {type(encoder).__name__}")
    if encoder.cls_token is not None or encoder.mask_token is not None or encoder.pos_every_block:
        raise ValueError("HF's VideoMAE encoder has no class token, no mask token and adds positions once")
    _flat_sincos(encoder.pos_embed, "encoder")
    if type(decoder) is not anymae.MAEDecoder:
        raise ValueError(f"HF's VideoMAE has MAE's decoder; this model's is {type(decoder).__name__}")
    if decoder.pos_every_block or decoder.embed.bias is not None:
        raise ValueError(
            "HF's VideoMAE projects to the decoder without a bias (embed_bias: false) and adds positions once"
        )
    _flat_sincos(decoder.pos_embed, "decoder")
    heads, hidden, qkv_bias, eps = _blocks(encoder.blocks, "encoder")
    dec_heads, dec_hidden, dec_qkv_bias, dec_eps = _blocks(decoder.blocks, "decoder")
    if encoder.norm.eps != eps or dec_eps != eps:
        raise ValueError(
            f"HF's VideoMAE has one LayerNorm epsilon (layer_norm_eps) for the encoder and the decoder's blocks; this "
            f"model uses {sorted({eps, encoder.norm.eps, dec_eps})}"
        )
    if dec_qkv_bias != qkv_bias:
        raise ValueError("HF's VideoMAE has query and value biases in both the encoder and the decoder, or in neither")
    channels = tokenizer.in_chans
    norm_pix = _target(target, channels)
    return {
        "architectures": ["VideoMAEForPreTraining"],
        "model_type": "videomae",
        "image_size": h if h == w else [h, w],
        "patch_size": ph,
        "num_channels": channels,
        "num_frames": tokenizer.num_frames,
        "tubelet_size": tokenizer.tubelet_size,
        "hidden_size": encoder.embed_dim,
        "num_hidden_layers": len(encoder.blocks),
        "num_attention_heads": heads,
        "intermediate_size": hidden,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.0,
        "attention_probs_dropout_prob": 0.0,
        "initializer_range": 0.02,
        "layer_norm_eps": eps,
        "qkv_bias": qkv_bias,
        "qv_bias": qkv_bias,
        "use_mean_pooling": False,
        "decoder_hidden_size": decoder.embed_dim,
        "decoder_num_hidden_layers": len(decoder.blocks),
        "decoder_num_attention_heads": dec_heads,
        "decoder_intermediate_size": dec_hidden,
        "norm_pix_loss": norm_pix,
        "dtype": str(encoder.norm.weight.dtype).removeprefix("torch."),
    }


def _target(target: Any, channels: int) -> bool:
    """``norm_pix_loss`` for our target, or ``ValueError`` when HF's loss is another."""
    if type(target) not in (anymae.PatchTarget, VideoPixelTarget) or getattr(target, "pred_t_dim", None) is not None:
        raise ValueError(f"HF's VideoMAE predicts every pixel of each hidden tubelet; this target is {target!r}")
    if target.loss_kind != "mse" or target.normalize not in ("channel", "none"):
        raise ValueError(
            f"HF's VideoMAE loss is the MSE of pixels normalised per channel (norm_pix_loss) or raw; this target has "
            f"loss={target.loss_kind!r}, normalize={target.normalize!r}"
        )
    if target.normalize == "channel" and target.eps != 1e-6:
        raise ValueError(f"HF's VideoMAE normalises targets with eps 1e-6; this target uses {target.eps}")
    undone = None if target.input_mean is None else (tuple(target.input_mean), tuple(target.input_std))
    if channels == 3 and undone != (IMAGENET_MEAN, IMAGENET_STD):
        raise ValueError(
            "HF's VideoMAE undoes the ImageNet normalisation of 3-channel clips before its target (input_mean "
            f"{list(IMAGENET_MEAN)}, input_std {list(IMAGENET_STD)}); this target undoes {undone}"
        )
    if channels != 3 and (undone is not None or target.normalize == "none"):
        raise ValueError(
            f"HF's VideoMAE computes the target of {channels}-channel clips from the clips as given, normalised per "
            "channel (normalize: channel, no input_mean/input_std)"
        )
    return target.normalize == "channel"


def _block_state(block: Any, prefix: str, out: dict[str, Tensor]) -> None:
    attention = f"{prefix}.attention.attention"
    q, k, v = block.attn.qkv.weight.chunk(3)
    out.update({f"{attention}.query.weight": q, f"{attention}.key.weight": k, f"{attention}.value.weight": v})
    if block.attn.qkv.bias is not None:
        qb, _, vb = block.attn.qkv.bias.chunk(3)  # the key bias never changes attention: dropped
        out.update({f"{attention}.q_bias": qb, f"{attention}.v_bias": vb})
    names = {
        "norm1": "layernorm_before",
        "norm2": "layernorm_after",
        "attn.proj": "attention.output.dense",
        "mlp.fc1": "intermediate.dense",
        "mlp.fc2": "output.dense",
    }
    for ours, theirs in names.items():
        layer = block.get_submodule(ours)
        out.update({f"{prefix}.{theirs}.weight": layer.weight, f"{prefix}.{theirs}.bias": layer.bias})


def hf_videomae_state_dict(model: anymae.MaskedAutoencoder) -> dict[str, Tensor]:
    """The model's weights under ``VideoMAEForPreTraining``'s names (the fixed position tables are not stored)."""
    tokenizer, encoder, decoder = model.tokenizer, model.encoder, model.decoder
    t, (ph, pw), c, d = tokenizer.tubelet_size, tokenizer.patch_size, tokenizer.in_chans, encoder.embed_dim
    state = {
        "videomae.embeddings.patch_embeddings.projection.weight": encoder.token_embed.weight.reshape(d, t, ph, pw, c)
        .permute(0, 4, 1, 2, 3)
        .contiguous(),
        "videomae.embeddings.patch_embeddings.projection.bias": encoder.token_embed.bias,
        "videomae.layernorm.weight": encoder.norm.weight,
        "videomae.layernorm.bias": encoder.norm.bias,
        "encoder_to_decoder.weight": decoder.embed.weight,
        "mask_token": decoder.mask_token,
        "decoder.norm.weight": decoder.norm.weight,
        "decoder.norm.bias": decoder.norm.bias,
        "decoder.head.weight": decoder.head.weight,
        "decoder.head.bias": decoder.head.bias,
    }
    for i, block in enumerate(encoder.blocks):
        _block_state(block, f"videomae.encoder.layer.{i}", state)
    for i, block in enumerate(decoder.blocks):
        _block_state(block, f"decoder.decoder_layers.{i}", state)
    return {k: v.detach().contiguous().clone() for k, v in state.items()}


class HFVideoMAEExporter(anymae.Exporter):
    """``--format hf``: ``config.json`` and ``model.safetensors`` of a ``VideoMAEForPreTraining`` (the whole model:
    encoder and decoder)."""

    format = "hf"
    reads = "model"

    def check(self, model: anymae.MaskedAutoencoder) -> None:
        if not isinstance(model, anymae.MaskedAutoencoder):
            raise ValueError(f"the HF VideoMAE format holds a whole masked autoencoder, not a {type(model).__name__}")
        if getattr(model.encoder, "fc_norm", None) is not None:
            raise ValueError("the encoder normalises its pooled feature (fc_norm); VideoMAE normalises every token")
        hf_videomae_config(model)

    def export(self, model: anymae.MaskedAutoencoder, out: Path) -> list[Path]:
        from safetensors.torch import save_file

        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        config = hf_videomae_config(model)
        with torch.no_grad():
            save_file(hf_videomae_state_dict(model), out / "model.safetensors", metadata={"format": "pt"})
        (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        return [out / "config.json", out / "model.safetensors"]
