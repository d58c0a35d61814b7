"""Point-MAE's published weights (Pang-Yatian/Point-MAE, Pang et al. 2022, https://arxiv.org/abs/2203.06604), read
from ``pretrain.pth`` as it is shipped (``{"base_model": state_dict, "optimizer": ..., ...}``, a DDP ``module.``
prefix dropped).

Every weight of the pretraining model maps, and the model computes what Point-MAE computes:

* ``MAE_encoder.encoder`` (the group embedding: ``first_conv`` and ``second_conv``, 1x1 ``Conv1d`` with
  ``BatchNorm1d``) is our :class:`~anymae_pointcloud.PointGroupTokenizer`'s mini-PointNet, the convolutions as
  linear layers; the running statistics come along.
* ``MAE_encoder.pos_embed`` (``Linear(3, 128) -> GELU -> Linear(128, D)`` on the centres) is the encoder's
  :class:`~anymae.MLPPositionEmbedding`, added before every block (``pos_every_block``) as Point-MAE's
  ``TransformerEncoder`` does; ``MAE_encoder.blocks.blocks.N`` and ``MAE_encoder.norm`` are timm-layout blocks
  (no bias on ``qkv``) and the final norm (LayerNorm eps 1e-5, PyTorch's default, which Point-MAE keeps).
* Point-MAE feeds the group embedding to the blocks as it is (its width is the transformer's), and the encoder's
  latents to the decoder as they are: our ``encoder.token_embed`` and ``decoder.stem.embed`` are set to the identity.
* ``mask_token``, ``decoder_pos_embed``, ``MAE_decoder.blocks.N`` and ``MAE_decoder.norm`` are an
  :class:`~anymae.MAEDecoder`'s (``pos_every_block``); ``increase_dim`` (``Conv1d(D, 3k, 1)``) is its head, whose
  ``3k`` outputs are the ``k`` points of a group, ``(x, y, z)`` fastest, as :class:`~anymae_pointcloud.ChamferTarget`
  reads them.

Not in the file, so taken from Point-MAE's pretraining config (``cfgs/pretrain.yaml``) and said in ``missing``: the
number of groups (64; the group size, 32 there, is read from ``increase_dim``), the heads (6 for 384 wide: 64
features per head), and the masking (38 of 64 groups hidden at random: ``int(0.6 * 64)``, the ratio given as
``38 / 64`` so that anymae hides the same count). The loss is Chamfer-L2 (``cdl2``).

Point-MAE's fine-tuned files (its ``PointTransformer``) are recognised but refused: their class token gets a learned
position (``cls_pos``) before every block, which our encoder's class token cannot hold.
"""

import re
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

import anymae
from anymae import ConfigError, ImportedWeights, WeightsFile

__all__ = ["PointMAEReader"]

SOURCE = "Pang-Yatian/Point-MAE"
#: Point-MAE's pretraining config (cfgs/pretrain.yaml): what the file does not store
NUM_GROUPS, MASK_RATIO, HEAD_DIM = 64, 0.6, 64
DROP_PATH = 0.1  # Point-MAE's drop_path_rate in the encoder and the decoder (its pretraining config)
ENCODER = "MAE_encoder."


def _depth(state: dict[str, Tensor], prefix: str) -> int:
    found = {int(m[1]) for k in state if (m := re.match(rf"{re.escape(prefix)}(\d+)\.", k))}
    if not found or found != set(range(len(found))):
        raise ConfigError(f"{SOURCE}: no blocks {prefix}0, 1, ... in the file (found {sorted(found)})")
    return len(found)


def _component(class_path: str, **init_args: Any) -> dict[str, Any]:
    return {"class_path": class_path, "init_args": init_args}


class PointMAEReader(anymae.WeightsReader):
    """Reads Pang-Yatian/Point-MAE's ``pretrain.pth`` (see the module docstring): recognised by
    ``MAE_encoder.encoder.first_conv`` and ``MAE_encoder.blocks.blocks``, or, to refuse it by name, a fine-tuned
    ``PointTransformer`` (``encoder.first_conv``, ``blocks.blocks``, ``cls_pos``)."""

    format = "point-mae"

    def detect(self, file: WeightsFile) -> bool:
        state = file.tensors
        pretraining = (
            f"{ENCODER}encoder.first_conv.0.weight" in state and f"{ENCODER}blocks.blocks.0.norm1.weight" in state
        )
        finetuned = all(k in state for k in ("encoder.first_conv.0.weight", "blocks.blocks.0.norm1.weight", "cls_pos"))
        return pretraining or finetuned

    def read(self, file: WeightsFile) -> ImportedWeights:
        state = file.tensors
        if f"{ENCODER}encoder.first_conv.0.weight" not in state:
            raise ConfigError(
                f"{file.path}: a fine-tuned {SOURCE} PointTransformer: its class token gets a learned position "
                "(cls_pos) added before every block, which anymae's ViTEncoder (a class token without a position) "
                "cannot hold, and its features are the class token beside the max over the groups; read the "
                "pretraining file (pretrain.pth) instead"
            )
        used: set[str] = set()

        def take(key: str) -> Tensor:
            if key not in state:
                raise ConfigError(f"{file.path}: {SOURCE} weights without {key}")
            used.add(key)
            return state[key]

        out: dict[str, Tensor] = {}
        self._group_embedding(take, state, out)
        dim = int(state[f"{ENCODER}encoder.second_conv.3.weight"].shape[0])
        width = int(state[f"{ENCODER}norm.weight"].shape[0])
        if dim != width:
            raise ConfigError(
                f"{file.path}: {SOURCE} group embedding {dim} wide for a transformer {width} wide; Point-MAE's "
                "pretraining feeds one to the other as it is (encoder_dims = trans_dim)"
            )
        if width % HEAD_DIM:
            raise ConfigError(
                f"{file.path}: {SOURCE} transformer {width} wide, not a multiple of {HEAD_DIM} features per head "
                "(the head count is not stored)"
            )
        heads = width // HEAD_DIM
        out["encoder.token_embed.weight"] = torch.eye(width)  # the embedding goes in as it is
        out["encoder.token_embed.bias"] = torch.zeros(width)
        self._mlp(take, f"{ENCODER}pos_embed.", "encoder.pos_embed.mlp.", out)
        depth = self._blocks(take, state, f"{ENCODER}blocks.blocks.", "encoder.blocks.", out)
        if depth == 0:
            raise ConfigError(f"{file.path}: {SOURCE} weights without encoder blocks ({ENCODER}blocks.blocks.N)")
        out["encoder.norm.weight"], out["encoder.norm.bias"] = (
            take(f"{ENCODER}norm.weight"),
            take(f"{ENCODER}norm.bias"),
        )
        block = f"{ENCODER}blocks.blocks.0."
        mlp_ratio = state[f"{block}mlp.fc1.weight"].shape[0] / width
        qkv_bias = f"{block}attn.qkv.bias" in state
        hidden = int(state[f"{ENCODER}pos_embed.0.weight"].shape[0])

        transformer: dict[str, Any] = {
            "num_heads": heads,
            "mlp_ratio": mlp_ratio,
            "qkv_bias": qkv_bias,
            "norm_eps": 1e-5,
            "drop_path_rate": DROP_PATH,
        }
        position = _component("anymae.MLPPositionEmbedding", hidden_dim=hidden)
        parts: dict[str, Any] = {
            "encoder": _component(
                "anymae.ViTEncoder",
                embed_dim=width,
                depth=depth,
                class_token=False,
                pos_embed=position,
                pos_every_block=True,
                **transformer,
            )
        }
        missing = [
            f"tokenizer.num_groups: not stored in the file; Point-MAE's {NUM_GROUPS} (its pretraining config, 1024 "
            "points per cloud) is used",
            f"num_heads: not stored in the file; {heads} ({HEAD_DIM} features per head, as Point-MAE's 6 for 384 "
            "wide) is used in the encoder and the decoder",
            f"drop_path_rate: not stored in the file; Point-MAE's {DROP_PATH} (its pretraining config) is used in the "
            "encoder and the decoder, for pretraining further",
        ]
        left_out: list[str] = []
        group_size = None
        if "increase_dim.0.weight" in state:
            head = take("increase_dim.0.weight")
            if head.shape[0] % 3:
                raise ConfigError(f"{file.path}: {SOURCE} increase_dim predicts {head.shape[0]} values, not points")
            group_size = head.shape[0] // 3
            decoder_depth = self._blocks(take, state, "MAE_decoder.blocks.", "decoder.blocks.", out)
            if decoder_depth == 0:
                decoder_depth = self._blocks(take, state, "MAE_decoder.blocks.blocks.", "decoder.blocks.", out)
            out["decoder.stem.embed.weight"] = torch.eye(width)  # the latents go in as they are
            out["decoder.stem.mask_token"] = take("mask_token")
            self._mlp(take, "decoder_pos_embed.", "decoder.stem.pos_embed.mlp.", out)
            out["decoder.stem.norm.weight"] = take("MAE_decoder.norm.weight")
            out["decoder.stem.norm.bias"] = take("MAE_decoder.norm.bias")
            out["decoder.stem.head.weight"] = head[..., 0]
            out["decoder.stem.head.bias"] = take("increase_dim.0.bias")
            decoder_hidden = int(state["decoder_pos_embed.0.weight"].shape[0])
            parts["decoder"] = _component(
                "anymae.MAEDecoder",
                embed_dim=width,
                depth=decoder_depth,
                embed_bias=False,
                pos_embed=_component("anymae.MLPPositionEmbedding", hidden_dim=decoder_hidden),
                pos_every_block=True,
                **transformer,
            )
            hidden_groups = int(MASK_RATIO * NUM_GROUPS)
            parts["masker"] = _component("anymae.RandomMasker", mask_ratio=hidden_groups / NUM_GROUPS)
            parts["target"] = _component("anymae_pointcloud.ChamferTarget", norm="l2")
        else:
            group_size = 32
            missing.insert(1, "tokenizer.group_size: not stored (no decoder to read it from); Point-MAE's 32 is used")
            missing.append("decoder: the file holds the encoder only")
        parts = {
            "tokenizer": _component(
                "anymae_pointcloud.PointGroupTokenizer", num_groups=NUM_GROUPS, group_size=group_size, dim=dim
            ),
            **parts,
        }
        rest = sorted({k.rsplit(".", 1)[0] + ".*" if "." in k else k for k in state if k not in used})
        left_out += [f"{name}: not part of Point-MAE's pretraining model, not read" for name in rest]
        decoder = f" + {parts['decoder']['init_args']['depth']} decoder blocks" if "decoder" in parts else ""
        source = (
            f"{SOURCE} pretraining checkpoint: {width} wide, {depth} blocks{decoder}; {NUM_GROUPS} groups (not "
            f"stored: Point-MAE's) of {group_size} points"
        )
        return ImportedWeights(source, parts, out, left_out, missing)

    @staticmethod
    def _group_embedding(take: Callable[[str], Tensor], state: dict[str, Tensor], out: dict[str, Tensor]) -> None:
        """``first_conv``/``second_conv`` -> the mini-PointNet's ``first``/``second`` (1x1 convolutions as linear
        layers; BatchNorm with its running statistics)."""
        for theirs, ours in (("first_conv", "first"), ("second_conv", "second")):
            prefix, target = f"{ENCODER}encoder.{theirs}.", f"tokenizer.embed.{ours}."
            for index in (0, 3):
                out[f"{target}{index}.weight"] = take(f"{prefix}{index}.weight")[..., 0]
                out[f"{target}{index}.bias"] = take(f"{prefix}{index}.bias")
            for name in ("weight", "bias", "running_mean", "running_var"):
                out[f"{target}1.{name}"] = take(f"{prefix}1.{name}")
            tracked = f"{prefix}1.num_batches_tracked"
            out[f"{target}1.num_batches_tracked"] = take(tracked) if tracked in state else torch.tensor(0)

    @staticmethod
    def _mlp(take: Callable[[str], Tensor], prefix: str, target: str, out: dict[str, Tensor]) -> None:
        """``Linear -> GELU -> Linear`` (an ``nn.Sequential``: layers 0 and 2), under another prefix."""
        for index in (0, 2):
            for name in ("weight", "bias"):
                out[f"{target}{index}.{name}"] = take(f"{prefix}{index}.{name}")

    @staticmethod
    def _blocks(
        take: Callable[[str], Tensor], state: dict[str, Tensor], prefix: str, target: str, out: dict[str, Tensor]
    ) -> int:
        """Copy the blocks ``{prefix}N.*`` to ``{target}N.*``; how many there were (0 for none)."""
        keys = [k for k in state if k.startswith(prefix) and k[len(prefix) : len(prefix) + 1].isdigit()]
        if not keys:
            return 0
        depth = _depth(state, prefix)
        for key in keys:
            out[target + key.removeprefix(prefix)] = take(key)
        return depth
