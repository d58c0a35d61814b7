"""``anymae embed``: the features of every sample of a data module from any checkpoint anymae reads, as ``.npz``.

    anymae embed --config examples/image/mae_tiny_digits.yaml --checkpoint latest --out digits.npz
    anymae embed --config my_data.yaml --checkpoint mae_pretrain_vit_base.pth --out feats.npz --pool mean --layers 4
    anymae embed --config examples/image/mae_tiny_digits.yaml --checkpoint mae_pretrain_vit_base.pth --out d.npz \
        --data.init_args.image_size 224 --data.init_args.in_chans 3

The config's ``data:`` section names the data module (``--data.<key> <value>`` overrides it); each split (``--splits
train val``) is read in order, without augmentation, batched on the device by a Lightning ``Trainer``
(``--accelerator``, ``--devices``, ``--strategy``: under DDP each rank embeds its share and rank zero writes the file
once). The file holds ``<split>_features`` ``[N, D]``, ``<split>_labels`` where the data has labels, and
``<split>_ids``: each sample's file path where the data module reads files, else its index. Unreadable samples are
skipped and counted.
"""

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import lightning.pytorch as pl
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..config import ConfigError, instantiate_component
from ..data.samples import SKIPPED_KEY, UNREADABLE_KEY, collate_skipping, dataset_len
from ..data.sampling import EpochShuffleSampler
from ..model.pretrained import PretrainedEncoder, load_encoder, resolve_checkpoint
from .errors import read_yaml
from .parser import command_parser

__all__ = ["Embedder", "run"]

INDEX_KEY = "_index"


class _Indexed(Dataset):
    """A map-style dataset's samples with their index (a sample it cannot read stays unreadable)."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return dataset_len(self.dataset)

    def __getitem__(self, index: int) -> Any:
        sample = self.dataset[index]
        return {**sample, INDEX_KEY: torch.tensor(index)} if isinstance(sample, dict) else sample


class Embedder(pl.LightningModule):
    """Pooled features of each batch of one split (``predict_step``), its loader made once the ranks are known."""

    def __init__(self, encoder: PretrainedEncoder, dataset: Dataset, batch_size: int, num_workers: int) -> None:
        super().__init__()
        self.encoder, self.dataset = encoder, _Indexed(dataset)
        self.batch_size, self.num_workers = batch_size, num_workers
        self.skipped = 0

    def predict_dataloader(self) -> DataLoader:
        sampler = EpochShuffleSampler(len(self.dataset), seed=0, shuffle=False)  # in order, split across ranks
        return DataLoader(
            self.dataset,
            batch_size=self.batch_size,
            sampler=sampler,
            num_workers=self.num_workers,
            collate_fn=collate_skipping,
        )

    def on_before_batch_transfer(self, batch: dict[str, Any], dataloader_idx: int) -> dict[str, Any]:
        """The skip records out before the batch moves to the device (its unreadable records are no tensors)."""
        self.skipped += int(batch.pop(SKIPPED_KEY))
        batch.pop(UNREADABLE_KEY, None)
        return batch

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, torch.Tensor]:
        if INDEX_KEY not in batch:  # nothing readable in this batch
            return {}
        out = {"features": self.encoder(batch).pooled.float(), "index": batch[INDEX_KEY]}
        if "label" in batch:
            out["label"] = batch["label"]
        return out


def run(argv: Sequence[str]) -> int:
    parser = command_parser("embed", __doc__)
    parser.add_argument("--config", required=True, help="a config whose data: section names the data module")
    parser.add_argument("--checkpoint", required=True, help="any checkpoint anymae reads (ours, published), 'latest'")
    parser.add_argument("--out", type=Path, required=True, help="the .npz file to write")
    parser.add_argument("--splits", nargs="+", default=["train", "val"], choices=["train", "val"])
    parser.add_argument("--pool", default="auto", choices=["auto", "cls", "mean", "max"])
    parser.add_argument("--layers", type=int, default=1, help="average the last N blocks' outputs")
    parser.add_argument("--random-init", action="store_true", help="the same shapes at random init (a baseline)")
    parser.add_argument("--batch-size", type=int, help="samples per batch (default: the data module's)")
    parser.add_argument("--accelerator", default="auto")
    parser.add_argument("--devices", default="1", help="as Lightning's Trainer: 1, 2, auto")
    parser.add_argument("--strategy", default="auto", help="as Lightning's Trainer: auto, ddp")
    options, rest = parser.parse_known_args(argv)
    config = read_yaml(options.config) or {}
    if "data" not in config:
        raise ConfigError(f"{options.config}: no data: section to embed")
    _override(config, rest, parser)
    data = instantiate_component(config["data"], pl.LightningDataModule)
    data.setup("fit")
    path = resolve_checkpoint(options.checkpoint)
    encoder = load_encoder(path, random_init=options.random_init, pool=options.pool, layers=options.layers)
    devices: Any = int(options.devices) if options.devices.isdigit() else options.devices
    trainer = pl.Trainer(  # one for every split: under DDP its ranks are launched once
        accelerator=options.accelerator,
        devices=devices,
        strategy=options.strategy,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    arrays: dict[str, Any] = {}
    for split in options.splits:
        samples = data.export_samples(split) if hasattr(data, "export_samples") else None
        if samples is None:
            if hasattr(data, "export_samples"):
                continue  # the data module has no such split (no validation set)
            raise ConfigError(f"embed: {type(data).__name__} cannot list its samples (no export_samples)")
        size = options.batch_size or getattr(data, "batch_size", 64)
        embedder = Embedder(encoder, samples, size, getattr(data, "num_workers", 0))
        try:
            predicted = cast(list[dict[str, torch.Tensor]], trainer.predict(embedder) or [])  # one dict per batch
        except ValueError as error:  # a tokenizer refusing the data's samples (channels, sizes)
            raise ConfigError(f"embed: {path}'s tokenizer cannot read the {split} samples: {error}") from None
        outputs = [o for o in predicted if o]
        gathered, rows, skipped = _gather(outputs, embedder.skipped)
        if not rows:  # on every rank, so none waits for the others
            raise ConfigError(f"embed: no readable sample in the {split} split ({skipped} unreadable)")
        if trainer.is_global_zero:
            arrays.update(_arrays(split, gathered, samples))
            print(f"{split}: {len(arrays[f'{split}_features'])} samples embedded ({skipped} unreadable skipped)")
    if trainer.is_global_zero:
        if not arrays:
            raise ConfigError("embed: no split had samples")
        options.out.parent.mkdir(parents=True, exist_ok=True)
        np.savez(options.out, **arrays)
        print(f"wrote {options.out} from {path}")
    return 0


def _override(config: dict[str, Any], rest: Sequence[str], parser: argparse.ArgumentParser) -> None:
    """``--data.init_args.image_size 224`` (as the other commands take them): set in the config's ``data:`` section,
    the value read as YAML."""
    import yaml

    if len(rest) % 2 or any(not key.startswith("--data.") for key in rest[::2]):
        parser.error(f"unrecognized arguments: {' '.join(rest)} (data overrides are --data.<key> <value> pairs)")
    for key, value in zip(rest[::2], rest[1::2], strict=True):
        *path, last = key.removeprefix("--").split(".")
        node = config
        for part in path:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{key}: {part} is not a section of the config")
        try:
            node[last] = yaml.safe_load(value)
        except yaml.YAMLError as error:
            raise ConfigError(f"{key}: {value!r} is not plain YAML data ({getattr(error, 'problem', error)})") from None


def _gather(outputs: list[dict[str, torch.Tensor]], skipped: int) -> tuple[list[dict[str, torch.Tensor]], int, int]:
    """Every rank's outputs (on the CPU) on rank zero only, and on every rank the total rows and skipped count."""
    local = [{k: v.cpu() for k, v in o.items()} for o in outputs]
    rows = sum(len(o["index"]) for o in local)
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return local, rows, skipped
    counts: list[Any] = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(counts, (rows, skipped))
    zero = torch.distributed.get_rank() == 0
    parts: list[Any] | None = [None] * len(counts) if zero else None
    torch.distributed.gather_object(local, parts, dst=0)  # the features go to rank zero alone
    everything = [o for part in parts or [] for o in part] if zero else []
    return everything, sum(r for r, _ in counts), sum(s for _, s in counts)


def _arrays(split: str, outputs: list[dict[str, torch.Tensor]], samples: Dataset) -> dict[str, Any]:
    """``<split>_features``, ``_labels``, ``_ids``, in sample order, each sample once (a rank's padding dropped)."""
    index = torch.cat([o["index"] for o in outputs])
    order, first = _first_of_each(index)
    out: dict[str, Any] = {f"{split}_features": torch.cat([o["features"] for o in outputs])[first].numpy()}
    if all("label" in o for o in outputs):
        out[f"{split}_labels"] = torch.cat([o["label"] for o in outputs])[first].numpy()
    files = getattr(getattr(samples, "files", None), "paths", None)
    out[f"{split}_ids"] = np.array([files[i] for i in order]) if files is not None else np.array(order)
    return out


def _first_of_each(index: torch.Tensor) -> tuple[list[int], torch.Tensor]:
    """The distinct sample indices in order, and the position of each one's first row."""
    order, inverse = torch.unique(index, sorted=True, return_inverse=True)
    positions = torch.arange(len(index))
    first = torch.full((len(order),), len(index), dtype=torch.long).scatter_reduce(0, inverse, positions, "amin")
    return order.tolist(), first
