"""A pretrained encoder as a plain module: raw batch -> token features and pooled features, no masking.

``anymae.load_encoder(path)`` reads a checkpoint of ``anymae fit`` (or a folder written by ``anymae export``),
rebuilds the tokenizer and the encoder from the recorded configuration and loads their weights; with
``random_init=True`` it builds the same shapes with fresh weights, the baseline every protocol compares against.
"""

import glob
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn

from ..config import ConfigError, instantiate_component, upgrade_class_paths
from ..plugins.resolution import checked_config
from .encoder import Encoder
from .published import load_checkpoint, read_anymae_folder, read_weights
from .specs import BuildContext
from .tokenizer import Tokenizer

__all__ = [
    "Features",
    "Pool",
    "PretrainedEncoder",
    "build_encoder",
    "load_encoder",
    "resolve_checkpoint",
]

Pool = Literal["auto", "cls", "mean", "max"]


@dataclass(frozen=True)
class Features:
    """``tokens`` ``[S, P + N, D]`` (prefix tokens first; ``S = B * streams_per_sample``), ``pooled`` ``[B, D]``,
    ``padding_mask`` ``[S, N]``."""

    tokens: Tensor
    pooled: Tensor
    padding_mask: Tensor | None


class PretrainedEncoder(nn.Module):
    """Tokenizer + encoder, run on every token.

    Args:
        tokenizer: the pretraining tokenizer.
        encoder: the pretraining encoder (already built).
        pool: ``"cls"`` the class token, ``"mean"`` the mean of the non-padding tokens, ``"max"`` their
            feature-wise maximum (PointNet's and Point-MAE's symmetric pooling of point groups), ``"auto"`` the
            class token when the encoder has one (MAE's linear probe) and the mean otherwise (or when the encoder
            normalises the pooled feature: ``Encoder.fc_norm``, applied after pooling).
        layers: read the average of the last ``layers`` blocks' outputs, each under the encoder's final norm, instead
            of the last block's alone (1). MAE's last-layer features are tuned to reconstruction; an average over
            the last blocks is the read-out of BEiT's and data2vec's linear probes. Needs an encoder with
            ``EncoderOutput.layers``.
    """

    def __init__(self, tokenizer: Tokenizer, encoder: Encoder, pool: Pool = "auto", layers: int = 1) -> None:
        super().__init__()
        if layers < 1:
            raise ConfigError(f"layers must be at least 1 (the last block), got {layers}")
        if layers > 1 and layers > getattr(encoder, "num_layers", 0):
            raise ConfigError(
                f"layers={layers}: {type(encoder).__name__} has {getattr(encoder, 'num_layers', 0)} blocks to average"
            )
        self.layers = layers
        self.tokenizer = tokenizer
        self.encoder = encoder
        if pool == "auto":
            pool = "cls" if encoder.num_prefix_tokens and getattr(encoder, "fc_norm", None) is None else "mean"
        if pool == "cls" and not encoder.num_prefix_tokens:
            raise ConfigError(f"pool='cls' needs an encoder with a class token; {type(encoder).__name__} has none")
        self.pool = pool

    @property
    def embed_dim(self) -> int:
        return self.encoder.embed_dim

    def use_modalities(self, names: list[str] | None) -> None:
        """Read a multi-modal encoder from the modalities ``names`` only (``None``: all of them)."""
        select = getattr(self.tokenizer, "use_modalities", None)
        if select is None:
            raise ConfigError(
                f"modalities={names}: {type(self.tokenizer).__name__} has one modality (a multi-modal model's "
                "MultiModalTokenizer reads a subset)"
            )
        select(names)

    def pooled(self, features: Tensor, padding: Tensor | None) -> Tensor:
        pooled = self._pool(features, padding)
        fc_norm = getattr(self.encoder, "fc_norm", None)
        return pooled if fc_norm is None else fc_norm(pooled)

    def _pool(self, features: Tensor, padding: Tensor | None) -> Tensor:
        if self.pool == "cls":
            return features[:, 0]
        tokens = features[:, self.encoder.num_prefix_tokens :]
        if self.pool == "max":
            if padding is not None:
                tokens = tokens.masked_fill(padding.unsqueeze(-1), torch.finfo(tokens.dtype).min)
            return tokens.amax(dim=1)
        if padding is None:
            return tokens.mean(dim=1)
        keep = (~padding).unsqueeze(-1).to(tokens.dtype)
        return (tokens * keep).sum(dim=1) / keep.sum(dim=1).clamp_min(1)

    def forward(self, batch: Mapping[str, Tensor]) -> Features:
        tokens = self.tokenizer(batch)
        if self.layers == 1:
            features = self.encoder(tokens).latent
        else:
            hidden = self.encoder(tokens, layers=True).layers  # before the final norm, which each gets
            norm = getattr(self.encoder, "norm", None) or nn.Identity()
            features = torch.stack([norm(h) for h in hidden[-self.layers :]]).mean(dim=0)
        pooled = self.pooled(features, tokens.padding_mask)
        streams = self.tokenizer.streams_per_sample
        if streams > 1:  # one sequence per channel: a sample's feature is their mean
            pooled = pooled.view(-1, streams, pooled.shape[-1]).mean(dim=1)
        return Features(features, pooled, tokens.padding_mask)


def _is_pretraining(path: str) -> bool:
    try:  # mmap: only the small hyper-parameters are read, not every tensor
        hparams = load_checkpoint(path, mmap=True).get("hyper_parameters", {})
    except Exception:
        return False
    return isinstance(hparams.get("tokenizer"), dict) and isinstance(hparams.get("encoder"), dict)


def _mtime(path: str) -> float:
    try:
        return os.path.getmtime(path)
    except OSError:  # deleted while we looked (a run rotating its checkpoints), or a dangling link
        return -1.0


def resolve_checkpoint(path: str) -> Path:
    """``"latest"`` -> the newest pretraining checkpoint (``anymae fit``, not a probe or fine-tuning run) under
    ``./lightning_logs``; any other value is a path."""
    if path != "latest":
        return Path(path)
    found = sorted(glob.glob(os.path.join("lightning_logs", "*", "checkpoints", "*.ckpt")), key=_mtime)
    for candidate in reversed(found):
        if _is_pretraining(candidate):
            return Path(candidate)
    raise FileNotFoundError("checkpoint 'latest': no anymae fit checkpoint under lightning_logs/; run anymae fit first")


def _read_checkpoint(path: Path, map_location: Any) -> tuple[dict, dict[str, Tensor]]:
    """The tokenizer/encoder configs and the state dict of a checkpoint or an export folder of ours, or of a published
    file a plugin's :class:`~anymae.WeightsReader` recognises (sizes from the file)."""
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist (nor an export folder there)")
    if path.is_dir() and (path / "config.yaml").is_file():
        return read_anymae_folder(path)
    checkpoint = (
        {} if path.is_dir() or path.suffix == ".safetensors" else load_checkpoint(path, map_location, mmap=True)
    )
    hparams = checkpoint.get("hyper_parameters")
    if not isinstance(hparams, dict):  # not one of ours: a published file
        imported = read_weights(path)
        return imported.parts, imported.state
    missing = [key for key in ("tokenizer", "encoder") if not isinstance(hparams.get(key), dict)]
    if missing:
        raise ConfigError(f"{path} records no configuration for the {' and '.join(missing)}")
    return upgrade_class_paths(hparams), checkpoint["state_dict"]


def load_encoder(
    path: str | Path,
    *,
    random_init: bool = False,
    seed: int = 0,
    pool: Pool = "auto",
    layers: int = 1,
    map_location: Any = "cpu",
) -> PretrainedEncoder:
    """The tokenizer and encoder of a pretraining run, as a plain module (see :class:`PretrainedEncoder`).

    Args:
        path: an ``anymae fit`` checkpoint, an ``anymae export`` folder, ``"latest"``, or a published file a plugin
            reads (facebookresearch/mae, HuggingFace, VideoMAE, AudioMAE, Point-MAE, timm: see ``anymae.read_weights``).
        random_init: keep the shapes, not the weights (the random-init baseline).
        seed: seed of the fresh weights when ``random_init``.
        pool: how features are pooled.
        layers: average the last ``layers`` blocks' outputs (see :class:`PretrainedEncoder`).
        map_location: where tensors are loaded.
    """
    path = resolve_checkpoint(str(path))
    config, state = _read_checkpoint(path, map_location)
    return build_encoder(config, None if random_init else state, str(path), seed=seed, pool=pool, layers=layers)


def build_encoder(
    config: Mapping[str, Any],
    state: Mapping[str, Tensor] | None,
    source: str,
    seed: int = 0,
    pool: Pool = "auto",
    layers: int = 1,
) -> PretrainedEncoder:
    """The tokenizer and encoder of ``config`` (their ``class_path``/``init_args``), with the ``tokenizer.*`` and
    ``encoder.*`` weights of ``state`` (fresh ones from ``seed`` when ``None``); class paths resolve as in the commands
    (a refusal names ``source``)."""
    with torch.random.fork_rng(devices=[]), checked_config(source):  # the allow-list, as in the commands
        torch.manual_seed(seed)
        tokenizer = instantiate_component(config["tokenizer"], Tokenizer)
        encoder = instantiate_component(config["encoder"], Encoder)
        encoder.build(BuildContext(tokenizer.spec, encoder))
    module = PretrainedEncoder(tokenizer, encoder, pool, layers)
    if state is not None:
        own = {k: v for k, v in state.items() if k.startswith(("tokenizer.", "encoder."))}
        module.load_state_dict(own, strict=True)
    return module.eval()
