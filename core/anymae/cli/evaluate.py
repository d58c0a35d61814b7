"""``anymae probe``, ``anymae knn``, ``anymae finetune``: LightningCLI over the protocols, one result row per run.

    anymae knn --config examples/image/knn_digits.yaml --model.encoder.checkpoint latest --compare-random
    anymae probe --config examples/image/probe_digits.yaml --data.labels_per_class 5 --data.seed 1

Besides LightningCLI's arguments each command takes ``--results PATH`` (a CSV the row is appended to; default
``anymae-results.csv``), ``--compare-random`` (run twice, from the checkpoint and from random init of the same
shapes, and print both) and ``--seeds 0 1 2`` (run once per seed: the labelled draw, the random-init weights and the
head's initialisation; the summary line gives mean ± standard deviation over them). Rows name the data set (an aeon
set's name, an embedded set's, or the folder or file read), not the data module's class.
"""

import argparse
import csv
import json
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.cli import LightningCLI, SaveConfigCallback
from lightning.pytorch.utilities import rank_zero_only

from ..evaluation import CrossModalRetrieval, FineTune, KNNClassifier, LinearProbe
from ..evaluation.data import CachedFeatures, FewLabels, data_set_name
from ..training.threads import warn_if_oversubscribed
from .parser import nested_nulls

__all__ = [
    "PROTOCOLS",
    "append_row",
    "evaluate",
    "finetune",
    "knn",
    "probe",
    "protocol_rows",
    "retrieval",
    "run_protocol",
]

PROTOCOLS: dict[str, type[pl.LightningModule]] = {
    "probe": LinearProbe,
    "knn": KNNClassifier,
    "finetune": FineTune,
    "retrieval": CrossModalRetrieval,
}
#: the protocols that train nothing (no logger by default) and those that read no labels (no few-label draw)
UNTRAINED, UNLABELLED = frozenset({"knn", "retrieval"}), frozenset({"retrieval"})
FIELDS = ["protocol", "data", "labels_per_class", "seed", "init", "checkpoint", "metric", "value", "time"]


class _SaveConfigToLogger(SaveConfigCallback):
    """Save the run's config beside its logs; with no logger (k-NN's default) save nothing rather than litter the
    working directory."""

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if trainer.logger is not None:
            super().setup(trainer, pl_module, stage)


def run_protocol(name: str, args: Sequence[str]) -> dict[str, Any]:
    """Run one protocol from LightningCLI arguments; return its result row (of its headline metric)."""
    return protocol_rows(name, args)[0]


def protocol_rows(name: str, args: Sequence[str]) -> list[dict[str, Any]]:
    """Run one protocol from LightningCLI arguments; return its result rows, one per metric it reports (its
    ``metric_names``, or its ``metric_name``), the headline first."""
    warn_if_oversubscribed()
    cli = LightningCLI(
        PROTOCOLS[name],
        pl.LightningDataModule,
        subclass_mode_data=True,
        args=nested_nulls(args),
        run=False,
        parser_kwargs={"exit_on_error": False, "allow_abbrev": False},  # whole option names only
        save_config_callback=_SaveConfigToLogger,
        save_config_kwargs={"overwrite": True},
        trainer_defaults={"enable_checkpointing": name == "finetune", "logger": name not in UNTRAINED},
    )
    model, data, trainer = cli.model, cli.datamodule, cli.trainer
    few = data if isinstance(data, FewLabels) else None
    data_name = few.name if few else data_set_name(data)
    if name == "probe" and model.cache_features:  # the frozen encoder runs once per split, not once per epoch
        device = trainer.strategy.root_device
        model.to(device)
        data = CachedFeatures(data, model._frozen, device, label_key=model.label_key)
    if name not in UNTRAINED:
        trainer.fit(model, data)
    metrics = trainer.validate(model, data, verbose=False)[0]
    return [
        {
            "protocol": model.protocol,
            "data": data_name,
            "labels_per_class": (few.labels_per_class if few else None) or "all",
            "seed": few.seed if few else cli.config.get("seed_everything"),
            "init": "random" if model.source.random_init else "pretrained",
            "checkpoint": str(model.checkpoint_path),
            "metric": metric,
            "value": round(float(metrics[metric]), 6),
            "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        for metric in getattr(model, "metric_names", [model.metric_name])
    ]


def is_rank_zero() -> bool:
    """Whether this process writes results: rank zero of a distributed run (the only one otherwise)."""
    return rank_zero_only.rank == 0  # type: ignore[attr-defined]  # Lightning sets it on the function, undeclared


def append_row(path: Path, row: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists()
    with path.open("a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS)
        if new:
            writer.writeheader()
        writer.writerow(row)


def evaluate(name: str, argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog=f"anymae {name}", add_help=False, allow_abbrev=False)
    parser.add_argument("--results", type=Path, default=Path("anymae-results.csv"))
    parser.add_argument("--compare-random", action="store_true")
    parser.add_argument("--seeds", type=int, nargs="+")
    options, rest = parser.parse_known_args(argv)
    if "-h" in rest or "--help" in rest:
        print(__doc__)
    inits = [False, True] if options.compare_random else [None]
    rows: list[dict[str, Any]] = []
    for seed in options.seeds or [None]:
        seeded = list(rest)
        if seed is not None:  # the labelled draw, the random-init weights and the head's initialisation
            seeded += ["--data.seed", str(seed), "--model.encoder.seed", str(seed), "--seed_everything", str(seed)]
        checkpoint: str | None = None
        for random_init in inits:
            args = list(seeded)
            if random_init:  # the same checkpoint as the pretrained run, even if "latest" has moved since
                if checkpoint is None:
                    raise RuntimeError("--compare-random: the pretrained run recorded no checkpoint")
                args += ["--model.encoder.random_init", "true", "--model.encoder.checkpoint", checkpoint]
            found = protocol_rows(name, args)
            checkpoint = checkpoint or found[0]["checkpoint"]
            rows.extend(found)
            if is_rank_zero():  # under DDP every rank runs this: one row, one line
                for row in found:
                    append_row(options.results, row)
                    print(json.dumps(row))
    if is_rank_zero() and (options.compare_random or len(rows) > 1):
        print(summary(name, rows))
    return 0


def summary(name: str, rows: list[dict[str, Any]]) -> str:
    """One line: the metric per init, as mean ± standard deviation over the seeds run (the value with one seed)."""
    first = rows[0]
    rows = [row for row in rows if row["metric"] == first["metric"]]  # the headline metric

    def cell(init: str) -> str:
        values = [float(r["value"]) for r in rows if r["init"] == init]
        if len(values) == 1:
            return f"{values[0]:.4f}"
        return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"

    seeds = sorted({r["seed"] for r in rows}, key=str)
    over = f", mean ± std over seeds {' '.join(map(str, seeds))}" if len(seeds) > 1 else ""
    scores = " vs ".join(
        f"{'random init' if init == 'random' else init} {cell(init)}"
        for init in ("pretrained", "random")
        if any(r["init"] == init for r in rows)
    )
    return f"{name} {first['metric']} ({first['data']}, {first['labels_per_class']} labels per class{over}): {scores}"


def knn(argv: Sequence[str]) -> int:
    return evaluate("knn", argv)


def probe(argv: Sequence[str]) -> int:
    return evaluate("probe", argv)


def finetune(argv: Sequence[str]) -> int:
    return evaluate("finetune", argv)


def retrieval(argv: Sequence[str]) -> int:
    return evaluate("retrieval", argv)
