"""What the contract tests (:mod:`anymae.testing.contracts`) and a plugin's own tests build on: a tiny model around
a part, a one-step ``fast_dev_run``, a build context without a model, YAML round trips, and the checks of tokens and
masks. This module needs pytest."""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import lightning.pytorch as pl
import torch
import yaml
from torch import Tensor
from torch.utils.data import DataLoader

from ..config import component_config, instantiate_component
from ..masking.base import Masker
from ..masking.random import RandomMasker
from ..model.decoders.base import Decoder
from ..model.decoders.mae import MAEDecoder
from ..model.encoder import ViTEncoder
from ..model.specs import BuildContext, LayoutSpec, TokenizerSpec
from ..model.targets.base import Target
from ..model.targets.patch import PatchTarget
from ..model.tokenizer import Tokenizer
from ..model.types import GridLayout, MaskSpec, PointLayout, TokenBatch
from ..training.module import MaskedAutoencoder

__all__ = [
    "CORE_PARTS",
    "EncoderStub",
    "available_devices",
    "build_context",
    "check_spec",
    "check_tokens",
    "config_roundtrip",
    "constant_like",
    "fast_dev_run",
    "multimodal_model",
    "on_device",
    "paired_model",
    "replace_raw",
    "tiny_model",
]


@dataclass
class EncoderStub:
    """What a part may read of an encoder while it builds (:class:`~anymae.model.specs.EncoderInfo`), without one."""

    embed_dim: int = 24
    num_layers: int = 1
    num_prefix_tokens: int = 1
    sees_all_tokens: bool = False


def build_context(tokens: TokenizerSpec, target_dim: int = 0, **encoder: Any) -> BuildContext:
    """The context a part is built with inside a model, for building one alone: the tokenizer's ``tokens`` spec, an
    :class:`EncoderStub` with ``encoder``'s fields, and the target's width."""
    return BuildContext(tokens, EncoderStub(**encoder), target_dim)


def available_devices() -> list[str]:
    """``["cpu"]``, plus ``"cuda"`` when a GPU is present."""
    return ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]


def config_roundtrip(component: Any, base: type) -> Any:
    """Describe ``component`` as YAML, parse it back as a ``base`` subclass with jsonargparse (as LightningCLI
    does), rebuild it, and check that the rebuilt component describes itself identically. Returns the rebuilt one."""
    config = component_config(component)
    assert isinstance(config, dict) and "class_path" in config, (
        f"{type(component).__name__} cannot describe its configuration: decorate its __init__ with @anymae.validated"
    )
    rebuilt = instantiate_component(yaml.safe_load(yaml.safe_dump(config)), base)
    assert type(rebuilt) is type(component)
    assert component_config(rebuilt) == config
    return rebuilt


def tiny_model(
    tokenizer: Tokenizer, target: Target | None = None, masker: Masker | None = None, decoder: Decoder | None = None
) -> MaskedAutoencoder:
    """The smallest sensible model around ``tokenizer``: a 1-block ViT of width 24 and a 1-block decoder of width 12
    (sin-cos embeddings of grids of rank 1 to 3 fit both)."""
    return MaskedAutoencoder(
        tokenizer=tokenizer,
        masker=masker or RandomMasker(mask_ratio=0.5),
        encoder=ViTEncoder(embed_dim=24, depth=1, num_heads=2),
        decoder=decoder or MAEDecoder(embed_dim=12, depth=1, num_heads=2),
        target=target or PatchTarget(),
    )


def multimodal_model(
    tokenizers: Mapping[str, Tokenizer], targets: Mapping[str, Target] | None = None
) -> MaskedAutoencoder:
    """A tiny multi-modal model over ``tokenizers`` (one per modality, by name): each modality half hidden, a 1-block
    encoder of width 24, a joint 1-block decoder of width 12, ``PatchTarget`` where ``targets`` names none, and a
    contrastive term between the modalities."""
    from ..masking.multi_modal import MultiModalMasker
    from ..model.multimodal.decoder import MultiModalDecoder
    from ..model.multimodal.encoder import MultiModalEncoder
    from ..model.multimodal.target import MultiModalTarget
    from ..model.multimodal.tokenizer import MultiModalTokenizer

    chosen = dict(targets or {})
    return MaskedAutoencoder(
        tokenizer=MultiModalTokenizer(dict(tokenizers)),
        masker=MultiModalMasker(mask_ratio=0.5),
        encoder=MultiModalEncoder(embed_dim=24, depth=1, num_heads=2),
        decoder=MultiModalDecoder(embed_dim=12, depth=1, num_heads=2),
        target=MultiModalTarget(
            {name: chosen.get(name) or PatchTarget() for name in tokenizers}, contrastive_weight=0.01
        ),
    )


class _Batches(pl.LightningDataModule):
    def __init__(self, batches: list[Mapping[str, Tensor]]) -> None:
        super().__init__()
        self.batches = batches

    def train_dataloader(self) -> DataLoader:
        return self._loader()

    def val_dataloader(self) -> DataLoader:
        return self._loader()

    def _loader(self) -> DataLoader:
        return DataLoader(self.batches, batch_size=None)  # type: ignore[arg-type]  # a list serves as a Dataset


def fast_dev_run(model: MaskedAutoencoder, data: pl.LightningDataModule | list[Mapping[str, Tensor]]) -> pl.Trainer:
    """One training and one validation step on the CPU (Lightning's ``fast_dev_run``); returns the trainer."""
    datamodule = data if isinstance(data, pl.LightningDataModule) else _Batches(data)
    trainer = pl.Trainer(
        fast_dev_run=True,
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, datamodule)
    loss = trainer.callback_metrics.get("train/loss")
    assert loss is not None and torch.isfinite(loss), f"training loss is {loss}"
    return trainer


def constant_like(batch: Mapping[str, Tensor], value: float = 0.5) -> dict[str, Tensor]:
    """The batch with every floating-point tensor set to one value (integer tensors, e.g. labels, kept)."""
    return {k: torch.full_like(v, value) if torch.is_floating_point(v) else v for k, v in batch.items()}


def check_tokens(tokens: TokenBatch, spec: LayoutSpec, token_dim: int, batch_size: int, device: str) -> None:
    x = tokens.tokens
    assert x.dim() == 3 and x.shape[0] == batch_size and x.shape[2] == token_dim, (
        f"tokens must be [B={batch_size}, N, D={token_dim}], got {tuple(x.shape)}"
    )
    assert torch.is_floating_point(x), f"tokens must be floating point, got {x.dtype}"
    assert x.device.type == torch.device(device).type, f"tokens on {x.device}, input on {device}"
    assert tokens.layout.kind == spec.kind, f"declared a {spec.kind} layout, produced {tokens.layout.kind}"
    positions = tokens.positions()
    assert positions.shape == (batch_size, x.shape[1], spec.rank), (
        f"positions must be [B, N, rank={spec.rank}], got {tuple(positions.shape)}"
    )
    if spec.kind == "grid":
        assert isinstance(tokens.layout, GridLayout)
        assert not torch.is_floating_point(positions), "grid positions must be integers"
        assert len(tokens.layout.shape) == spec.rank
        assert (positions >= 0).all() and (positions < torch.tensor(tokens.layout.shape, device=x.device)).all()
        if tokens.layout.dense:
            assert x.shape[1] == tokens.layout.num_cells, "a dense grid has one token per cell"
    else:
        assert isinstance(tokens.layout, PointLayout)
        assert torch.is_floating_point(positions), "point positions must be floating point"
    if tokens.padding_mask is not None:
        assert spec.variable_length, "a padding mask was produced but the layout spec says variable_length=False"
        assert tokens.padding_mask.dtype == torch.bool and tokens.padding_mask.shape == x.shape[:2]


def on_device(batch: Mapping[str, Tensor], device: str) -> dict[str, Tensor]:
    return {k: v.to(device) if isinstance(v, Tensor) else v for k, v in batch.items()}


def replace_raw(batch: Mapping[str, Tensor], raw: Tensor) -> dict[str, Tensor]:
    """Put the inverse's output back into the batch entry of the same shape."""
    keys = [k for k, v in batch.items() if isinstance(v, Tensor) and v.shape == raw.shape]
    assert keys, f"inverse() returned {tuple(raw.shape)}, which matches no batch entry"
    return {**batch, keys[0]: raw}


def check_spec(spec: MaskSpec, tokens: TokenBatch, device: str) -> None:
    b, n = tokens.tokens.shape[:2]
    k = spec.ids_keep.shape[1]
    assert spec.ids_keep.shape == (b, k) and spec.ids_masked.shape == (b, n - k), "every sample keeps K visible"
    assert spec.mask.shape == (b, n) and spec.mask.dtype == torch.bool
    assert spec.ids_keep.device.type == torch.device(device).type, "masks must be on the tokens' device"
    assert (spec.mask.sum(dim=1) == n - k).all()
    order = torch.cat([spec.ids_keep, spec.ids_masked], dim=1)
    assert torch.equal(order.sort(dim=1).values, torch.arange(n, device=order.device).expand(b, -1)), "a permutation"
    assert torch.equal(torch.gather(order, 1, spec.ids_restore), torch.arange(n, device=order.device).expand(b, -1))
    assert not torch.gather(spec.mask, 1, spec.ids_keep).any() and torch.gather(spec.mask, 1, spec.ids_masked).all()
    decoded_hidden = torch.gather(spec.mask, 1, spec.ids_decode)
    if spec.decode_valid is None:
        assert decoded_hidden.all(), "decoded tokens the encoder saw must be marked invalid in decode_valid"
    else:
        assert not (spec.decode_valid & ~decoded_hidden).any(), "a decoded token the encoder saw counts in the loss"


#: the core's parts that know no modality, which :class:`TokenizerContract` pairs every tokenizer with
CORE_PARTS = ("AdaptiveMasker", "HardPatchesMasker", "AttentionMasker", "CrossMAEDecoder", "SimMIM", "WeightedTarget")


def paired_model(part: str, tokenizer: Tokenizer, make_target: Any) -> MaskedAutoencoder:
    """A tiny model around ``tokenizer`` with one of :data:`CORE_PARTS` in it (half the tokens hidden)."""
    from ..masking.learned.adaptive import AdaptiveMasker
    from ..masking.learned.attention import AttentionMasker
    from ..masking.learned.hard_patches import HardPatchesMasker
    from ..model.decoders.cross import CrossMAEDecoder
    from ..model.decoders.linear import LinearDecoder
    from ..model.targets.weighted import WeightedTarget

    encoder = ViTEncoder(embed_dim=24, depth=1, num_heads=2, mask_token=part == "SimMIM")
    parts: dict[str, Any] = {
        "masker": RandomMasker(mask_ratio=0.5),
        "decoder": MAEDecoder(embed_dim=12, depth=1, num_heads=2),
        "target": make_target(),
    }
    if part == "AdaptiveMasker":
        parts["masker"] = AdaptiveMasker(mask_ratio=0.5, num_heads=2)
    elif part == "HardPatchesMasker":
        parts["masker"] = HardPatchesMasker(mask_ratio=0.5, predictor_depth=1, predictor_dim=12, predictor_heads=2)
    elif part == "AttentionMasker":
        parts["masker"] = AttentionMasker(mask_ratio=0.5, mode="hints", show_max=0.5)
    elif part == "CrossMAEDecoder":
        parts["decoder"] = CrossMAEDecoder(embed_dim=12, depth=2, num_heads=2, weight_fm=True)
    elif part == "SimMIM":
        parts["decoder"] = LinearDecoder()
    elif part == "WeightedTarget":
        parts["target"] = WeightedTarget({"first": make_target(), "second": make_target()}, {"second": 0.5})
    return MaskedAutoencoder(tokenizer=tokenizer, encoder=encoder, **parts)
