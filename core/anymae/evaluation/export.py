"""Exporting a pretrained encoder: safetensors weights plus its configuration (:func:`export_encoder`, read back with
``anymae.load_encoder("exported/")``), and other libraries' formats through :class:`Exporter` classes that plugins
register. ``anymae export`` runs them. :func:`timm_vit_export` and :func:`load_timm_export` are what every modality's
``timm`` exporter shares: a ``ViTEncoder`` as timm's ``VisionTransformer`` (our blocks are timm's; only the patch
embedding, which each modality lays out its own way, and the position table, with timm's class-token row, differ).
"""

import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
import yaml
from torch import Tensor, nn

from ..config import component_config
from ..model.pretrained import PretrainedEncoder
from ..model.types import GridLayout, TokenBatch

__all__ = ["Exporter", "export_encoder", "grid_table", "load_timm_export", "timm_vit_export", "write_timm_export"]


class Exporter(ABC):
    """Writes a :class:`~anymae.evaluation.PretrainedEncoder` (or, with ``reads = "model"``, a whole
    :class:`~anymae.MaskedAutoencoder`: a format with the decoder, as HuggingFace's ``ViTMAEForPreTraining``) in
    another library's format.

    Attributes:
        format: the name given to ``anymae export --format``.
        reads: what :meth:`check` and :meth:`export` receive: ``"encoder"`` a ``PretrainedEncoder``, ``"model"`` the
            ``MaskedAutoencoder`` of an ``anymae fit`` checkpoint (or of a converted folder with a decoder).
    """

    format: ClassVar[str]
    reads: ClassVar[Literal["encoder", "model"]] = "encoder"

    @abstractmethod
    def check(self, encoder: Any) -> None:
        """Raise ``ValueError`` saying why this encoder (or model) cannot be written in this format."""

    @abstractmethod
    def export(self, encoder: Any, out: Path) -> list[Path]:
        """Write the files into ``out``; return their paths."""


def export_encoder(encoder: PretrainedEncoder, out: Path) -> list[Path]:
    """``encoder.safetensors`` (tokenizer and encoder weights) and ``config.yaml`` (their configuration)."""
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    (out / "decoder.safetensors").unlink(missing_ok=True)  # a former export's: it would not match this encoder
    state = {k: v.detach().contiguous() for k, v in encoder.state_dict().items()}
    save_file(state, out / "encoder.safetensors")
    config = {"tokenizer": component_config(encoder.tokenizer), "encoder": component_config(encoder.encoder)}
    (out / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return [out / "encoder.safetensors", out / "config.yaml"]


def grid_table(pos_embed: nn.Module, grid: Sequence[int], device: torch.device | None = None) -> Tensor:
    """The position embedding of every cell of ``grid``, row-major: ``[cells, D]``, computed on ``device`` (default:
    where its weights are)."""
    if device is None:
        device = next((t.device for t in [*pos_embed.parameters(), *pos_embed.buffers()]), None)
    cells = int(torch.tensor(list(grid)).prod())
    tokens = TokenBatch(torch.zeros(1, cells, 1, device=device), GridLayout(tuple(grid)))
    return pos_embed(tokens, torch.arange(cells, device=device)[None])[0]


def timm_vit_export(
    encoder: PretrainedEncoder, patch_weight: Tensor, img_size: Sequence[int]
) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """``timm.create_model("vit_base_patch16_224", pretrained=False, **kwargs)`` arguments and the state dict it loads
    strictly, for ``encoder``'s ``ViTEncoder`` whose token embedding is the ``Conv2d`` weight ``patch_weight``
    ``[D, C, ph, pw]`` over ``img_size`` images (the modality's tokens laid out as timm's patches, row-major as the
    tokenizer's grid)."""
    vit: Any = encoder.encoder
    block = vit.blocks[0]
    table = grid_table(vit.pos_embed, encoder.tokenizer.layout.shape or ())
    if vit.cls_token is not None:
        table = torch.cat([table.new_zeros(1, vit.embed_dim), table])  # the class token gets no position
    norm = "fc_norm" if vit.fc_norm is not None else "norm"  # timm's global_pool="avg" normalises the mean
    state = {
        "patch_embed.proj.weight": patch_weight,
        "patch_embed.proj.bias": vit.token_embed.bias,
        "pos_embed": table[None],
        **{f"blocks.{k}": v for k, v in vit.blocks.state_dict().items()},
        f"{norm}.weight": getattr(vit, norm).weight,
        f"{norm}.bias": getattr(vit, norm).bias,
        **({"cls_token": vit.cls_token} if vit.cls_token is not None else {}),
    }
    kwargs = {
        "img_size": list(img_size),
        "patch_size": list(patch_weight.shape[2:]),
        "in_chans": patch_weight.shape[1],
        "embed_dim": vit.embed_dim,
        "depth": len(vit.blocks),
        "num_heads": block.attn.num_heads,
        "mlp_ratio": block.mlp.fc1.out_features / vit.embed_dim,
        "qkv_bias": block.attn.qkv.bias is not None,
        "class_token": vit.cls_token is not None,
        "global_pool": "token" if vit.cls_token is not None and vit.fc_norm is None else "avg",
        "fc_norm": vit.fc_norm is not None,  # else our final norm of every token stays where it is
        "num_classes": 0,
    }
    return kwargs, {k: v.detach().contiguous().clone() for k, v in state.items()}


def write_timm_export(
    kwargs: dict[str, Any], state: dict[str, Tensor], out: Path, name: str, **extra: Any
) -> list[Path]:
    """``<name>.safetensors`` and ``<name>.json`` (model name, keyword arguments and ``extra``) in ``out``."""
    from safetensors.torch import save_file

    save_file(state, out / f"{name}.safetensors")
    (out / f"{name}.json").write_text(
        json.dumps({"model": "vit_base_patch16_224", "kwargs": kwargs, **extra}, indent=2)
    )
    return [out / f"{name}.safetensors", out / f"{name}.json"]


def load_timm_export(folder: str | Path, name: str = "timm_vit") -> tuple[nn.Module, dict[str, Any]]:
    """The timm model a ``timm`` exporter wrote into ``folder`` (``timm.create_model``, then ``load_state_dict`` with
    ``strict=True``), in eval mode, and its spec (the JSON file)."""
    import timm
    from safetensors.torch import load_file

    folder = Path(folder)
    spec = json.loads((folder / f"{name}.json").read_text())
    model = timm.create_model(spec["model"], pretrained=False, **spec["kwargs"])
    model.load_state_dict(load_file(folder / f"{name}.safetensors"), strict=True)
    return model.eval(), spec
