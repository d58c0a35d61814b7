"""A pretrained encoder as a plain module: raw batch -> token features and pooled features, no masking.

``anymae.load_encoder(path)`` reads a checkpoint of ``anymae fit`` (or a folder written by ``anymae export``),
rebuilds the tokenizer and the encoder from the recorded configuration and loads their weights; with
``random_init=True`` it builds the same shapes with fresh weights, the baseline every protocol compares against.
"""

import glob
import os
import pickle
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

import torch
import yaml
from torch import Tensor, nn

from ..config import ConfigError, instantiate_component, upgrade_class_paths
from ..plugins.resolution import checked_config
from .encoder import Encoder
from .specs import BuildContext
from .tokenizer import Tokenizer

__all__ = ["Features", "Pool", "PretrainedEncoder", "load_checkpoint", "load_encoder", "resolve_checkpoint"]

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
            class token when the encoder has one (MAE's linear probe) and the mean otherwise.
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
            pool = "cls" if encoder.num_prefix_tokens else "mean"
        if pool == "cls" and not encoder.num_prefix_tokens:
            raise ConfigError(f"pool='cls' needs an encoder with a class token; {type(encoder).__name__} has none")
        self.pool = pool

    @property
    def embed_dim(self) -> int:
        return self.encoder.embed_dim

    def pooled(self, features: Tensor, padding: Tensor | None) -> Tensor:
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


def load_checkpoint(path: str | Path | IO[bytes], map_location: Any = "cpu", mmap: bool = False) -> dict[str, Any]:
    """A checkpoint's contents, read as tensors and plain data only (``torch.load(weights_only=True)``): a file that
    holds pickled Python objects, which could run code, is refused with a :class:`~anymae.ConfigError` that names it
    and what it holds, as is a file that is no checkpoint."""
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as error:
        what = re.search(r"GLOBAL (\S+)", str(error))
        raise ConfigError(
            f"{path} refused: it holds a pickled Python object{f' ({what[1]})' if what else ''} that could run code "
            "when loaded; anymae reads checkpoints as tensors and plain data only (every checkpoint anymae writes "
            "is one). Do not load this file unless you trust where it came from"
        ) from None
    except (RuntimeError, OSError, EOFError) as error:
        if isinstance(error, FileNotFoundError):
            raise
        raise ConfigError(f"{path} cannot be read as a checkpoint ({' '.join(str(error).split())[:200]})") from None
    if not isinstance(checkpoint, dict):
        raise ConfigError(f"{path} is no checkpoint: it holds a {type(checkpoint).__name__}, not a dict")
    return checkpoint


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
    """The tokenizer/encoder configs and the state dict of a checkpoint or an export folder."""
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist (nor an export folder there)")
    if path.is_dir():
        from safetensors.torch import load_file

        config = yaml.safe_load((path / "config.yaml").read_text())
        return upgrade_class_paths(config), load_file(path / "encoder.safetensors", device=str(map_location))
    checkpoint = load_checkpoint(path, map_location)
    hparams = checkpoint.get("hyper_parameters", {})
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
        path: an ``anymae fit`` checkpoint, an ``anymae export`` folder, or ``"latest"``.
        random_init: keep the shapes, not the weights (the random-init baseline).
        seed: seed of the fresh weights when ``random_init``.
        pool: how features are pooled.
        layers: average the last ``layers`` blocks' outputs (see :class:`PretrainedEncoder`).
        map_location: where tensors are loaded.
    """
    path = resolve_checkpoint(str(path))
    config, state = _read_checkpoint(path, map_location)
    with torch.random.fork_rng(devices=[]), checked_config(str(path)):  # the allow-list, as in the commands
        torch.manual_seed(seed)
        tokenizer = instantiate_component(config["tokenizer"], Tokenizer)
        encoder = instantiate_component(config["encoder"], Encoder)
        encoder.build(BuildContext(tokenizer.spec, encoder))
    module = PretrainedEncoder(tokenizer, encoder, pool, layers)
    if not random_init:
        prefixes = ("tokenizer.", "encoder.")
        own = {k: v for k, v in state.items() if k.startswith(prefixes)}
        module.load_state_dict(own, strict=True)
    return module.eval()
