"""``anymae shard``: write a data module's samples as streaming shards (litdata), to a folder or an object store.

    anymae shard --config examples/image/mae_tiny_digits.yaml --out shards/digits
    anymae fit --config examples/image/mae_tiny_digits.yaml --data anymae.StreamingDataModule \\
        --data.train_dir shards/digits/train --data.val_dir shards/digits/val

The data module is the ``data:`` section of a config (any registered data module, and any plugin's). Samples are
written as the data module gives them for evaluation, without random augmentation (random crops and flips of images
are not repeated in the shards: shard the pre-augmentation view, augment at training time where the plugin offers
it). Unreadable samples are skipped and counted.
"""

from collections.abc import Sequence
from pathlib import PurePosixPath

import lightning.pytorch as pl
from torch.utils.data import Dataset

from ..config import ConfigError, instantiate_component
from ..data.samples import dataset_len
from ..data.streaming import write_shards
from .errors import read_yaml
from .parser import command_parser

__all__ = ["run"]


def run(argv: Sequence[str]) -> int:
    parser = command_parser("shard", "Write a data module's samples as shards.")
    parser.add_argument("--config", required=True, help="a config whose data: section names the data module")
    parser.add_argument("--out", required=True, help="output folder or URL (s3://bucket/prefix); splits go below it")
    parser.add_argument("--splits", nargs="+", default=["train", "val"], choices=["train", "val"])
    parser.add_argument("--chunk-bytes", default="64MB", help="size of each shard file")
    parser.add_argument("--workers", type=int, default=1, help="processes writing shards")
    options = parser.parse_args(argv)
    config = read_yaml(options.config) or {}
    if "data" not in config:
        raise ConfigError(f"{options.config}: no data: section to shard")
    data = instantiate_component(config["data"], pl.LightningDataModule)
    data.setup("fit")
    for split in options.splits:
        samples = data.export_samples(split) if hasattr(data, "export_samples") else _loader_dataset(data, split)
        if samples is None:
            continue
        out = str(PurePosixPath(options.out) / split) if "://" not in options.out else f"{options.out}/{split}"
        written = write_shards(samples, out, options.chunk_bytes, options.workers)
        print(f"{split}: {written} samples to {out} ({dataset_len(samples) - written} unreadable skipped)")
    return 0


def _loader_dataset(data: pl.LightningDataModule, split: str) -> Dataset | None:
    loader = data.train_dataloader() if split == "train" else data.val_dataloader()
    return getattr(loader, "dataset", None) if loader else None
