"""``anymae table``: does pretraining help? For each data set of a suite, pretrain once, then score the encoder and
the same encoder at random init with few labels, over several seeds, and print a markdown table.

    anymae table --suite examples/suite.yaml            # make table

A suite is a YAML list; each entry names a data set, its pretraining config and its protocol configs::

    - name: digits
      pretrain: examples/image/mae_tiny_digits.yaml
      protocols: {knn: examples/image/knn_digits.yaml, probe: examples/image/probe_digits.yaml}

A protocol's key is the command (``knn``, ``probe``, ``finetune``, ``retrieval``), optionally followed by ``:`` and a
label that tells two runs of one command apart in the table (``knn:audio``, ``knn:video``, each config reading the
encoder from one modality); ``retrieval`` reads no labels, so it runs once per seed, not once per label count.

Rows go to ``--results`` (CSV, one per run); the table reports mean ± standard deviation over the seeds. A set whose
pretraining config has not changed since its last pretraining under ``--root`` (the file's SHA-256, recorded in
``<root>/<name>/pretrain.json``) reuses that checkpoint; ``--retrain`` pretrains again.
"""

import argparse
import hashlib
import json
import statistics
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from lightning.pytorch.callbacks import ModelCheckpoint

from ..config import ConfigError
from .errors import read_yaml
from .evaluate import UNLABELLED, append_row, is_rank_zero, protocol_rows
from .fit import AnymaeCLI

__all__ = ["format_table", "pretrain", "run"]


def pretrain(config: str, root: Path) -> Path:
    """Run ``anymae fit`` on ``config`` under ``root``; return the checkpoint."""
    cli = AnymaeCLI(
        args=[
            "fit",
            "--config",
            config,
            "--trainer.default_root_dir",
            str(root),
            "--trainer.enable_progress_bar",
            "false",
        ]
    )
    callback = cli.trainer.checkpoint_callback
    if not isinstance(callback, ModelCheckpoint):
        raise ConfigError(f"{config}: pretraining kept no checkpoint (trainer.enable_checkpointing is off)")
    return Path(callback.best_model_path)


def pretrained(config: str, root: Path, retrain: bool = False) -> tuple[Path, bool]:
    """The checkpoint of ``config`` pretrained under ``root``: the recorded one when the config file is unchanged
    since (and the checkpoint still there), else a new pretraining. Returns it and whether it was reused."""
    digest = hashlib.sha256(Path(config).read_bytes()).hexdigest()
    record = root / "pretrain.json"
    if not retrain and record.is_file():
        recorded = json.loads(record.read_text())
        if recorded.get("config_sha256") == digest and Path(recorded.get("checkpoint", "")).is_file():
            return Path(recorded["checkpoint"]), True
    checkpoint = pretrain(config, root)
    if is_rank_zero():
        root.mkdir(parents=True, exist_ok=True)
        record.write_text(json.dumps({"config": config, "config_sha256": digest, "checkpoint": str(checkpoint)}))
    return checkpoint, False


def format_table(rows: list[dict]) -> str:
    """Markdown: one line per data set, protocol and labels per class; pretrained and random init side by side."""
    groups: dict[tuple, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        key = (row["suite"], row["protocol"], row["labels_per_class"], row["metric"])
        groups[key][row["init"]].append(float(row["value"]))

    def cell(values: list[float]) -> str:
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        return f"{statistics.mean(values):.3f} ± {spread:.3f} (n={len(values)})"

    lines = [
        "| data set | protocol | labels per class | metric | pretrained | random init |",
        "|---|---|---|---|---|---|",
    ]

    def order(item: tuple) -> tuple:
        suite, protocol, labels, metric = item[0]
        return (suite, protocol, labels if isinstance(labels, int) else float("inf"), metric)

    for (suite, protocol, labels, metric), inits in sorted(groups.items(), key=order):
        lines.append(
            f"| {suite} | {protocol} | {labels} | {metric} | {cell(inits['pretrained'])} | {cell(inits['random'])} |"
        )
    return "\n".join(lines)


def run(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        allow_abbrev=False, prog="anymae table", description=__doc__.split("\n\n")[0].replace("``", "")
    )
    parser.add_argument("--suite", required=True, type=Path)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--labels", type=int, nargs="+", default=[1, 5, 10], help="labels per class")
    parser.add_argument("--root", type=Path, default=Path("anymae-table"), help="where runs write their files")
    parser.add_argument("--results", type=Path, default=Path("anymae-table/results.csv"))
    parser.add_argument("--retrain", action="store_true", help="pretrain even when a set's config has not changed")
    parser.add_argument(
        "--checkpoint",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="reuse a pretraining checkpoint instead of pretraining NAME",
    )
    options = parser.parse_args(argv)
    reuse = dict(item.split("=", 1) for item in options.checkpoint)
    rows = []
    timings = []
    for entry in read_yaml(options.suite):
        name = entry["name"]
        started = time.perf_counter()
        if name in reuse:
            checkpoint, reused = Path(reuse[name]), True
        else:
            checkpoint, reused = pretrained(entry["pretrain"], options.root / name, options.retrain)
        pretraining = time.perf_counter() - started
        if is_rank_zero():
            how = "reused (config unchanged)" if reused else f"pretrained in {pretraining / 60:.1f} min"
            print(f"{name}: encoder {checkpoint}, {how}")
        for protocol, config in entry["protocols"].items():
            command = protocol.split(":", 1)[0]
            for labels in [None] if command in UNLABELLED else options.labels:
                for seed in options.seeds:
                    for random_init in (False, True):
                        draw = (
                            [] if labels is None else ["--data.labels_per_class", str(labels), "--data.seed", str(seed)]
                        )
                        args = [
                            "--config",
                            config,
                            "--model.encoder.checkpoint",
                            str(checkpoint),
                            "--model.encoder.random_init",
                            str(random_init).lower(),
                            "--model.encoder.seed",
                            str(seed),
                            *draw,
                            "--seed_everything",
                            str(seed),
                            "--trainer.logger",
                            "false",
                            "--trainer.enable_checkpointing",
                            "false",
                            "--trainer.enable_progress_bar",
                            "false",
                            "--trainer.enable_model_summary",
                            "false",
                        ]
                        for found in protocol_rows(command, args):
                            row = {"suite": name, **found, "protocol": protocol}
                            if is_rank_zero():  # under DDP every rank runs the suite: one row each
                                append_row(options.results, {k: v for k, v in row.items() if k != "suite"})
                            rows.append(row)
        evaluating = time.perf_counter() - started - pretraining
        timings.append(
            f"{name}: pretraining {'reused' if reused else f'{pretraining / 60:.1f} min'}, "
            f"evaluation {evaluating / 60:.1f} min"
        )
    if is_rank_zero():
        table = format_table(rows) + "\n\n" + "\n".join(f"* {line}" for line in timings)
        (options.root / "table.md").parent.mkdir(parents=True, exist_ok=True)
        (options.root / "table.md").write_text(table + "\n")
        print(table)
    return 0
