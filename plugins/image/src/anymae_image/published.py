"""Published image MAE weights, read from local files as they are shipped (see :class:`anymae.WeightsReader`).

Three formats, told apart by their contents:

* :class:`MAECheckpointReader` (``"mae"``): facebookresearch/mae's ``.pth`` files, ``{"model": state}``:
  ``mae_pretrain_vit_{base,large,huge}.pth`` hold the ViT encoder under timm's names, ``mae_visualize_vit_*.pth``
  the whole MAE (also ``decoder_embed``, ``mask_token``, ``decoder_pos_embed``, ``decoder_blocks.N``,
  ``decoder_norm``, ``decoder_pred``).
* :class:`TimmViTReader` (``"timm"``): a timm ``VisionTransformer`` state dict (``.pth``/``.bin`` or
  ``.safetensors``, e.g. timm's ``vit_base_patch16_224.mae``), possibly with a classifier (``head``, ``fc_norm``).
* :class:`HFViTMAEReader` (``"hf-vitmae"``): a HuggingFace folder of ``ViTMAEForPreTraining`` or ``ViTMAEModel``
  (``config.json`` with ``model.safetensors`` or ``pytorch_model.bin``), under the names of the checkpoints on the
  Hub (``vit.encoder.layer.N.attention.attention.query``), of transformers 5's modules (``vit.layers.N.attention.
  q_proj``) or of what transformers 5's ``save_pretrained`` writes (``decoder.decoder_encoder.layer.N...``).

Our blocks are timm's ``Block``, so the mapping is a renaming: the patch embedding's ``Conv2d`` weight
``[D, C, p, p]`` becomes our linear map of ``(p, p, C)`` patches (``permute(0, 2, 3, 1)``, a small copy), HF's
separate query/key/value are concatenated into the fused ``qkv`` (a copy of those three), every other tensor is the
file's own (a view of the memory-mapped file). The fixed sin-cos position tables MAE stores are compared with ours
and recomputed, not loaded (reported in ``left_out``); a table that is not MAE's (timm's learned ``pos_embed``)
becomes a :class:`~anymae.LearnedPositionEmbedding` holding it, its class-token row added to the class token (the
class token always gets it, so the sum is exact).

What files do not store is taken by rule and said here: the number of attention heads is not in a ``.pth`` or timm
file (the weights are the same for any head count): it is ``width // 64`` (64 per head: ViT-Ti/S/B/L), except for
the published widths whose heads are wider (ViT-H/14 is 1280 wide with 16 heads, 80 each; also 1152, 1408 and 1664:
16 heads); MAE's decoder is 512 wide with 16 heads (32 per head), so a decoder gets ``width // 32``. A reader
constructed with ``num_heads``/``decoder_num_heads`` uses those instead. LayerNorm epsilon is MAE's and timm's
``1e-6`` (HuggingFace folders give theirs in ``config.json``). The image size is the position table's grid (square)
times the patch.
"""

import math
import re
from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import Tensor

from anymae import ConfigError, ImportedWeights, WeightsFile, WeightsReader, grid_coords, sincos_embedding

__all__ = ["HFViTMAEReader", "MAECheckpointReader", "TimmViTReader", "vit_num_heads"]

#: the published ViT widths whose heads are not 64 wide (ViT-H/14 1280, ViT-g 1408, ViT-G 1664, SoViT-400m 1152)
WIDE_HEADS = {1152: 16, 1280: 16, 1408: 16, 1664: 16}
#: timm's (and MAE's) block keys, which are ours; ``attn.qkv.bias`` only with ``qkv_bias``
BLOCK_KEYS = (
    "norm1.weight",
    "norm1.bias",
    "attn.qkv.weight",
    "attn.qkv.bias",
    "attn.proj.weight",
    "attn.proj.bias",
    "norm2.weight",
    "norm2.bias",
    "mlp.fc1.weight",
    "mlp.fc1.bias",
    "mlp.fc2.weight",
    "mlp.fc2.bias",
)
#: (width, depth) -> the ViT's name
VIT_NAMES = {(192, 12): "Ti", (384, 12): "S", (768, 12): "B", (1024, 24): "L", (1280, 32): "H"}
#: MAE's pretraining defaults: 75% of the patches hidden
MAE_MASK_RATIO = 0.75


def vit_num_heads(width: int) -> int:
    """The heads of a published ViT of this width (not stored in its weights): 64 per head, except the widths in
    :data:`WIDE_HEADS`."""
    if width in WIDE_HEADS:
        return WIDE_HEADS[width]
    if width % 64:
        raise ConfigError(
            f"the attention heads are not stored in the file and width {width} is no published ViT's (64 per head, "
            f"or {sorted(WIDE_HEADS)}); construct the reader with num_heads"
        )
    return width // 64


def decoder_num_heads(width: int) -> int:
    """The heads of an MAE decoder of this width: 32 per head (MAE's decoder: 512 wide, 16 heads)."""
    if width % 32:
        raise ConfigError(
            f"the decoder's attention heads are not stored in the file and its width {width} is not a multiple of "
            "32 (MAE's decoder: 512 wide, 16 heads); construct the reader with decoder_num_heads"
        )
    return width // 32


def mlp_ratio(hidden: int, width: int) -> float:
    """A ratio ``r`` whose ``int(width * r)`` is ``hidden`` (timm's ``Block`` sizes its MLP so)."""
    ratio = hidden / width
    while int(width * ratio) < hidden:  # 6144 / 1408 * 1408 is 6143.999...
        ratio = math.nextafter(ratio, math.inf)
    return ratio


def _square(n: int) -> int | None:
    side = math.isqrt(n) if n > 0 else 0
    return side if side and side * side == n else None


def _vit_name(width: int, depth: int, patch: tuple[int, int]) -> str:
    size = VIT_NAMES.get((width, depth))
    p = patch[0] if patch[0] == patch[1] else f"{patch[0]}x{patch[1]}"
    return f"ViT-{size}/{p}" if size else f"ViT (width {width}, depth {depth}, patch {p})"


def _file_vit_name(state: Mapping[str, Tensor]) -> str:
    conv = state["patch_embed.proj.weight"]
    depth = sum(1 for k in state if re.fullmatch(r"blocks\.\d+\.norm1\.weight", k))
    return _vit_name(conv.shape[0], depth, (conv.shape[2], conv.shape[3]))


def _pos_grid(pos: Tensor, class_token: bool) -> tuple[int, bool] | None:
    """``(cells, has class row)`` of a ``pos_embed`` ``[1, L, D]`` over a square grid, or ``None``."""
    length = pos.shape[-2]
    if class_token and _square(length - 1):
        return length - 1, True
    if _square(length):  # timm's no_embed_class, or no class token
        return length, False
    return None


def _is_image_vit(state: Mapping[str, Tensor]) -> bool:
    """timm's ViT names with a 2-D patch embedding and a position table over a square grid (shapes only: no tensor is
    read). A video ViT's patch embedding is 3-D; Audio-MAE's spectrogram grid is not square."""
    weight, pos = state.get("patch_embed.proj.weight"), state.get("pos_embed")
    if weight is None or pos is None or "blocks.0.attn.qkv.weight" not in state:
        return False
    return weight.dim() == 4 and pos.dim() in (2, 3) and _pos_grid(pos, "cls_token" in state) is not None


def _has_decoder(state: Mapping[str, Tensor]) -> bool:
    return "mask_token" in state or any(k.startswith("decoder_") for k in state)


def _sincos_table(grid: tuple[int, int], dim: int) -> Tensor | None:
    return sincos_embedding(grid_coords(grid), dim) if dim % 4 == 0 else None


def _tolerance(dtype: torch.dtype) -> float:
    return max(1e-5, 4 * torch.finfo(dtype).eps) if dtype.is_floating_point else 0.0


class _Mapping:
    """The tensors of one file under timm's/MAE's names, mapped to ours; each taken key is ticked off, so what is
    left can be refused by name."""

    def __init__(self, tensors: Mapping[str, Tensor], source: str) -> None:
        self.tensors, self.source = tensors, source
        self.left = set(tensors)
        self.state: dict[str, Tensor] = {}
        self.left_out: list[str] = []
        self.missing: list[str] = []

    def take(self, key: str) -> Tensor:
        if key not in self.tensors:
            raise ConfigError(f"{self.source}: the file has no {key}")
        self.left.discard(key)
        return self.tensors[key]

    def blocks(self, prefix: str, ours: str, width: int) -> tuple[int, int, bool]:
        """Map ``{prefix}N.*`` to ``{ours}N.*``; returns depth, MLP width and whether qkv has a bias."""
        pattern = re.compile(rf"^{re.escape(prefix)}(\d+)\.")
        found = sorted({int(m[1]) for k in self.tensors if (m := pattern.match(k))})
        if not found:
            raise ConfigError(f"{self.source}: the file has no {prefix}N.* blocks")
        if found != list(range(len(found))):
            raise ConfigError(f"{self.source}: the {prefix}N blocks are not numbered 0..{len(found) - 1}: {found}")
        qkv_bias = f"{prefix}0.attn.qkv.bias" in self.tensors
        hidden = self.tensors.get(f"{prefix}0.mlp.fc1.weight")
        if hidden is None:
            raise ConfigError(f"{self.source}: the file has no {prefix}0.mlp.fc1.weight")
        for i in found:
            for name in BLOCK_KEYS:
                if name == "attn.qkv.bias" and not qkv_bias:
                    if f"{prefix}{i}.{name}" in self.tensors:
                        raise ConfigError(f"{self.source}: {prefix}{i}.{name} is there but not in block 0")
                    continue
                value = self.take(f"{prefix}{i}.{name}")
                self.state[f"{ours}{i}.{name}"] = value
            qkv, fc1 = self.tensors[f"{prefix}{i}.attn.qkv.weight"], self.tensors[f"{prefix}{i}.mlp.fc1.weight"]
            if tuple(qkv.shape) != (3 * width, width) or tuple(fc1.shape) != (hidden.shape[0], width):
                raise ConfigError(
                    f"{self.source}: {prefix}{i} has qkv {list(qkv.shape)} and fc1 {list(fc1.shape)}; expected "
                    f"[{3 * width}, {width}] and [{hidden.shape[0]}, {width}] (every block {width} wide)"
                )
        return len(found), hidden.shape[0], qkv_bias

    def position(
        self, key: str, ours: str, grid: tuple[int, int], class_row: bool, what: str
    ) -> tuple[dict[str, Any] | None, Tensor | None]:
        """Map the table ``key`` (``[1, L, D]`` or ``[L, D]``, a class-token row first when ``class_row``): MAE's
        sin-cos table is left to our default (``None``), any other becomes a learned table. Returns the position
        embedding's config and the class-token row (``None`` when there is none or it is zero)."""
        table = self.take(key)
        table = table[0] if table.dim() == 3 else table
        cells = grid[0] * grid[1]
        if table.shape[0] != cells + class_row:
            rows = f"{cells} + 1 (class token)" if class_row else str(cells)
            raise ConfigError(f"{self.source}: {key} has {table.shape[0]} rows; the {grid} grid needs {rows}")
        body = table[1:] if class_row else table
        row = table[0] if class_row and bool(table[0].any()) else None  # a learned class-token position
        sincos = _sincos_table(grid, table.shape[1])
        if sincos is not None:
            diff = (body.float() - sincos).abs().max().item()
            if diff <= _tolerance(body.dtype):
                self.left_out.append(
                    f"{key}: MAE's fixed 2-D sin-cos table ({what}), not loaded: recomputed by our "
                    f"SinCosPositionEmbedding (equal to the stored one to {diff:.1e})"
                )
                return None, row
        self.state[f"{ours}.table"] = body
        self.state[f"{ours}.grid"] = torch.tensor(grid)
        return {"class_path": "anymae.LearnedPositionEmbedding", "init_args": {"init": "trunc_normal"}}, row

    def refuse_rest(self) -> None:
        if self.left:
            shown = ", ".join(sorted(self.left)[:6])
            more = f" and {len(self.left) - 6} more" if len(self.left) > 6 else ""
            raise ConfigError(
                f"{self.source}: {len(self.left)} tensors have no counterpart in anymae's ViTEncoder/MAEDecoder: "
                f"{shown}{more}"
            )


def map_vit(
    tensors: Mapping[str, Tensor],
    source: str,
    *,
    num_heads: int | None = None,
    decoder_heads: int | None = None,
    norm_eps: float = 1e-6,
    image_size: tuple[int, int] | None = None,
    normalize: str = "none",
    mask_ratio: float = MAE_MASK_RATIO,
) -> ImportedWeights:
    """Map a ViT (and an MAE decoder) under timm's/MAE's names to our parts.

    Args:
        tensors: the state dict, MAE's names (``patch_embed.proj``, ``blocks.N``, ``decoder_blocks.N``, ...).
        source: what the file is, in words (starts the messages).
        num_heads, decoder_heads: the heads (``None``: by :func:`vit_num_heads` and :func:`decoder_num_heads`).
        norm_eps: LayerNorm epsilon of every norm.
        image_size: the image size, when the file says it (else the position table's square grid times the patch).
        normalize, mask_ratio: the target's normalisation and the masker's ratio, where the file holds a decoder.
    """
    m = _Mapping(tensors, source)
    conv = m.take("patch_embed.proj.weight")
    if conv.dim() != 4:
        raise ConfigError(f"{source}: patch_embed.proj.weight is {list(conv.shape)}, not a 2-D patch embedding")
    width, channels, ph, pw = conv.shape
    bias = tensors.get("patch_embed.proj.bias")
    m.left.discard("patch_embed.proj.bias")
    m.state["encoder.token_embed.weight"] = conv.permute(0, 2, 3, 1).reshape(width, ph * pw * channels)
    m.state["encoder.token_embed.bias"] = bias if bias is not None else conv.new_zeros(width)
    depth, hidden, qkv_bias = m.blocks("blocks.", "encoder.blocks.", width)
    class_token = "cls_token" in tensors

    pos = tensors.get("pos_embed")
    if pos is None:
        raise ConfigError(f"{source}: the file has no pos_embed (a ViT without a position table)")
    if image_size is not None:
        if image_size[0] % ph or image_size[1] % pw:
            raise ConfigError(f"{source}: image size {image_size} is not divisible by the patch {ph}x{pw}")
        grid = (image_size[0] // ph, image_size[1] // pw)
        class_row = class_token and pos.shape[-2] == grid[0] * grid[1] + 1
    else:
        found = _pos_grid(pos, class_token)
        if found is None:
            raise ConfigError(f"{source}: pos_embed {list(pos.shape)} is no table over a square grid of patches")
        side = math.isqrt(found[0])
        grid, class_row = (side, side), found[1]
    pos_config, row = m.position("pos_embed", "encoder.pos_embed", grid, class_row, "encoder")
    if class_token:
        cls = m.take("cls_token")
        m.state["encoder.cls_token"] = cls if row is None else cls + row.to(cls.dtype)

    if "norm.weight" in tensors:
        m.state["encoder.norm.weight"], m.state["encoder.norm.bias"] = m.take("norm.weight"), m.take("norm.bias")
        if "fc_norm.weight" in tensors:
            m.take("fc_norm.weight"), m.take("fc_norm.bias")
            m.left_out.append("fc_norm.*: timm's norm of the pooled feature, for its classifier")
    elif "fc_norm.weight" in tensors:  # timm's global_pool="avg": no final norm, a norm after mean pooling
        m.state["encoder.fc_norm.weight"] = m.take("fc_norm.weight")
        m.state["encoder.fc_norm.bias"] = m.take("fc_norm.bias")
    else:
        raise ConfigError(f"{source}: the file has neither norm.* nor fc_norm.* (a ViT without a final norm)")
    head = [k for k in m.left if k.startswith("head.")]
    if head:
        shape = list(tensors["head.weight"].shape) if "head.weight" in tensors else "?"
        m.left -= set(head)
        m.left_out.append(f"head.*: a classifier head ({shape})")

    heads = num_heads if num_heads is not None else vit_num_heads(width)
    if width % heads:
        raise ConfigError(f"{source}: width {width} is not divisible by {heads} heads")
    image = (grid[0] * ph, grid[1] * pw)
    tokenizer_args = {
        "image_size": image[0] if image[0] == image[1] else list(image),
        "patch_size": ph if ph == pw else [ph, pw],
        "in_chans": channels,
    }
    encoder_args: dict[str, Any] = {
        "embed_dim": width,
        "depth": depth,
        "num_heads": heads,
        "mlp_ratio": mlp_ratio(hidden, width),
        "qkv_bias": qkv_bias,
        "class_token": class_token,
        "norm_eps": norm_eps,
    }
    if "encoder.fc_norm.weight" in m.state:  # timm's global_pool="avg": the mean-pooled feature is normalised
        encoder_args["fc_norm"] = True
    if pos_config is not None:
        encoder_args["pos_embed"] = pos_config
    parts: dict[str, Any] = {
        "tokenizer": {"class_path": "anymae_image.ImagePatchTokenizer", "init_args": tokenizer_args},
        "encoder": {"class_path": "anymae.ViTEncoder", "init_args": encoder_args},
    }
    if _has_decoder(tensors):
        parts.update(_map_decoder(m, width, grid, ph * pw * channels, decoder_heads, norm_eps))
        parts["target"] = {"class_path": "anymae.PatchTarget", "init_args": {"normalize": normalize}}
        parts["masker"] = {"class_path": "anymae.RandomMasker", "init_args": {"mask_ratio": mask_ratio}}
    else:
        m.missing.append("decoder: the file holds the encoder only")
    m.refuse_rest()
    return ImportedWeights(source, parts, m.state, m.left_out, m.missing)


def _map_decoder(
    m: _Mapping, width: int, grid: tuple[int, int], out_dim: int, heads: int | None, norm_eps: float
) -> dict[str, Any]:
    embed = m.take("decoder_embed.weight")
    dim = embed.shape[0]
    if embed.shape[1] != width:
        raise ConfigError(f"{m.source}: decoder_embed.weight is {list(embed.shape)}; the encoder is {width} wide")
    m.state["decoder.stem.embed.weight"] = embed
    if "decoder_embed.bias" in m.tensors:
        m.state["decoder.stem.embed.bias"] = m.take("decoder_embed.bias")
    m.state["decoder.stem.mask_token"] = m.take("mask_token")
    depth, hidden, qkv_bias = m.blocks("decoder_blocks.", "decoder.blocks.", dim)
    m.state["decoder.stem.norm.weight"], m.state["decoder.stem.norm.bias"] = (
        m.take("decoder_norm.weight"),
        m.take("decoder_norm.bias"),
    )
    pred = m.take("decoder_pred.weight")
    if tuple(pred.shape) != (out_dim, dim):
        raise ConfigError(
            f"{m.source}: decoder_pred.weight is {list(pred.shape)}; predicting the {out_dim} values of a patch from "
            f"the decoder's {dim} needs [{out_dim}, {dim}]"
        )
    m.state["decoder.stem.head.weight"], m.state["decoder.stem.head.bias"] = pred, m.take("decoder_pred.bias")
    length = m.tensors["decoder_pos_embed"].shape[-2] if "decoder_pos_embed" in m.tensors else 0
    pos_config, row = m.position(
        "decoder_pos_embed", "decoder.stem.pos_embed", grid, length == grid[0] * grid[1] + 1, "decoder"
    )
    if row is not None:
        raise ConfigError(
            f"{m.source}: decoder_pos_embed has a non-zero class-token row, which anymae's MAEDecoder does not add "
            "(MAE's fixed table has a zero row there)"
        )
    n_heads = heads if heads is not None else decoder_num_heads(dim)
    if dim % n_heads:
        raise ConfigError(f"{m.source}: decoder width {dim} is not divisible by {n_heads} heads")
    args: dict[str, Any] = {
        "embed_dim": dim,
        "depth": depth,
        "num_heads": n_heads,
        "mlp_ratio": mlp_ratio(hidden, dim),
        "qkv_bias": qkv_bias,
        "norm_eps": norm_eps,
        "embed_bias": "decoder.stem.embed.bias" in m.state,
    }
    if pos_config is not None:
        args["pos_embed"] = pos_config
    return {"decoder": {"class_path": "anymae.MAEDecoder", "init_args": args}}


class _ViTReader(WeightsReader):
    """Readers of files without head counts: ``num_heads``/``decoder_num_heads`` replace the rule
    (:func:`vit_num_heads`, :func:`decoder_num_heads`)."""

    def __init__(self, num_heads: int | None = None, decoder_num_heads: int | None = None) -> None:
        self.num_heads, self.decoder_num_heads = num_heads, decoder_num_heads


class MAECheckpointReader(_ViTReader):
    """facebookresearch/mae's ``.pth`` files: ``{"model": state}`` under timm's ViT names, the encoder only
    (``mae_pretrain_vit_*.pth``) or with MAE's decoder (``mae_visualize_vit_*.pth``).

    Recognised by timm's ViT keys with MAE's decoder keys, or nested under ``"model"`` without a classifier (a
    fine-tuned MAE or DeiT classifier is read by :class:`TimmViTReader`). A file with a decoder gets MAE's
    ``RandomMasker(0.75)`` and a ``PatchTarget`` without ``norm_pix_loss``: the only published files with the
    decoder, the ``mae_visualize`` ones, predict raw pixels (the MAE repository's demo notebook introduces them as
    trained on pixel targets for visualization, and its PRETRAIN.md turns ``--norm_pix_loss`` off for a model meant
    for visualization, while its recipe for representation learning turns it on: an encoder-only file needs no
    target). A file that records its training arguments as a plain dict (``"args"``) gives its own ``norm_pix_loss``
    and ``mask_ratio``.
    """

    format: ClassVar[str] = "mae"

    def detect(self, file: WeightsFile) -> bool:
        state = file.tensors
        if not _is_image_vit(state):
            return False
        nested = isinstance(file.contents.get("model"), Mapping)
        classifier = "head.weight" in state or "fc_norm.weight" in state
        return _has_decoder(state) or (nested and not classifier)

    def read(self, file: WeightsFile) -> ImportedWeights:
        state = file.tensors
        args = file.contents.get("args")
        args = args if isinstance(args, Mapping) else {}
        normalize = "patch" if args.get("norm_pix_loss") else "none"
        ratio = args.get("mask_ratio", MAE_MASK_RATIO)
        name = _file_vit_name(state)
        what = "encoder and decoder" if _has_decoder(state) else "encoder"
        source = f"facebookresearch/mae {name} ({what})"
        return map_vit(
            state,
            source,
            num_heads=self.num_heads,
            decoder_heads=self.decoder_num_heads,
            normalize=normalize,
            mask_ratio=float(ratio) if 0 < float(ratio) < 1 else MAE_MASK_RATIO,
        )


class TimmViTReader(_ViTReader):
    """A timm ``VisionTransformer`` state dict (a ``.safetensors`` file, or a ``.pth``/``.bin`` at the top level or
    nested under ``"state_dict"``/``"model"``): timm's MAE weights (``vit_base_patch16_224.mae``), or a classifier
    whose ``head`` is left out. A learned ``pos_embed`` becomes a :class:`~anymae.LearnedPositionEmbedding`; with
    ``global_pool="avg"`` timm has no final norm but ``fc_norm``, and so does our encoder (``ViTEncoder(fc_norm=True)``,
    mean pooling). What our ViT cannot compute
    (register tokens, layer scale, ``norm_pre``, query/key norms, attention pooling) is a :class:`~anymae.ConfigError`
    naming the tensors."""

    format: ClassVar[str] = "timm"

    def detect(self, file: WeightsFile) -> bool:
        state = file.tensors
        return _is_image_vit(state) and not _has_decoder(state) and not MAECheckpointReader().detect(file)

    def read(self, file: WeightsFile) -> ImportedWeights:
        state = file.tensors
        name = _file_vit_name(state)
        kind = "classifier" if "head.weight" in state else "encoder"
        return map_vit(state, f"timm {name} ({kind})", num_heads=self.num_heads)


# HuggingFace's names -> MAE's. Layers: transformers 5's modules (q_proj, ...) and the Hub's (attention.attention.query)
_HF_LAYER = {
    "layernorm_before": "norm1",
    "layernorm_after": "norm2",
    "attention.q_proj": "q",
    "attention.attention.query": "q",
    "attention.k_proj": "k",
    "attention.attention.key": "k",
    "attention.v_proj": "v",
    "attention.attention.value": "v",
    "attention.o_proj": "attn.proj",
    "attention.output.dense": "attn.proj",
    "mlp.fc1": "mlp.fc1",
    "intermediate.dense": "mlp.fc1",
    "mlp.fc2": "mlp.fc2",
    "output.dense": "mlp.fc2",
}
_HF_EMBEDDINGS = {
    "embeddings.cls_token": "cls_token",
    "embeddings.position_embeddings": "pos_embed",
    "embeddings.patch_embeddings.projection.weight": "patch_embed.proj.weight",
    "embeddings.patch_embeddings.projection.bias": "patch_embed.proj.bias",
    "layernorm.weight": "norm.weight",
    "layernorm.bias": "norm.bias",
}
_HF_DECODER = {
    "decoder.mask_token": "mask_token",
    "decoder.decoder_pos_embed": "decoder_pos_embed",
    "decoder.decoder_embed.weight": "decoder_embed.weight",
    "decoder.decoder_embed.bias": "decoder_embed.bias",
    "decoder.decoder_norm.weight": "decoder_norm.weight",
    "decoder.decoder_norm.bias": "decoder_norm.bias",
    "decoder.decoder_pred.weight": "decoder_pred.weight",
    "decoder.decoder_pred.bias": "decoder_pred.bias",
}
# encoder layers: vit.layers.N (transformers 5) or vit.encoder.layer.N (the Hub); decoder layers:
# decoder.decoder_layers.N (both) or decoder.decoder_encoder.layer.N (transformers 5's save_pretrained)
_HF_LAYER_KEY = re.compile(
    r"^(?P<part>vit\.|decoder\.decoder_|)(?:layers|encoder\.layer)\.(?P<i>\d+)\.(?P<name>.+)\.(?P<kind>weight|bias)$"
)
#: ViTMAEConfig's defaults, for the keys an older config.json leaves out
HF_DEFAULTS: dict[str, Any] = {
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "hidden_act": "gelu",
    "layer_norm_eps": 1e-12,
    "image_size": 224,
    "patch_size": 16,
    "num_channels": 3,
    "qkv_bias": True,
    "decoder_num_attention_heads": 16,
    "decoder_hidden_size": 512,
    "decoder_num_hidden_layers": 8,
    "decoder_intermediate_size": 2048,
    "mask_ratio": 0.75,
    "norm_pix_loss": False,
}


def _hf_prefix(state: Mapping[str, Tensor]) -> str | None:
    """``"vit."`` for ``ViTMAEForPreTraining``, ``""`` for ``ViTMAEModel``, ``None`` for neither."""
    for prefix in ("vit.", ""):
        if f"{prefix}embeddings.patch_embeddings.projection.weight" in state:
            return prefix
    return None


def _pair(value: Any) -> tuple[int, int]:
    return (int(value), int(value)) if isinstance(value, int | float) else (int(value[0]), int(value[1]))


class HFViTMAEReader(WeightsReader):
    """A HuggingFace ``ViTMAEForPreTraining`` (encoder and decoder) or ``ViTMAEModel`` (encoder) folder; sizes,
    LayerNorm epsilon, ``mask_ratio`` and ``norm_pix_loss`` from its ``config.json``. Recognised by HF's ViTMAE
    names with a config whose ``model_type`` is ``vit_mae`` (or none: then :meth:`read` asks for it)."""

    format: ClassVar[str] = "hf-vitmae"

    def detect(self, file: WeightsFile) -> bool:
        if _hf_prefix(file.tensors) is None:
            return False
        return file.config is None or file.config.get("model_type") == "vit_mae"

    def read(self, file: WeightsFile) -> ImportedWeights:
        if file.config is None:
            raise ConfigError(
                f"{file.path}: HuggingFace ViTMAE weights need the folder's config.json (the sizes are there); "
                "give the folder, not the weights file"
            )
        config = {**HF_DEFAULTS, **file.config}
        state = file.tensors
        prefix = _hf_prefix(state) or ""
        if config["hidden_act"] != "gelu":
            raise ConfigError(f"{file.path}: hidden_act {config['hidden_act']!r}: anymae's blocks use exact GELU")
        renamed: dict[str, Tensor] = {}
        qkv: dict[tuple[str, str, str], dict[str, Tensor]] = {}
        unknown: list[str] = []
        for key, value in state.items():
            inner = key.removeprefix(prefix) if key.startswith(prefix) else None
            if inner in _HF_EMBEDDINGS:
                renamed[_HF_EMBEDDINGS[inner]] = value
            elif key in _HF_DECODER:
                renamed[_HF_DECODER[key]] = value
            elif (m := _HF_LAYER_KEY.match(key)) and (m["part"] == prefix or m["part"] == "decoder.decoder_"):
                blocks = "decoder_blocks" if m["part"] == "decoder.decoder_" else "blocks"
                name = _HF_LAYER.get(m["name"])
                if name is None:
                    unknown.append(key)
                elif name in ("q", "k", "v"):
                    qkv.setdefault((blocks, m["i"], m["kind"]), {})[name] = value
                else:
                    renamed[f"{blocks}.{m['i']}.{name}.{m['kind']}"] = value
            else:
                unknown.append(key)
        if unknown:
            shown = ", ".join(sorted(unknown)[:6])
            raise ConfigError(f"{file.path}: {len(unknown)} tensors are not ViTMAE's: {shown}")
        for (blocks, i, kind), parts in qkv.items():
            if set(parts) != {"q", "k", "v"}:
                raise ConfigError(f"{file.path}: layer {i} of the {blocks} has {sorted(parts)} of query/key/value")
            renamed[f"{blocks}.{i}.attn.qkv.{kind}"] = torch.cat([parts["q"], parts["k"], parts["v"]])
        architecture = "ViTMAEForPreTraining" if _has_decoder(renamed) else "ViTMAEModel"
        image, patch = _pair(config["image_size"]), _pair(config["patch_size"])
        ratio = float(config["mask_ratio"])
        name = _vit_name(int(config["hidden_size"]), int(config["num_hidden_layers"]), patch)
        imported = map_vit(
            renamed,
            f"HuggingFace {architecture} {name}",
            num_heads=int(config["num_attention_heads"]),
            decoder_heads=int(config["decoder_num_attention_heads"]),
            norm_eps=float(config["layer_norm_eps"]),
            image_size=image,
            normalize="patch" if config["norm_pix_loss"] else "none",
            mask_ratio=ratio if 0 < ratio < 1 else MAE_MASK_RATIO,
        )
        if not 0 < ratio < 1 and "masker" in imported.parts:
            imported.missing.append(f"masker: config.json's mask_ratio {ratio} is no masking ratio; MAE's 0.75 used")
        _check_hf_sizes(file, config, imported, patch)
        return imported


def _check_hf_sizes(file: WeightsFile, config: Mapping[str, Any], imported: ImportedWeights, patch: Any) -> None:
    """config.json's sizes against the weights'."""
    tokenizer = imported.parts["tokenizer"]["init_args"]
    encoder = imported.parts["encoder"]["init_args"]
    found = {
        "hidden_size": encoder["embed_dim"],
        "num_hidden_layers": encoder["depth"],
        "intermediate_size": round(encoder["embed_dim"] * encoder["mlp_ratio"]),
        "num_channels": tokenizer["in_chans"],
        "patch_size": _pair(tokenizer["patch_size"]),
        "qkv_bias": encoder["qkv_bias"],
    }
    expected = {**{k: config[k] for k in found}, "patch_size": patch}
    if "decoder" in imported.parts:
        decoder = imported.parts["decoder"]["init_args"]
        found |= {
            "decoder_hidden_size": decoder["embed_dim"],
            "decoder_num_hidden_layers": decoder["depth"],
            "decoder_intermediate_size": round(decoder["embed_dim"] * decoder["mlp_ratio"]),
        }
        expected |= {k: config[k] for k in found if k.startswith("decoder_")}
    wrong = [f"{k} {expected[k]} (the weights: {found[k]})" for k in found if found[k] != expected[k]]
    if wrong:
        raise ConfigError(f"{file.path}: config.json does not fit the weights: {', '.join(wrong)}")
