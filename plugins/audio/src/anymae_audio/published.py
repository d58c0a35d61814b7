"""Audio-MAE's published weights (facebookresearch/AudioMAE, Huang et al. 2022, https://arxiv.org/abs/2207.06405),
read from the files as they are shipped: the pretraining checkpoint (``pretrained.pth``: the ViT encoder and the
local decoder) and the fine-tuned encoders (``finetuned.pth``: the ViT with a classifier head).

What maps, and how:

* ``patch_embed.proj`` (a one-channel ``Conv2d`` over the ``[1, T, F]`` fbank, T as the image height) is our
  :class:`~anymae_audio.SpectrogramPatchTokenizer`'s token embedding as it is: both cut the fbank time-major,
  frequency fastest, and both list a patch's values ``(time, frequency)``-major.
* ``pos_embed`` is taken verbatim as a :class:`~anymae.LearnedPositionEmbedding` table. Audio-MAE's fixed sin-cos
  table is not the 2-D table of the token grid: its ``PatchEmbed`` gives the grid as ``(width, height)``
  (``(8, 64)`` for 1024 frames x 128 bins), so the table laid out for an ``8 x 64`` grid is read in the tokens'
  ``64 x 8`` order; a file's table is used as it is, whatever it holds. It is learnable here (Audio-MAE freezes it).
* The class token's position row is folded into ``cls_token`` (our class token has no position).
* ``blocks.*`` and ``norm`` are timm's, as ours. A fine-tuned file has ``fc_norm`` (Audio-MAE fine-tunes with
  global pooling: the norm of the mean of the patch tokens) and no ``norm``: ``fc_norm`` becomes our per-token final
  norm and the file's reader says so in ``missing``; ``head.*`` (the classifier) is left out.
* Sizes come from the file: the width, depth and MLP ratio from the tensors, the grid from ``pos_embed``'s length
  with 128 mel bins (every Audio-MAE recipe's; the count is not stored) in non-overlapping patches, or Audio-MAE's
  overlapping 10-frame stride (``use_custom_patch``) when only that fits. Heads are not stored: width / 64, as every
  Audio-MAE ViT (ViT-B: 12).
* The decoder's stem (``decoder_embed``, ``mask_token``, ``decoder_pos_embed``, ``decoder_norm``, ``decoder_pred``)
  always maps. Its blocks map when they are ViT blocks (``--decoder_mode 0``, the global decoder: an
  :class:`~anymae.MAEDecoder`). The published pretraining checkpoint uses the local decoder (``--decoder_mode 1``:
  16 blocks of 16 heads in 4 x 4 windows, every other one shifted by 2 along time), whose blocks come from
  AudioMAE's ``timm_patch/swin_transformer.py``: Swin V2 blocks (post-norm, scaled cosine attention with a learned
  temperature ``attn.tau`` and a position bias from a small MLP, ``attn.meta_mlp``). Our
  :class:`~anymae.WindowDecoder` has the windows and the shift but pre-norm ViT blocks without a position bias, so
  those blocks' weights are left out (``left_out`` and ``missing`` say so): the decoder is built with the stem
  loaded and fresh blocks. Swin V1 blocks (``attn.relative_position_bias_table``) are pre-norm with the ViT block's
  layout: everything but the bias tables maps.

The masker and target are Audio-MAE's pretraining recipe: unstructured masking at 0.8, norm-pix targets.
"""

import math
import re
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor

import anymae
from anymae import ConfigError, ImportedWeights, WeightsFile

__all__ = ["AudioMAEReader"]

#: mel bins of every Audio-MAE recipe (AudioSet, ESC-50, Speech Commands); a file does not store it
MEL_BINS = 128
#: the stride of Audio-MAE's overlapping patches (``use_custom_patch``)
CUSTOM_STRIDE = 10
#: Audio-MAE's ViTs have 64 features per head (ViT-S 6, ViT-B 12, ViT-L 16 heads); the decoder has 16 heads
HEAD_DIM = 64
DECODER_HEADS = 16
SOURCE = "facebookresearch/AudioMAE"


def _depth(state: Mapping[str, Tensor], prefix: str) -> int:
    """How many blocks ``{prefix}N.*`` the state holds (numbered from 0 without gaps)."""
    found = {int(m[1]) for k in state if (m := re.match(rf"{re.escape(prefix)}(\d+)\.", k))}
    if found != set(range(len(found))):
        raise ConfigError(f"{SOURCE}: the blocks {prefix}N are not numbered 0..{len(found) - 1} ({sorted(found)})")
    return len(found)


def _grid(tokens: int, patch: int) -> tuple[int, int, int | None]:
    """Frames, rows and stride (None: no overlap) of a grid of ``tokens`` patches over 128 mel bins."""
    columns = MEL_BINS // patch
    if MEL_BINS % patch == 0 and tokens % columns == 0:
        return tokens // columns * patch, tokens // columns, None
    columns = (MEL_BINS - patch) // CUSTOM_STRIDE + 1
    if patch > CUSTOM_STRIDE and tokens % columns == 0:
        rows = tokens // columns
        frames = (rows - 1) * CUSTOM_STRIDE + patch
        rounded = -(-frames // patch) * patch  # Audio-MAE's lengths are multiples of the patch: 101 rows of 1024
        return (rounded if (rounded - patch) // CUSTOM_STRIDE + 1 == rows else frames), rows, CUSTOM_STRIDE
    raise ConfigError(
        f"{SOURCE}: pos_embed holds {tokens} patch positions, which is no grid over {MEL_BINS} mel bins: neither "
        f"{patch} x {patch} patches ({MEL_BINS // patch} per row) nor Audio-MAE's overlapping ones of stride "
        f"{CUSTOM_STRIDE} ({(MEL_BINS - patch) // CUSTOM_STRIDE + 1} per row)"
    )


def _heads(width: int, head_dim: int, what: str) -> int:
    if width % head_dim:
        raise ConfigError(
            f"{SOURCE}: the {what} is {width} wide, which is not a multiple of {head_dim} features per head; the head "
            "count is not stored in the file"
        )
    return width // head_dim


def _component(class_path: str, **init_args: Any) -> dict[str, Any]:
    return {"class_path": class_path, "init_args": init_args}


class AudioMAEReader(anymae.WeightsReader):
    """Reads facebookresearch/AudioMAE's ``.pth`` files (pretraining and fine-tuned; see the module docstring).

    Recognised by a ViT whose ``patch_embed.proj`` takes one input channel (a spectrogram), with ``pos_embed``,
    ``cls_token`` and ``blocks.N``.
    """

    format = "audiomae"

    def detect(self, file: WeightsFile) -> bool:
        state = file.tensors
        proj, table = state.get("patch_embed.proj.weight"), state.get("pos_embed")
        if proj is None or table is None or proj.dim() != 4 or proj.shape[1] != 1:
            return False
        if not all(k in state for k in ("cls_token", "blocks.0.attn.qkv.weight")):
            return False
        # a spectrogram's grid is never square (time x frequency: 64 x 8, 101 x 12); a square one is a grey image's
        # (an MAE on digits), which the image plugin reads
        cells = table.shape[-2] - 1
        return math.isqrt(cells) ** 2 != cells

    def read(self, file: WeightsFile) -> ImportedWeights:
        state = file.tensors
        used: set[str] = set()
        out: dict[str, Tensor] = {}
        left_out: list[str] = []
        missing: list[str] = []

        def take(key: str) -> Tensor:
            if key not in state:
                raise ConfigError(f"{file.path}: {SOURCE} weights without {key}")
            used.add(key)
            return state[key]

        proj = take("patch_embed.proj.weight")
        width, _, ph, pw = proj.shape
        if ph != pw:
            raise ConfigError(f"{file.path}: {SOURCE} patches of {ph} x {pw}; the spectrogram tokenizer cuts squares")
        patch = int(ph)
        table = take("pos_embed")
        frames, rows, stride = _grid(table.shape[1] - 1, patch)
        columns = (table.shape[1] - 1) // rows
        depth = _depth(state, "blocks.")
        mlp_ratio = take("blocks.0.mlp.fc1.weight").shape[0] / width
        qkv_bias = "blocks.0.attn.qkv.bias" in state

        tokenizer = _component(
            "anymae_audio.SpectrogramPatchTokenizer",
            target_length=frames,
            num_mel_bins=MEL_BINS,
            patch_size=patch,
            **({"stride": stride} if stride else {}),
        )
        encoder = _component(
            "anymae.ViTEncoder",
            embed_dim=int(width),
            depth=depth,
            num_heads=_heads(int(width), HEAD_DIM, "encoder"),
            mlp_ratio=mlp_ratio,
            qkv_bias=qkv_bias,
            class_token=True,
            pos_embed=_component("anymae.LearnedPositionEmbedding"),
            norm_eps=1e-6,
        )
        out["encoder.token_embed.weight"] = proj.reshape(width, patch * patch)
        out["encoder.token_embed.bias"] = take("patch_embed.proj.bias")
        out["encoder.cls_token"] = take("cls_token") + table[:, :1]  # the class token's position, folded in
        out["encoder.pos_embed.table"] = table[0, 1:]
        out["encoder.pos_embed.grid"] = torch.tensor([rows, columns])
        for key in [k for k in state if k.startswith("blocks.")]:
            out[f"encoder.{key}"] = take(key)
        if "norm.weight" in state:
            out["encoder.norm.weight"], out["encoder.norm.bias"] = take("norm.weight"), take("norm.bias")
        elif "fc_norm.weight" in state:
            out["encoder.norm.weight"], out["encoder.norm.bias"] = take("fc_norm.weight"), take("fc_norm.bias")
            missing.append(
                "encoder.norm: the file has no per-token final norm (Audio-MAE fine-tunes with global pooling: "
                "fc_norm normalises the mean of the patch tokens); its fc_norm is used per token, so the tokens' "
                "features, and the mean of them, are not Audio-MAE's fc_norm(mean)"
            )
        else:
            raise ConfigError(f"{file.path}: {SOURCE} encoder without a final norm (norm.* or fc_norm.*)")

        parts: dict[str, Any] = {"tokenizer": tokenizer, "encoder": encoder}
        kind = "fine-tuned encoder"
        if "decoder_embed.weight" in state:
            kind = self._read_decoder(file, state, take, out, parts, left_out, missing, (rows, columns), stride)
            parts["masker"] = _component("anymae.RandomMasker", mask_ratio=0.8)  # Audio-MAE's pretraining recipe
            parts["target"] = _component("anymae.PatchTarget", normalize="patch")  # norm_pix_loss
        else:
            missing.append("decoder: the file holds the encoder only")

        if "head.weight" in state:
            classes = state["head.weight"].shape[0]
            used.update(k for k in state if k.startswith("head."))
            left_out.append(f"head.*: a classifier head ({classes} classes); anymae reads the encoder's features")
        rest = sorted({k.split(".")[0] + (".*" if "." in k else "") for k in state if k not in used})
        left_out += [f"{name}: not part of Audio-MAE's ViT, not read" for name in rest]
        overlap = f", stride {stride}" if stride else ""
        source = (
            f"{SOURCE} {kind}: ViT {width} wide, {depth} blocks; {frames} frames x {MEL_BINS} mel bins (the mel count "
            f"is not stored: Audio-MAE's) in {patch} x {patch} patches{overlap}, a {rows} x {columns} grid"
        )
        return ImportedWeights(source, parts, out, left_out, missing)

    def _read_decoder(
        self,
        file: WeightsFile,
        state: Mapping[str, Tensor],
        take: Callable[[str], Tensor],
        out: dict[str, Tensor],
        parts: dict[str, Any],
        left_out: list[str],
        missing: list[str],
        grid: tuple[int, int],
        stride: int | None,
    ) -> str:
        """Map the decoder into ``out``/``parts``; return what kind of file it is, in words."""
        embed = take("decoder_embed.weight")
        width = int(embed.shape[0])
        depth = _depth(state, "decoder_blocks.")
        if depth == 0:
            raise ConfigError(f"{file.path}: {SOURCE} decoder without blocks (decoder_blocks.N)")
        table = take("decoder_pos_embed")
        if table.shape[1] != grid[0] * grid[1] + 1:
            raise ConfigError(
                f"{file.path}: {SOURCE} decoder_pos_embed has {table.shape[1]} rows; the encoder's grid needs "
                f"{grid[0] * grid[1] + 1}"
            )
        out["decoder.stem.embed.weight"] = embed
        out["decoder.stem.embed.bias"] = take("decoder_embed.bias")
        out["decoder.stem.mask_token"] = take("mask_token")
        out["decoder.stem.pos_embed.table"] = table[0, 1:]
        out["decoder.stem.pos_embed.grid"] = torch.tensor(list(grid))
        out["decoder.stem.norm.weight"], out["decoder.stem.norm.bias"] = (
            take("decoder_norm.weight"),
            take("decoder_norm.bias"),
        )
        out["decoder.stem.head.weight"], out["decoder.stem.head.bias"] = (
            take("decoder_pred.weight"),
            take("decoder_pred.bias"),
        )
        block = {k.removeprefix("decoder_blocks.0."): v for k, v in state.items() if k.startswith("decoder_blocks.0.")}
        common: dict[str, Any] = {
            "embed_dim": width,
            "depth": depth,
            "mlp_ratio": block["mlp.fc1.weight"].shape[0] / width,
            "qkv_bias": "attn.qkv.bias" in block,
            "pos_embed": _component("anymae.LearnedPositionEmbedding"),
            "norm_eps": 1e-6,
        }
        blocks = [k for k in state if k.startswith("decoder_blocks.")]
        window = [6, 6] if stride else [4, 4]  # AudioMAE's window for its overlapping and plain grids
        if "attn.tau" in block or any(k.startswith("attn.meta_mlp.") for k in block):
            heads = int(block["attn.tau"].shape[0]) if "attn.tau" in block else DECODER_HEADS
            parts["decoder"] = _component(
                "anymae.WindowDecoder", window=window, shift=[2, 0], num_heads=heads, **common
            )
            for key in blocks:
                take(key)
            left_out.append(
                f"decoder_blocks.*: {len(blocks)} tensors of Audio-MAE's local decoder, {depth} Swin V2 blocks "
                "(AudioMAE's timm_patch/swin_transformer.py): post-norm (x + norm(attn(x))), scaled cosine attention "
                "with a learned temperature per head (attn.tau) and a position bias from an MLP of log-spaced "
                "relative coordinates (attn.meta_mlp.*); WindowDecoder's blocks are pre-norm ViT blocks with "
                "dot-product attention and no position bias, so none of these weights apply"
            )
            missing.append(
                f"decoder.blocks.*: left as initialised (Audio-MAE's Swin V2 blocks do not map); the decoder's stem "
                f"(decoder_embed, mask_token, decoder_pos_embed, decoder_norm, decoder_pred) is read, and its "
                f"{window[0]} x {window[1]} windows shifted by (2, 0) on odd blocks are Audio-MAE's (no_shift is not "
                "stored)"
            )
            return "pretraining checkpoint (local Swin V2 decoder: stem only)"
        if "attn.relative_position_bias_table" in block:
            bias = block["attn.relative_position_bias_table"]
            heads = int(bias.shape[1])
            parts["decoder"] = _component(
                "anymae.WindowDecoder", window=window, shift=[2, 0], num_heads=heads, **common
            )
            buffers = ("attn.relative_position_index", "attn_mask")
            for key in blocks:
                name = key.split(".", 2)[2]
                if name == "attn.relative_position_bias_table" or name in buffers:
                    take(key)
                else:
                    out[f"decoder.blocks.{key.removeprefix('decoder_blocks.')}"] = take(key)
            left_out.append(
                f"decoder_blocks.*.attn.relative_position_bias_table: Swin's learned relative position bias "
                f"({bias.shape[0]} offsets x {heads} heads in each of {depth} blocks); WindowDecoder's attention has "
                "no position bias"
            )
            if any(k.split(".", 2)[2] in buffers for k in blocks):
                left_out.append(
                    "decoder_blocks.*.attn.relative_position_index, attn_mask: buffers derived from the window, "
                    "not weights"
                )
            missing.append(
                "the decoder's relative position bias: WindowDecoder's windows attend without one, so its "
                f"predictions differ from Audio-MAE's; its {window[0]} x {window[1]} windows shifted by (2, 0) on odd "
                "blocks are Audio-MAE's (no_shift is not stored)"
            )
            return "pretraining checkpoint (local Swin decoder without its position bias)"
        if width % DECODER_HEADS:
            raise ConfigError(
                f"{file.path}: {SOURCE} decoder {width} wide, not a multiple of Audio-MAE's {DECODER_HEADS} decoder "
                "heads (the head count is not stored)"
            )
        if table[0, 0].abs().max() > 0:
            left_out.append(
                "decoder_pos_embed[:, 0]: a non-zero position of the class token in the decoder; our decoder gives "
                "the class token none"
            )
        parts["decoder"] = _component("anymae.MAEDecoder", num_heads=DECODER_HEADS, **common)
        for key in blocks:
            out[f"decoder.blocks.{key.removeprefix('decoder_blocks.')}"] = take(key)
        return "pretraining checkpoint (global decoder)"
