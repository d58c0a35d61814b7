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

Rows go to ``--results`` (CSV, one per run, its ``set`` column the suite entry's ``name``); the table reports mean ±
standard deviation over the seeds and is written to ``<root>/table-<suite file stem>.md``, so suites run under one
``--root`` keep their own tables, and copied to ``<root>/table.md``, which always holds the latest suite's.

A set whose pretraining config has not changed since its last pretraining under ``--root`` reuses that checkpoint;
``--retrain`` pretrains again. "Unchanged" compares the parsed config (the YAML loaded, then written as JSON with
sorted keys, and hashed with SHA-256), so comments, blank lines, quoting and key order do not count; files the config
names are not read. ``<root>/<name>/pretrain.json`` records the digest and the absolute paths of the config and the
checkpoint; a record of an older anymae, which hashed the file's bytes (``config_sha256``), is reused only while the
file's bytes are unchanged.
"""

import argparse
import csv
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
from .evaluate import FIELDS, UNLABELLED, is_rank_zero, protocol_rows
from .fit import AnymaeCLI
from .parser import command_parser

__all__ = ["RESULT_FIELDS", "config_digest", "format_table", "pretrain", "pretrained", "run"]

#: the columns of ``--results``: the suite entry's name, then a protocol's row (``anymae knn`` and the others)
RESULT_FIELDS = ["set", *FIELDS]


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
    """The checkpoint of ``config`` pretrained under ``root``: the recorded one when the parsed config is unchanged
    since (and the checkpoint still there), else a new pretraining. Returns it and whether it was reused."""
    digest = config_digest(config)
    record = root / "pretrain.json"
    if not retrain and record.is_file():
        recorded = json.loads(record.read_text())
        unchanged = recorded.get("config_digest") == digest or (  # an older record: the file's bytes
            "config_sha256" in recorded
            and recorded["config_sha256"] == hashlib.sha256(Path(config).read_bytes()).hexdigest()
        )
        if unchanged and Path(recorded.get("checkpoint", "")).is_file():
            return Path(recorded["checkpoint"]), True
    checkpoint = pretrain(config, root).resolve()
    if is_rank_zero():
        root.mkdir(parents=True, exist_ok=True)
        entry = {"config": str(Path(config).resolve()), "config_digest": digest, "checkpoint": str(checkpoint)}
        record.write_text(json.dumps(entry))
    return checkpoint, False


def config_digest(config: str | Path) -> str:
    """SHA-256 of the parsed config (YAML loaded, written as JSON with sorted keys): a comment, a blank line, quoting
    or the order of keys changes the file, not the digest."""
    parsed = read_yaml(config)
    return hashlib.sha256(json.dumps(parsed, sort_keys=True, default=str).encode()).hexdigest()


def check_results(path: Path) -> None:
    """Refuse, before anything runs, a ``--results`` CSV that exists with other columns than :data:`RESULT_FIELDS`
    (an ``anymae knn`` CSV, or one an older ``anymae table`` wrote without the ``set`` column)."""
    if not path.is_file() or not path.stat().st_size:
        return
    with path.open(newline="") as handle:
        header = next(csv.reader(handle), [])
    if header != RESULT_FIELDS:
        raise ConfigError(
            f"--results {path}: its columns are {','.join(header)}, not {','.join(RESULT_FIELDS)} (written by another "
            "command or an older anymae table); give another --results file"
        )


def append_result(path: Path, row: dict) -> None:
    """Append one row (:data:`RESULT_FIELDS`) to the ``--results`` CSV, with a header when the file is new."""
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.is_file() or not path.stat().st_size
    with path.open("a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=RESULT_FIELDS)
        if new:
            writer.writeheader()
        writer.writerow(row)


def format_table(rows: list[dict]) -> str:
    """Markdown: one line per data set, protocol and labels per class; pretrained and random init side by side.
    ``rows`` are as the ``--results`` CSV holds them (:data:`RESULT_FIELDS`)."""
    groups: dict[tuple, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        key = (row["set"], row["protocol"], row["labels_per_class"], row["metric"])
        groups[key][row["init"]].append(float(row["value"]))

    def cell(values: list[float]) -> str:
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        return f"{statistics.mean(values):.3f} ± {spread:.3f} (n={len(values)})"

    lines = [
        "| data set | protocol | labels per class | metric | pretrained | random init |",
        "|---|---|---|---|---|---|",
    ]

    def order(item: tuple) -> tuple:
        name, protocol, labels, metric = item[0]
        return (name, protocol, int(labels) if str(labels).isdigit() else float("inf"), metric)  # "all" last

    for (name, protocol, labels, metric), inits in sorted(groups.items(), key=order):
        lines.append(
            f"| {name} | {protocol} | {labels} | {metric} | {cell(inits['pretrained'])} | {cell(inits['random'])} |"
        )
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """``anymae table``'s options."""
    parser = command_parser("table", __doc__)
    parser.add_argument(
        "--suite", required=True, type=Path, help="a YAML list of sets: name, pretrain config, protocol configs"
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds of each run (default: 0 1 2)")
    parser.add_argument("--labels", type=int, nargs="+", default=[1, 5, 10], help="labels per class (default: 1 5 10)")
    parser.add_argument(
        "--root", type=Path, default=Path("anymae-table"), help="where runs write their files and the tables"
    )
    parser.add_argument(
        "--results",
        type=Path,
        default=Path("anymae-table/results.csv"),
        help="the CSV each run's row is appended to, its set column naming the suite entry",
    )
    parser.add_argument("--retrain", action="store_true", help="pretrain even when a set's config has not changed")
    parser.add_argument(
        "--checkpoint",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="reuse a pretraining checkpoint instead of pretraining NAME",
    )
    return parser


def run(argv: Sequence[str]) -> int:
    options = build_parser().parse_args(argv)
    check_results(options.results)
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
                            row = {"set": name, **found, "protocol": protocol}
                            if is_rank_zero():  # under DDP every rank runs the suite: one row each
                                append_result(options.results, row)
                            rows.append(row)
        evaluating = time.perf_counter() - started - pretraining
        timings.append(
            f"{name}: pretraining {'reused' if reused else f'{pretraining / 60:.1f} min'}, "
            f"evaluation {evaluating / 60:.1f} min"
        )
    if is_rank_zero():
        table = format_table(rows) + "\n\n" + "\n".join(f"* {line}" for line in timings)
        options.root.mkdir(parents=True, exist_ok=True)
        for path in (options.root / f"table-{options.suite.stem}.md", options.root / "table.md"):  # its own; latest
            path.write_text(table + "\n")
        print(table)
    return 0
