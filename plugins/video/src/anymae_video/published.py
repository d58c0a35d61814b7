"""Published VideoMAE weights, read as they are shipped (``anymae.read_weights``, ``anymae.load_encoder``, ``anymae
convert``): nothing is downloaded, and the format is told from the file's keys and config.

* :class:`VideoMAEReader`: the ``.pth`` checkpoints of MCG-NJU's VideoMAE (Tong et al. 2022,
  https://arxiv.org/abs/2203.12602) and of OpenGVLab's VideoMAE V2 (Wang et al. 2023,
  https://arxiv.org/abs/2303.16727), which share one layout: a pretraining checkpoint (``encoder.patch_embed.proj``,
  ``encoder.blocks.N``, ``encoder.norm``, ``encoder_to_decoder``, ``mask_token``, ``decoder.blocks.N``,
  ``decoder.norm``, ``decoder.head``) or an encoder (``patch_embed.proj``, ``blocks.N``, ``norm``, a classifier
  ``head`` left out), under ``"model"`` or ``"module"``.
* :class:`HFVideoMAEReader`: a HuggingFace folder (``config.json`` with ``model_type: videomae`` and
  ``model.safetensors`` or ``pytorch_model.bin``) of ``VideoMAEForPreTraining``, ``VideoMAEModel`` or
  ``VideoMAEForVideoClassification`` (classifier left out), with the bias names transformers writes (``q_bias``,
  ``v_bias``) or the ones its 5.x modules hold (``query.bias``, ``value.bias``).

How their weights become ours: the ``Conv3d`` tubelet embedding ``[D, C, t, p, p]`` is our linear token embedding
of ``(t, p, p, C)``-ordered tubelets (a permute); VideoMAE's attention has a query and a value bias and no key bias,
so our fused ``qkv`` bias gets a zero key part (a key bias never changes attention: softmax is shift-invariant);
the fixed 1-D sin-cos tables are not stored, and are ``anymae.SinCosPositionEmbedding(axes="flat")`` (which indexes
the table by each token's row-major index, as VideoMAE's table does for the clip size its model is built for).

What the ``.pth`` files do not hold, the reader takes from VideoMAE's code and says so in ``ImportedWeights.missing``:
the number of heads (VideoMAE's heads are 64 wide, except ViT-H's 16 heads of 80, ViT-g's 16 of 88 and VideoMAE's
ViT-H decoder's 8 of 80: see :data:`HEADS`), the LayerNorm epsilon (1e-6), and, unless the checkpoint keeps its
training arguments (``"args"``: ``num_frames``, ``input_size``, ``mask_type``, ``mask_ratio``,
``decoder_mask_ratio``, ``decoder_mask_type``, ``normlize_target``) in a form a weights-only load reads (a dict; the
``argparse.Namespace`` their scripts save is refused by ``anymae.load_checkpoint``), the clip size (16 frames of 224
x 224; clips of another size divisible by the tubelet are read on their own grid, as VideoMAE built for that size
reads them, since the 1-D table follows the token index), the masker (tube masking at 0.9) and the target (pixels in
[0, 1], the ImageNet normalisation undone, normalised per channel of each tubelet).
"""

import math
import re
from collections.abc import Mapping
from typing import Any, NamedTuple

import torch
from torch import Tensor

from anymae import ConfigError, ImportedWeights, WeightsFile, WeightsReader

__all__ = ["HEADS", "HFVideoMAEReader", "VideoMAEReader", "flat_position_table"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: the clip VideoMAE's and VideoMAE V2's models are built for (frames, image size): not stored in their files
DEFAULT_FRAMES, DEFAULT_SIZE = 16, 224
#: VideoMAE's LayerNorm epsilon (``partial(nn.LayerNorm, eps=1e-6)`` in every model it defines)
VIDEOMAE_EPS = 1e-6
#: heads by width where VideoMAE's or VideoMAE V2's heads are not 64 wide (ViT-H: 1280 = 16 x 80; ViT-g: 1408 =
#: 16 x 88; VideoMAE's ViT-H decoder: 640 = 8 x 80); any other width has ``width // 64`` heads
HEADS = {1280: 16, 1408: 16, 640: 8}

_FLAT = {"class_path": "anymae.SinCosPositionEmbedding", "init_args": {"axes": "flat"}}


def flat_position_table(rows: int, dim: int) -> Tensor:
    """VideoMAE's fixed 1-D sin-cos table ``[rows, dim]`` (``get_sinusoid_encoding_table``), to recognise a stored
    copy of it."""
    angles = torch.arange(rows, dtype=torch.float64)[:, None] / 10000 ** (
        torch.arange(dim, dtype=torch.float64) // 2 * 2 / dim
    )
    angles[:, 0::2], angles[:, 1::2] = angles[:, 0::2].sin(), angles[:, 1::2].cos()
    return angles.float()


def _heads(width: int) -> int:
    heads = HEADS.get(width, width // 64)
    if heads < 1 or width % heads:
        raise ConfigError(f"a VideoMAE block {width} wide: the number of heads is not stored and {width} is not 64 x k")
    return heads


def _mlp_ratio(hidden: int, dim: int) -> float:
    """The ratio timm's ``Block`` turns back into ``hidden`` (``int(dim * ratio)``; ViT-g's 48 / 11 is inexact)."""
    ratio = hidden / dim
    if int(dim * ratio) != hidden:
        ratio = math.nextafter(ratio, math.inf)
    if int(dim * ratio) != hidden:
        raise ConfigError(f"an MLP {hidden} wide in blocks {dim} wide cannot be written as a ratio")
    return ratio


def _depth(state: Mapping[str, Tensor], prefix: str) -> int:
    """The number of blocks ``prefix{i}.`` in ``state``."""
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.")
    found = {int(m[1]) for k in state if (m := pattern.match(k))}
    if not found:
        return 0
    if found != set(range(max(found) + 1)):
        raise ConfigError(f"blocks {prefix}N: the file holds blocks {sorted(found)}, not 0 to {max(found)}")
    return max(found) + 1


def _pair(value: Any) -> tuple[int, int]:
    return (int(value), int(value)) if isinstance(value, (int, float)) else (int(value[0]), int(value[1]))


def _default_clip(tubelet: int, patch: tuple[int, int]) -> tuple[int, int | tuple[int, int]]:
    """VideoMAE's 16 x 224 clip, rounded to whole tubelets where the tubelet does not divide it."""
    frames = max(tubelet, round(DEFAULT_FRAMES / tubelet) * tubelet)
    h, w = (max(p, round(DEFAULT_SIZE / p) * p) for p in patch)
    return frames, h if h == w else (h, w)


class _Keys:
    """The file's tensors, each taken at most once; what is never taken is reported."""

    def __init__(self, state: Mapping[str, Tensor]) -> None:
        self.state, self.taken = state, set[str]()

    def __contains__(self, key: str) -> bool:
        return key in self.state

    def take(self, key: str) -> Tensor:
        if key not in self.state:
            raise ConfigError(f"the file has no {key!r}, which its layout needs")
        self.taken.add(key)
        return self.state[key]

    def take_optional(self, key: str) -> Tensor | None:
        return self.take(key) if key in self.state else None

    def rest(self, prefix: str = "") -> list[str]:
        return sorted(k for k in self.state if k.startswith(prefix) and k not in self.taken)


def _attention_bias(q: Tensor | None, k: Tensor | None, v: Tensor | None) -> Tensor | None:
    """Our fused ``qkv`` bias from VideoMAE's query and value biases (a key bias, absent there, is zero)."""
    if q is None and v is None:
        if k is not None:
            raise ConfigError("an attention with a key bias but no query or value bias is not VideoMAE's")
        return None
    if q is None or v is None:
        raise ConfigError("an attention with only one of the query and value biases")
    return torch.cat([q, torch.zeros_like(q) if k is None else k, v])


def _linear(keys: _Keys, source: str, target: str, out: dict[str, Tensor]) -> None:
    out[f"{target}.weight"] = keys.take(f"{source}.weight")
    bias = keys.take_optional(f"{source}.bias")
    if bias is not None:
        out[f"{target}.bias"] = bias


def _mcg_block(keys: _Keys, source: str, target: str, out: dict[str, Tensor]) -> None:
    """A block of VideoMAE's ``modeling_finetune.Block`` (timm's names, separate ``q_bias``/``v_bias``)."""
    for gamma in ("gamma_1", "gamma_2"):
        if f"{source}.{gamma}" in keys:
            raise ConfigError(
                f"{source}.{gamma}: layer scale (VideoMAE's init_values > 0); anymae.ViTEncoder's blocks have none"
            )
    if f"{source}.attn.scale" in keys:
        raise ConfigError(f"{source}.attn.scale: VideoMAE V2's cosine attention (cos_attn); anymae's is dot-product")
    for norm in ("norm1", "norm2"):
        _linear(keys, f"{source}.{norm}", f"{target}.{norm}", out)
    out[f"{target}.attn.qkv.weight"] = keys.take(f"{source}.attn.qkv.weight")
    bias = _attention_bias(
        keys.take_optional(f"{source}.attn.q_bias"), None, keys.take_optional(f"{source}.attn.v_bias")
    )
    if bias is not None:
        out[f"{target}.attn.qkv.bias"] = bias
    for name in ("attn.proj", "mlp.fc1", "mlp.fc2"):
        _linear(keys, f"{source}.{name}", f"{target}.{name}", out)


def _hf_block(keys: _Keys, source: str, target: str, out: dict[str, Tensor]) -> None:
    """A ``VideoMAELayer`` of transformers (separate query/key/value; ``q_bias``/``v_bias`` as files name them, or
    ``query.bias``/``value.bias`` as transformers 5 holds them)."""
    attention = f"{source}.attention.attention"
    out[f"{target}.attn.qkv.weight"] = torch.cat(
        [keys.take(f"{attention}.{n}.weight") for n in ("query", "key", "value")]
    )
    q = keys.take_optional(f"{attention}.q_bias")
    q = keys.take_optional(f"{attention}.query.bias") if q is None else q
    v = keys.take_optional(f"{attention}.v_bias")
    v = keys.take_optional(f"{attention}.value.bias") if v is None else v
    bias = _attention_bias(q, keys.take_optional(f"{attention}.key.bias"), v)
    if bias is not None:
        out[f"{target}.attn.qkv.bias"] = bias
    names = {
        "layernorm_before": "norm1",
        "layernorm_after": "norm2",
        "attention.output.dense": "attn.proj",
        "intermediate.dense": "mlp.fc1",
        "output.dense": "mlp.fc2",
    }
    for theirs, ours in names.items():
        _linear(keys, f"{source}.{theirs}", f"{target}.{ours}", out)


class _Tubelets(NamedTuple):
    """A tubelet embedding's sizes, read from its ``Conv3d`` weight."""

    channels: int
    tubelet: int
    patch: tuple[int, int]
    width: int

    @property
    def values(self) -> int:
        """Values in one tubelet: what the decoder predicts for each."""
        return self.channels * self.tubelet * self.patch[0] * self.patch[1]

    def __str__(self) -> str:
        return f"{self.tubelet} x {self.patch[0]} x {self.patch[1]}"


def _token_embedding(conv: Tensor, out: dict[str, Tensor]) -> _Tubelets:
    """The ``Conv3d`` tubelet embedding ``[D, C, t, p, p]`` as our linear map of ``(t, p, p, C)`` tubelets, and its
    sizes."""
    if conv.dim() != 5:
        raise ConfigError(
            f"the patch embedding is {tuple(conv.shape)}; a tubelet embedding is a Conv3d [D, C, t, p, p]"
        )
    width, channels, tubelet, ph, pw = conv.shape
    out["encoder.token_embed.weight"] = conv.permute(0, 2, 3, 4, 1).reshape(width, -1)
    return _Tubelets(channels, tubelet, (ph, pw), width)


def _decoder_stem(keys: _Keys, state: dict[str, Tensor], out_dim: int) -> None:
    """The decoder's norm, head, input projection and mask token, which VideoMAE's repository and transformers
    name alike, into our decoder stem; a head that predicts other than the tubelet's ``out_dim`` values is refused."""
    _linear(keys, "decoder.norm", "decoder.stem.norm", state)
    _linear(keys, "decoder.head", "decoder.stem.head", state)
    predicted = state["decoder.stem.head.weight"].shape[0]
    if predicted != out_dim:
        raise ConfigError(
            f"decoder.head predicts {predicted} values per tubelet; the tubelet embedding reads {out_dim} (VideoMAE "
            "predicts every pixel of its tubelet)"
        )
    if "encoder_to_decoder.bias" in keys:
        raise ConfigError("encoder_to_decoder.bias: VideoMAE's projection to the decoder has no bias")
    state["decoder.stem.embed.weight"] = keys.take("encoder_to_decoder.weight")
    state["decoder.stem.mask_token"] = keys.take("mask_token")


def _check_table(keys: _Keys, key: str, dim: int, left_out: list[str]) -> None:
    """A stored position table: VideoMAE's fixed sin-cos table (left out: ours computes it) or a learned one (not
    readable: the parts use the fixed table)."""
    if key not in keys:
        return
    table = keys.take(key).reshape(-1, dim).float()
    if not torch.allclose(table, flat_position_table(table.shape[0], dim), atol=1e-4):
        raise ConfigError(
            f"{key}: a learned position table (VideoMAE's use_learnable_pos_emb); the parts read use VideoMAE's fixed "
            "sin-cos table"
        )
    left_out.append(f"{key}: VideoMAE's fixed sin-cos table, which anymae computes")


def _rest_error(keys: _Keys, prefix: str = "") -> None:
    rest = keys.rest(prefix)
    if rest:
        shown = ", ".join(rest[:6]) + (f" and {len(rest) - 6} more" if len(rest) > 6 else "")
        raise ConfigError(f"weights the VideoMAE layout does not have: {shown}")


def _training_args(contents: Any) -> dict[str, Any]:
    """The training script's arguments, where the checkpoint keeps them (VideoMAE's and V2's ``save_model`` store
    ``"args"``, an ``argparse.Namespace``, which a weights-only load refuses; a dict of them is read)."""
    args = contents.get("args") if isinstance(contents, Mapping) else None
    if isinstance(args, Mapping):
        return dict(args)
    return dict(vars(args)) if args is not None and hasattr(args, "__dict__") else {}


def _masker(args: Mapping[str, Any]) -> dict[str, Any]:
    """The masking of the training arguments (VideoMAE's ``mask_type``/``mask_ratio``, V2's ``decoder_mask_type``/
    ``decoder_mask_ratio``); VideoMAE's tube masking at 0.9 without them."""
    kind = "anymae.RandomMasker" if args.get("mask_type") == "random" else "anymae.TubeMasker"
    masker = {"class_path": kind, "init_args": {"mask_ratio": float(args.get("mask_ratio", 0.9))}}
    decoder_ratio = float(args.get("decoder_mask_ratio") or 0.0)
    if not decoder_ratio:
        return masker
    strategy = "random" if args.get("decoder_mask_type") == "random" else "running_cell"
    return {
        "class_path": "anymae.DualMasker",
        "init_args": {"masker": masker, "decoder_ratio": decoder_ratio, "strategy": strategy},
    }


def _parts(
    *,
    frames: int,
    image_size: int | tuple[int, int] | list[int],
    tubelets: _Tubelets,
    encoder: dict[str, Any],
    decoder: dict[str, Any] | None,
    normalize: str = "channel",
    masker: dict[str, Any] | None = None,
) -> dict[str, Any]:
    channels, tubelet, (ph, pw), _ = tubelets
    parts: dict[str, Any] = {
        "tokenizer": {
            "class_path": "anymae_video.VideoTubeletTokenizer",
            "init_args": {
                "num_frames": frames,
                "image_size": list(image_size) if isinstance(image_size, (tuple, list)) else image_size,
                "tubelet_size": tubelet,
                "patch_size": ph if ph == pw else [ph, pw],
                "in_chans": channels,
            },
        },
        "encoder": {
            "class_path": "anymae.ViTEncoder",
            "init_args": {**encoder, "class_token": False, "pos_embed": _FLAT},
        },
    }
    if decoder is not None:
        rgb = channels == 3  # VideoMAE undoes the ImageNet normalisation of RGB clips (HF: of any 3-channel clip)
        parts["decoder"] = {
            "class_path": "anymae.MAEDecoder",
            "init_args": {**decoder, "embed_bias": False, "pos_embed": _FLAT},
        }
        parts["target"] = {
            "class_path": "anymae.PatchTarget",
            "init_args": {
                "normalize": normalize,
                "eps": 1e-6,
                "loss": "mse",
                "input_mean": list(IMAGENET_MEAN) if rgb else None,
                "input_std": list(IMAGENET_STD) if rgb else None,
            },
        }
        parts["masker"] = masker or {"class_path": "anymae.TubeMasker", "init_args": {"mask_ratio": 0.9}}
    return parts


class VideoMAEReader(WeightsReader):
    """MCG-NJU VideoMAE and OpenGVLab VideoMAE V2 ``.pth`` checkpoints (pretraining: encoder and decoder; fine-tuned
    or distilled: the encoder, its classifier ``head`` left out).

    Recognised by a ``Conv3d`` ``patch_embed.proj.weight`` (under ``encoder.`` in a pretraining checkpoint) and
    blocks with a fused ``attn.qkv`` weight without a bias (VideoMAE's query and value biases are separate) and no
    class token. Not readable (``ConfigError``): layer scale (``gamma_1``/``gamma_2``), V2's cosine attention, a
    learned position table, and a fine-tuned encoder that ends in ``fc_norm`` (mean pooling then LayerNorm:
    ``anymae.ViTEncoder`` normalises each token instead, and has no way to skip its final norm).
    """

    format = "videomae"

    def detect(self, file: WeightsFile) -> bool:
        state = file.tensors
        prefix = "encoder." if "encoder.patch_embed.proj.weight" in state else ""
        conv = state.get(f"{prefix}patch_embed.proj.weight")
        return (
            conv is not None
            and conv.dim() == 5
            and f"{prefix}blocks.0.attn.qkv.weight" in state
            and f"{prefix}blocks.0.attn.qkv.bias" not in state
            and not any(k in state for k in ("cls_token", f"{prefix}cls_token", f"{prefix}pos_embed_spatial"))
        )

    def read(self, file: WeightsFile) -> ImportedWeights:
        keys = _Keys(file.tensors)
        pretraining = "encoder.patch_embed.proj.weight" in keys
        enc = "encoder." if pretraining else ""
        state: dict[str, Tensor] = {}
        left_out: list[str] = []
        tubelets = _token_embedding(keys.take(f"{enc}patch_embed.proj.weight"), state)
        tubelet, patch, width = tubelets.tubelet, tubelets.patch, tubelets.width
        state["encoder.token_embed.bias"] = keys.take(f"{enc}patch_embed.proj.bias")
        _check_table(keys, f"{enc}pos_embed", width, left_out)
        depth = _depth(keys.state, f"{enc}blocks.")
        for i in range(depth):
            _mcg_block(keys, f"{enc}blocks.{i}", f"encoder.blocks.{i}", state)
        fc_norm = f"{enc}norm.weight" not in keys and "fc_norm.weight" in keys  # mean pooling, then a LayerNorm
        if f"{enc}norm.weight" not in keys and not fc_norm:
            raise ConfigError(f"{file.path}: the encoder ends in neither a LayerNorm (norm) nor fc_norm")
        _linear(keys, "fc_norm" if fc_norm else f"{enc}norm", "encoder.fc_norm" if fc_norm else "encoder.norm", state)
        for head in dict.fromkeys(("head", f"{enc}head")):  # a classifier on the encoder, or on the model
            if f"{head}.weight" in keys:
                classes = keys.take(f"{head}.weight").shape[0]
                keys.take_optional(f"{head}.bias")
                left_out.append(f"{head}.*: a classifier head ({classes} classes)")
        block = f"{enc}blocks.0"
        qkv_bias = f"{block}.attn.q_bias" in keys.state
        encoder = {
            "embed_dim": width,
            "depth": depth,
            "num_heads": _heads(width),
            "mlp_ratio": _mlp_ratio(keys.state[f"{block}.mlp.fc1.weight"].shape[0], width),
            "qkv_bias": qkv_bias,
            "norm_eps": VIDEOMAE_EPS,
            **({"fc_norm": True} if fc_norm else {}),
        }
        decoder = None
        if pretraining and "decoder.norm.weight" in keys:
            decoder = self._decoder(keys, state, tubelets.values, left_out)
        _rest_error(keys)
        args = _training_args(file.contents)
        frames, size = _default_clip(tubelet, patch)
        missing = []
        if "num_frames" in args and "input_size" in args:
            frames, size = int(args["num_frames"]), args["input_size"]
        else:
            missing.append(
                f"num_frames and image_size: not in the file (VideoMAE's position table is fixed, not stored); the "
                f"tokenizer takes VideoMAE's {frames} x {size}, and clips of another size divisible by the tubelet "
                "are read on their own grid, as VideoMAE built for that size reads them"
            )
        missing.append(
            f"num_heads: not in the file; VideoMAE's heads are 64 wide ({encoder['num_heads']} for width {width})"
            + ("" if decoder is None else f", {decoder['num_heads']} in the decoder")
        )
        missing.append(f"LayerNorm eps: not in the file; VideoMAE's {VIDEOMAE_EPS}")
        if decoder is None:
            missing.append("decoder: the file holds the encoder only")
        elif "mask_ratio" not in args:
            missing.append(
                "masker and target: not in the file; VideoMAE's tube masking at 0.9 and per-channel normalised "
                "pixels (VideoMAE V2 pretrains with dual masking: anymae.DualMasker to continue its pretraining)"
            )
        what = "pretraining checkpoint (encoder and decoder)" if decoder else "encoder"
        return ImportedWeights(
            source=f"MCG-NJU VideoMAE / VideoMAE V2 {what}: ViT {width} wide, {depth} blocks, tubelets {tubelets}",
            parts=_parts(
                frames=frames,
                image_size=size,
                tubelets=tubelets,
                encoder=encoder,
                decoder=decoder,
                normalize="channel" if args.get("normlize_target", True) else "none",
                masker=_masker(args),
            ),
            state=state,
            left_out=left_out,
            missing=missing,
        )

    @staticmethod
    def _decoder(keys: _Keys, state: dict[str, Tensor], out_dim: int, left_out: list[str]) -> dict[str, Any]:
        width = keys.state["decoder.norm.weight"].shape[0]
        depth = _depth(keys.state, "decoder.blocks.")
        for i in range(depth):
            _mcg_block(keys, f"decoder.blocks.{i}", f"decoder.blocks.{i}", state)
        _decoder_stem(keys, state, out_dim)
        _check_table(keys, "pos_embed", width, left_out)
        return {
            "embed_dim": width,
            "depth": depth,
            "num_heads": _heads(width),
            "mlp_ratio": _mlp_ratio(keys.state["decoder.blocks.0.mlp.fc1.weight"].shape[0], width),
            "qkv_bias": "decoder.blocks.0.attn.q_bias" in keys.state,
            "norm_eps": VIDEOMAE_EPS,
        }


class HFVideoMAEReader(WeightsReader):
    """HuggingFace folders of transformers' VideoMAE (``config.json`` with ``model_type: videomae``), sizes from the
    config: ``VideoMAEForPreTraining`` (encoder and decoder; the target from ``norm_pix_loss``), ``VideoMAEModel``
    and ``VideoMAEForVideoClassification`` (the encoder; ``classifier`` and ``fc_norm`` left out).

    Not readable (``ConfigError``): an encoder without its final LayerNorm (``use_mean_pooling: true``, the
    fine-tuned models': their features are the last block's, unnormalised) and an activation other than GELU. HF's
    ``VideoMAEDecoder.norm`` uses LayerNorm's default epsilon (1e-5) whatever ``layer_norm_eps`` says; our decoder
    has one epsilon, ``layer_norm_eps`` (said in ``missing``; the losses differ by about 1e-6).
    """

    format = "hf-videomae"

    def detect(self, file: WeightsFile) -> bool:
        return file.config is not None and file.config.get("model_type") == "videomae"

    def read(self, file: WeightsFile) -> ImportedWeights:
        config = dict(file.config or {})
        keys = _Keys(file.tensors)
        prefix = "videomae." if "videomae.embeddings.patch_embeddings.projection.weight" in keys else ""
        state: dict[str, Tensor] = {}
        left_out: list[str] = []
        missing: list[str] = []
        if config.get("hidden_act", "gelu") != "gelu":
            raise ConfigError(f"{file.path}: hidden_act {config['hidden_act']!r}; anymae's blocks use GELU")
        tubelets = _token_embedding(keys.take(f"{prefix}embeddings.patch_embeddings.projection.weight"), state)
        width = tubelets.width
        state["encoder.token_embed.bias"] = keys.take(f"{prefix}embeddings.patch_embeddings.projection.bias")
        expected = (
            int(config.get("hidden_size", 768)),
            int(config.get("num_channels", 3)),
            int(config.get("tubelet_size", 2)),
            *_pair(config.get("patch_size", 16)),
        )
        found = (width, tubelets.channels, tubelets.tubelet, *tubelets.patch)
        if found != expected:
            raise ConfigError(
                f"{file.path}: the tubelet embedding is {found}, config.json says "
                f"[hidden_size, num_channels, tubelet_size, patch_size] = {list(expected)}"
            )
        _check_table(keys, f"{prefix}embeddings.position_embeddings", width, left_out)
        depth = int(config.get("num_hidden_layers", 12))
        if _depth(keys.state, f"{prefix}encoder.layer.") != depth:
            raise ConfigError(f"{file.path}: config.json says {depth} layers, the weights hold another number")
        for i in range(depth):
            _hf_block(keys, f"{prefix}encoder.layer.{i}", f"encoder.blocks.{i}", state)
        fc_norm = f"{prefix}layernorm.weight" not in keys and "fc_norm.weight" in keys  # use_mean_pooling
        if f"{prefix}layernorm.weight" not in keys and not fc_norm:
            raise ConfigError(f"{file.path}: the encoder ends in neither a LayerNorm (layernorm) nor fc_norm")
        if fc_norm:
            missing.append(
                "fc_norm eps: HF's VideoMAEForVideoClassification.fc_norm uses 1e-5 whatever layer_norm_eps says; the "
                "encoder here uses layer_norm_eps for it (pooled features differ by about 1e-5)"
            )
        _linear(keys, "fc_norm" if fc_norm else f"{prefix}layernorm", f"encoder.{'fc_' if fc_norm else ''}norm", state)
        for head in ("classifier", "fc_norm") if not fc_norm else ("classifier",):
            if f"{head}.weight" in keys:
                keys.take(f"{head}.weight")
                keys.take_optional(f"{head}.bias")
                left_out.append(
                    f"{head}.*: VideoMAEForVideoClassification's "
                    + ("classifier" if head == "classifier" else "pooled-feature LayerNorm")
                )
        eps = float(config.get("layer_norm_eps", 1e-12))
        encoder = {
            "embed_dim": width,
            "depth": depth,
            "num_heads": int(config.get("num_attention_heads", 12)),
            "mlp_ratio": _mlp_ratio(int(config.get("intermediate_size", 3072)), width),
            "qkv_bias": "encoder.blocks.0.attn.qkv.bias" in state,
            "norm_eps": eps,
            **({"fc_norm": True} if fc_norm else {}),
        }
        decoder = None
        if "decoder.head.weight" in keys:
            decoder = self._decoder(keys, state, config, tubelets.values)
            _check_table(keys, "position_embeddings", decoder["embed_dim"], left_out)
            missing.append(
                f"decoder.norm eps: HF's VideoMAEDecoder.norm uses 1e-5 whatever layer_norm_eps says; the decoder "
                f"here uses layer_norm_eps ({eps}) throughout"
            )
            missing.append("masker: not in the folder; VideoMAE's tube masking at 0.9")
        else:
            missing.append("decoder: the folder holds the encoder only")
        _rest_error(keys)
        architecture = ", ".join(config.get("architectures") or ["VideoMAE"])
        return ImportedWeights(
            source=f"HuggingFace {architecture}: ViT {width} wide, {depth} blocks, tubelets {tubelets}",
            parts=_parts(
                frames=int(config.get("num_frames", DEFAULT_FRAMES)),
                image_size=config.get("image_size", DEFAULT_SIZE),
                tubelets=tubelets,
                encoder=encoder,
                decoder=decoder,
                normalize="channel" if config.get("norm_pix_loss", True) else "none",
            ),
            state=state,
            left_out=left_out,
            missing=missing,
        )

    @staticmethod
    def _decoder(keys: _Keys, state: dict[str, Tensor], config: Mapping[str, Any], out_dim: int) -> dict[str, Any]:
        width = int(config.get("decoder_hidden_size", 384))
        depth = int(config.get("decoder_num_hidden_layers", 4))
        if _depth(keys.state, "decoder.decoder_layers.") != depth:
            raise ConfigError("config.json's decoder_num_hidden_layers does not match the decoder's weights")
        for i in range(depth):
            _hf_block(keys, f"decoder.decoder_layers.{i}", f"decoder.blocks.{i}", state)
        _decoder_stem(keys, state, out_dim)
        return {
            "embed_dim": width,
            "depth": depth,
            "num_heads": int(config.get("decoder_num_attention_heads", 6)),
            "mlp_ratio": _mlp_ratio(int(config.get("decoder_intermediate_size", 1536)), width),
            "qkv_bias": "decoder.blocks.0.attn.qkv.bias" in state,
            "norm_eps": float(config.get("layer_norm_eps", 1e-12)),
        }
