"""``anymae probe``, ``anymae knn``, ``anymae finetune``: LightningCLI over the protocols, one result row per run.

    anymae knn --config examples/image/knn_digits.yaml --model.encoder.checkpoint latest --compare-random
    anymae probe --config examples/image/probe_digits.yaml --data.labels_per_class 5 --data.seed 1

Besides LightningCLI's arguments each command takes ``--results PATH`` (a CSV the row is appended to; default
``anymae-results.csv``) and ``--compare-random`` (run twice, from the checkpoint and from random init of the same
shapes, and print both).
"""

import argparse
import csv
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.cli import LightningCLI, SaveConfigCallback
from lightning.pytorch.utilities import rank_zero_only

from ..evaluation.data import CachedFeatures, FewLabels
from ..evaluation.protocols import FineTune, KNNClassifier, LinearProbe

__all__ = ["PROTOCOLS", "append_row", "evaluate", "finetune", "knn", "probe", "run_protocol"]

PROTOCOLS: dict[str, type[pl.LightningModule]] = {"probe": LinearProbe, "knn": KNNClassifier, "finetune": FineTune}
FIELDS = ["protocol", "data", "labels_per_class", "seed", "init", "checkpoint", "metric", "value", "time"]


class _SaveConfigToLogger(SaveConfigCallback):
    """Save the run's config beside its logs; with no logger (k-NN's default) save nothing rather than litter the
    working directory."""

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if trainer.logger is not None:
            super().setup(trainer, pl_module, stage)


def run_protocol(name: str, args: Sequence[str]) -> dict[str, Any]:
    """Run one protocol from LightningCLI arguments; return its result row."""
    cli = LightningCLI(
        PROTOCOLS[name],
        pl.LightningDataModule,
        subclass_mode_data=True,
        args=list(args),
        run=False,
        parser_kwargs={"exit_on_error": False},
        save_config_callback=_SaveConfigToLogger,
        save_config_kwargs={"overwrite": True},
        trainer_defaults={"enable_checkpointing": name == "finetune", "logger": name != "knn"},
    )
    model, data, trainer = cli.model, cli.datamodule, cli.trainer
    few = data if isinstance(data, FewLabels) else None
    data_name = few.name if few else type(data).__name__
    if name == "probe" and model.cache_features:  # the frozen encoder runs once per split, not once per epoch
        device = trainer.strategy.root_device
        model.to(device)
        data = CachedFeatures(data, model._frozen, device, label_key=model.label_key)
    if name != "knn":
        trainer.fit(model, data)
    metrics = trainer.validate(model, data, verbose=False)[0]
    return {
        "protocol": model.protocol,
        "data": data_name,
        "labels_per_class": (few.labels_per_class if few else None) or "all",
        "seed": few.seed if few else cli.config.get("seed_everything"),
        "init": "random" if model.source.random_init else "pretrained",
        "checkpoint": str(model.checkpoint_path),
        "metric": model.metric_name,
        "value": round(float(metrics[model.metric_name]), 6),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


def append_row(path: Path, row: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists()
    with path.open("a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS)
        if new:
            writer.writeheader()
        writer.writerow(row)


def evaluate(name: str, argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog=f"anymae {name}", add_help=False)
    parser.add_argument("--results", type=Path, default=Path("anymae-results.csv"))
    parser.add_argument("--compare-random", action="store_true")
    options, rest = parser.parse_known_args(argv)
    if "-h" in rest or "--help" in rest:
        print(__doc__)
    inits = [False, True] if options.compare_random else [None]
    rows = []
    for random_init in inits:
        args = list(rest)
        if random_init:  # the same checkpoint as the pretrained run, even if "latest" has moved since
            args += ["--model.encoder.random_init", "true", "--model.encoder.checkpoint", rows[0]["checkpoint"]]
        row = run_protocol(name, args)
        rows.append(row)
        if rank_zero_only.rank == 0:  # under DDP every rank runs this: one row, one line
            append_row(options.results, row)
            print(json.dumps(row))
    if options.compare_random and rank_zero_only.rank == 0:
        pretrained, random = rows
        print(
            f"{name} {pretrained['metric']} ({pretrained['data']}, {pretrained['labels_per_class']} labels per class): "
            f"pretrained {pretrained['value']:.4f} vs random init {random['value']:.4f}",
            file=sys.stdout,
        )
    return 0


def knn(argv: Sequence[str]) -> int:
    return evaluate("knn", argv)


def probe(argv: Sequence[str]) -> int:
    return evaluate("probe", argv)


def finetune(argv: Sequence[str]) -> int:
    return evaluate("finetune", argv)
