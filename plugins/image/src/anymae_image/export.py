"""Export an image MAE encoder as a ``timm`` Vision Transformer: ``timm.create_model(name, **kwargs)`` then
``load_state_dict`` with matching keys, strict. Our blocks are timm's, so only the patch embedding (a linear map of
``(p, p, C)`` patches here, a ``Conv2d`` there) and the position table (timm's has a row for the class token) are
rewritten.

And a whole image MAE (encoder and decoder) as a HuggingFace ``ViTMAEForPreTraining`` folder
(:class:`HFViTMAEExporter`): ``config.json`` and ``model.safetensors`` under the names of the checkpoints on the Hub
(``vit.encoder.layer.N.attention.attention.query``), which transformers 4 loads as they are and transformers 5
renames on load; ``ViTMAEForPreTraining.from_pretrained(folder)`` computes our loss for the same masking noise.
"""

import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

import anymae
from anymae import PretrainedEncoder

from .tokenizers import ImagePatchTokenizer

__all__ = [
    "HFViTMAEExporter",
    "TimmViTExporter",
    "create_timm_vit",
    "hf_vitmae_config",
    "hf_vitmae_state_dict",
    "timm_vit_config",
    "timm_vit_state_dict",
]


def _timm(encoder: PretrainedEncoder) -> tuple[dict[str, Any], dict[str, Tensor]]:
    tokenizer, vit = encoder.tokenizer, encoder.encoder
    (ph, pw), c, d = tokenizer.patch_size, tokenizer.in_chans, vit.embed_dim
    # our token embedding reads (p, p, C)-ordered patches; timm's conv weight is [D, C, p, p]
    return anymae.timm_vit_export(encoder, vit.token_embed.weight.reshape(d, ph, pw, c).permute(0, 3, 1, 2),
                                  tokenizer.image_size)  # fmt: skip


def timm_vit_config(encoder: PretrainedEncoder) -> dict[str, Any]:
    """``timm.create_model`` keyword arguments for an equivalent ViT (features only: ``num_classes=0``)."""
    return _timm(encoder)[0]


def timm_vit_state_dict(encoder: PretrainedEncoder) -> dict[str, Tensor]:
    """Our encoder's weights under timm's ``VisionTransformer`` keys."""
    return _timm(encoder)[1]


def create_timm_vit(folder: str | Path) -> torch.nn.Module:
    """The timm model written by ``anymae export --format timm`` into ``folder``, weights loaded."""
    return anymae.load_timm_export(folder)[0]


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
        return anymae.write_timm_export(*_timm(encoder), out, "timm_vit")


def _hf_layers(blocks: torch.nn.ModuleList, prefix: str) -> dict[str, Tensor]:
    """Our (timm's) blocks under the Hub's ViTMAE layer names."""
    state = {}
    block: Any  # timm's Block (a ModuleList's items type as Module)
    for i, block in enumerate(blocks):
        at = f"{prefix}{i}."
        attn = block.attn
        for name, tensor in zip(("query", "key", "value"), attn.qkv.weight.chunk(3), strict=True):
            state[f"{at}attention.attention.{name}.weight"] = tensor
        if attn.qkv.bias is not None:
            for name, tensor in zip(("query", "key", "value"), attn.qkv.bias.chunk(3), strict=True):
                state[f"{at}attention.attention.{name}.bias"] = tensor
        for ours, theirs in (
            (attn.proj, "attention.output.dense"),
            (block.norm1, "layernorm_before"),
            (block.norm2, "layernorm_after"),
            (block.mlp.fc1, "intermediate.dense"),
            (block.mlp.fc2, "output.dense"),
        ):
            state[f"{at}{theirs}.weight"], state[f"{at}{theirs}.bias"] = ours.weight, ours.bias
    return state


def hf_vitmae_state_dict(model: "anymae.MaskedAutoencoder") -> dict[str, Tensor]:
    """Our MAE's weights under ``ViTMAEForPreTraining``'s names (the Hub's), the fixed tables written out (HF stores
    them, with a zero row for the class token)."""
    tokenizer, vit, dec = model.tokenizer, model.encoder, model.decoder
    (ph, pw), c, d = tokenizer.patch_size, tokenizer.in_chans, vit.embed_dim
    grid, device = tokenizer.layout.shape, vit.token_embed.weight.device

    def with_class_row(table: Tensor) -> Tensor:
        return torch.cat([table.new_zeros(1, table.shape[1]), table], dim=0)[None]

    state = {
        "vit.embeddings.cls_token": vit.cls_token,
        "vit.embeddings.position_embeddings": with_class_row(anymae.grid_table(vit.pos_embed, grid, device)),
        "vit.embeddings.patch_embeddings.projection.weight": vit.token_embed.weight.reshape(d, ph, pw, c).permute(
            0, 3, 1, 2
        ),
        "vit.embeddings.patch_embeddings.projection.bias": vit.token_embed.bias,
        **_hf_layers(vit.blocks, "vit.encoder.layer."),
        "vit.layernorm.weight": vit.norm.weight,
        "vit.layernorm.bias": vit.norm.bias,
        "decoder.decoder_embed.weight": dec.embed.weight,
        "decoder.decoder_embed.bias": dec.embed.bias,
        "decoder.mask_token": dec.mask_token,
        "decoder.decoder_pos_embed": with_class_row(anymae.grid_table(dec.pos_embed, grid, device)),
        **_hf_layers(dec.blocks, "decoder.decoder_layers."),
        "decoder.decoder_norm.weight": dec.norm.weight,
        "decoder.decoder_norm.bias": dec.norm.bias,
        "decoder.decoder_pred.weight": dec.head.weight,
        "decoder.decoder_pred.bias": dec.head.bias,
    }
    return {k: v.detach().float().cpu().contiguous().clone() for k, v in state.items()}


def hf_vitmae_config(model: "anymae.MaskedAutoencoder") -> dict[str, Any]:
    """``config.json`` of the equivalent ``ViTMAEForPreTraining`` (a ``ViTMAEConfig``'s fields)."""
    tokenizer, vit, dec = model.tokenizer, model.encoder, model.decoder
    block, dec_block = vit.blocks[0], dec.blocks[0]
    return {
        "architectures": ["ViTMAEForPreTraining"],
        "model_type": "vit_mae",
        "hidden_size": vit.embed_dim,
        "num_hidden_layers": len(vit.blocks),
        "num_attention_heads": block.attn.num_heads,
        "intermediate_size": block.mlp.fc1.out_features,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.0,
        "attention_probs_dropout_prob": 0.0,
        "initializer_range": 0.02,
        "layer_norm_eps": vit.norm.eps,
        "image_size": tokenizer.image_size[0],
        "patch_size": tokenizer.patch_size[0],
        "num_channels": tokenizer.in_chans,
        "qkv_bias": block.attn.qkv.bias is not None,
        "decoder_num_attention_heads": dec_block.attn.num_heads,
        "decoder_hidden_size": dec.embed_dim,
        "decoder_num_hidden_layers": len(dec.blocks),
        "decoder_intermediate_size": dec_block.mlp.fc1.out_features,
        "mask_ratio": model.masker.mask_ratio,
        "norm_pix_loss": model.target.normalize == "patch",
    }


def hf_vitmae_problems(model: Any) -> list[str]:
    """What of ``model`` a ``ViTMAEForPreTraining`` cannot compute (empty: it computes our loss)."""
    if not isinstance(model, anymae.MaskedAutoencoder):
        return [f"the hf format writes a whole MaskedAutoencoder (encoder and decoder), got {type(model).__name__}"]
    problems = []
    tokenizer, vit, dec, target = model.tokenizer, model.encoder, model.decoder, model.target
    if getattr(vit, "fc_norm", None) is not None:
        problems.append("the encoder normalises its pooled feature (fc_norm), not every token as ViTMAE does")
    if not isinstance(tokenizer, ImagePatchTokenizer):
        problems.append(f"the tokenizer is {type(tokenizer).__name__}, not an ImagePatchTokenizer")
    else:
        if tokenizer.image_size[0] != tokenizer.image_size[1]:
            problems.append(f"the image is {tokenizer.image_size}: ViTMAE's images are square")
        if tokenizer.patch_size[0] != tokenizer.patch_size[1]:
            problems.append(f"the patch is {tokenizer.patch_size}: ViTMAE's patches are square")
    if type(vit) is not anymae.ViTEncoder:
        problems.append(f"the encoder is {type(vit).__name__}, not a ViTEncoder")
    else:
        if vit.cls_token is None:
            problems.append("the encoder has no class token (ViTMAE always has one)")
        if vit.mask_token is not None or vit.pos_every_block:
            problems.append("the encoder is SimMIM's (mask_token) or adds positions to every block; ViTMAE's is MAE's")
    if type(dec) is not anymae.MAEDecoder:
        problems.append(f"the decoder is {type(dec).__name__}, not an MAEDecoder")
    else:
        if dec.pos_every_block:
            problems.append("the decoder adds positions to every block; ViTMAE's adds them once")
        if dec.embed.bias is None:
            problems.append("the decoder's input projection has no bias (ViTMAE's decoder_embed has one)")
    if type(target) is not anymae.PatchTarget:
        problems.append(f"the target is {type(target).__name__}, not a PatchTarget (ViTMAE predicts pixels)")
    else:
        if target.normalize not in ("patch", "none"):
            problems.append(f"PatchTarget(normalize={target.normalize!r}): ViTMAE normalises per patch or not at all")
        if target.normalize == "patch" and target.eps != 1e-6:
            problems.append(f"PatchTarget(eps={target.eps}): ViTMAE's norm_pix_loss uses 1e-6")
        if target.loss_kind != "mse" or target.input_mean is not None:
            problems.append("the target's loss is not MSE on the input's own scale (ViTMAE's)")
    if type(model.masker) is not anymae.RandomMasker:
        problems.append(f"the masker is {type(model.masker).__name__}; ViTMAE masks uniformly at random")
    if problems or not isinstance(vit, anymae.ViTEncoder):
        return problems
    blocks = [*vit.blocks, *dec.blocks]
    norms = [m for m in (*vit.modules(), *dec.modules()) if isinstance(m, torch.nn.LayerNorm)]
    if len({m.eps for m in norms}) > 1:
        problems.append(f"the LayerNorms' epsilons differ ({sorted({m.eps for m in norms})}); ViTMAE has one")
    if len({b.attn.qkv.bias is not None for b in blocks}) > 1:
        problems.append("the encoder's and decoder's qkv biases differ; ViTMAE's config has one qkv_bias")
    for block in blocks:
        act = block.mlp.act
        if not (isinstance(act, torch.nn.GELU) and act.approximate == "none"):
            problems.append(f"a block's activation is {act}; ViTMAE's is exact GELU")
            break
        plain = (block.ls1, block.ls2, block.attn.q_norm, block.attn.k_norm, block.mlp.norm)
        if not all(isinstance(m, torch.nn.Identity) for m in plain):
            problems.append("a block has layer scale or query/key/MLP norms, which ViTMAE's layers have not")
            break
    return problems


class HFViTMAEExporter(anymae.Exporter):
    """``--format hf``: a HuggingFace ``ViTMAEForPreTraining`` folder (``config.json``, ``model.safetensors``),
    read with ``transformers.ViTMAEForPreTraining.from_pretrained(out)``; it computes our loss for the same masking
    noise (``noise=``). Needs MAE's parts: an ImagePatchTokenizer with square images and patches, a ViTEncoder with
    a class token, an MAEDecoder, a PatchTarget (``normalize`` ``"patch"`` is ``norm_pix_loss``) and a RandomMasker.
    """

    format = "hf"
    reads = "model"

    def check(self, encoder: Any) -> None:
        problems = hf_vitmae_problems(encoder)
        if problems:
            raise ValueError("the hf format (ViTMAEForPreTraining) cannot hold this model: " + "; ".join(problems))

    def export(self, encoder: Any, out: Path) -> list[Path]:
        from safetensors.torch import save_file

        out.mkdir(parents=True, exist_ok=True)
        with torch.no_grad():
            state = hf_vitmae_state_dict(encoder)
        save_file(state, out / "model.safetensors", metadata={"format": "pt"})
        (out / "config.json").write_text(json.dumps(hf_vitmae_config(encoder), indent=2))
        return [out / "config.json", out / "model.safetensors"]
