"""Fixed cost per epoch: how much of a small-data epoch is not training steps.

    python benchmarks/epochs.py                # every plugin's embedded data set and a 200-file image folder (~1 min)
    python benchmarks/epochs.py --only digits folder --epochs 4 --threads 1

For each case the example's config is trained as ``anymae fit`` would train it (the CLI's parser, trainer and
callbacks: ``last.ckpt`` checkpointing, the config's figure callback, the default logger; only the progress bar is
off), for a few epochs (3), and each epoch is timed:

* ``epoch``: from ``on_train_epoch_start`` to the next epoch's (the last epoch: to ``on_train_end``): the loader's
  start, the steps, validation, checkpointing, hooks and logging;
* ``steps``: the sum of its training steps, ``on_train_batch_start`` to ``on_train_batch_end`` (forward, backward,
  optimiser);
* ``fixed = epoch - steps``, split into ``load`` (the waits for training batches between steps), ``val`` (the
  validation loop) and ``other`` (the rest: the checkpoint, epoch-end hooks, logging).

The first epoch (warm-up: worker start, allocator, sanity check) is left out of the means. An epoch of more than
``--max-batches`` (8) training batches is cut to 8 (``limit_train_batches``; validation, checkpoint and hooks run as in
a whole epoch) and the whole epoch estimated by adding the missing batches at their measured cost (step and wait).
``fig`` is the config's figure callback per epoch (one drawing, timed after fit, over its period in epochs): the
timed epochs hold none. ``--threads 1`` makes a shared, busy machine's numbers steadier (torch's intra-op threads spin
against other processes).

The cases are the embedded data sets of the five plugins (no download) and a folder of 200 generated 32-px PNG
images read by ``ImageFolderDataModule`` with its default 4 workers (the digits config's model; 180 training images,
2 batches of 64 an epoch; 20 validation images). :func:`run` returns the rows (``benchmarks/bench.py`` imports it);
:func:`main` prints a table.
"""

import argparse
import contextlib
import io
import os
import statistics
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"

#: name -> (config, data section replacing the config's, or None)
CASES: dict[str, tuple[Path, dict[str, Any] | None]] = {
    "digits": (EXAMPLES / "image" / "mae_tiny_digits.yaml", None),
    "gunpoint": (EXAMPLES / "timeseries" / "patch_mae_ucr.yaml", None),
    "shapes": (EXAMPLES / "pointcloud" / "point_mae_shapes.yaml", None),
    "moving_digits": (EXAMPLES / "video" / "videomae_moving_digits.yaml", None),
    "synth_sounds": (EXAMPLES / "audio" / "audiomae_synth_sounds.yaml", None),
    "folder": (
        EXAMPLES / "image" / "mae_tiny_digits.yaml",
        {
            "class_path": "anymae_image.ImageFolderDataModule",
            "init_args": {"root": None, "image_size": 32, "in_chans": 1, "val_fraction": 0.1, "batch_size": 64},
        },
    ),
}
FOLDER_FILES = 200


class EpochTimer(pl.Callback):
    """Per epoch: its wall time, its training steps, the waits for batches, the validation loop (checkpointing that
    runs at its end excluded: the timer's hooks run before the other callbacks')."""

    def __init__(self) -> None:
        self.epochs: list[dict[str, float]] = []
        self._epoch_start: float | None = None
        self._mark = 0.0  # the end of the last step (or the epoch's start): the wait for the next batch starts here
        self._val_start = 0.0

    def _close(self, now: float) -> None:
        if self._epoch_start is not None:
            self.epochs[-1]["epoch"] = now - self._epoch_start
            self._epoch_start = None

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        now = time.perf_counter()
        self._close(now)
        self._epoch_start = self._mark = now
        self.epochs.append({"epoch": 0.0, "steps": 0.0, "batches": 0, "load": 0.0, "val": 0.0})

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, i: int) -> None:
        now = time.perf_counter()
        self.epochs[-1]["load"] += now - self._mark
        self._mark = now

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, out: Any, b: Any, i: int) -> None:
        now = time.perf_counter()
        self.epochs[-1]["steps"] += now - self._mark
        self.epochs[-1]["batches"] += 1
        self._mark = now

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._val_start = time.perf_counter()

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.epochs and not trainer.sanity_checking:
            self.epochs[-1]["val"] += time.perf_counter() - self._val_start

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._close(time.perf_counter())


def write_folder(root: Path, count: int = FOLDER_FILES, size: int = 32) -> Path:
    """``count`` small grayscale PNG images (random blobs) under ``root``."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    ys, xs = np.mgrid[:size, :size]
    for i in range(count):
        cy, cx, r = [*rng.uniform(4, size - 4, 2).tolist(), rng.uniform(3, size / 3)]
        blob = np.exp(-((ys - cy) ** 2 + (xs - cx) ** 2) / (2 * r * r))
        pixels = np.clip(255 * (0.8 * blob + 0.2 * rng.random((size, size))), 0, 255).astype(np.uint8)
        Image.fromarray(pixels, mode="L").save(root / f"{i:04d}.png")
    return root


def time_case(name: str, epochs: int, workdir: Path, max_batches: int | None = None) -> dict[str, Any]:
    """Train case ``name`` for ``epochs`` epochs as ``anymae fit`` would; return its row (means over the epochs
    after the first). With ``max_batches``, an epoch longer than that is cut to ``max_batches`` training batches
    (validation, checkpointing and figures as in a whole epoch), and the whole epoch is estimated by adding the
    missing batches at the measured cost of a batch (its step and the wait for it)."""
    from anymae.cli.fit import AnymaeCLI

    config_path, data = CASES[name]
    config = yaml.safe_load(config_path.read_text())
    if data is not None:
        data = {**data, "init_args": {**data["init_args"], "root": str(write_folder(workdir / "images"))}}
        config["data"] = data
    config_file = workdir / f"{name}.yaml"
    config_file.write_text(yaml.safe_dump(config))
    args = ["--config", str(config_file), "--trainer.default_root_dir", str(workdir / "run")]
    args += ["--trainer.max_epochs", str(epochs), "--trainer.enable_progress_bar", "false"]
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cli = AnymaeCLI(args=args, run=False)
        trainer, datamodule = cli.trainer, cli.datamodule
        datamodule.setup("fit")
        full = len(datamodule.train_dataloader())
        if max_batches is not None and full > max_batches:
            trainer.limit_train_batches = max_batches
        timer = EpochTimer()
        trainer.callbacks.insert(0, timer)  # its validation-end hook before the checkpoint's
        start = time.perf_counter()
        trainer.fit(cli.model, datamodule=datamodule)
        total = time.perf_counter() - start
        figure = figure_cost(trainer, cli.model)
    measured = timer.epochs[1:] if len(timer.epochs) > 1 else timer.epochs
    mean = {key: statistics.mean(e[key] for e in measured) for key in ("epoch", "steps", "load", "val", "batches")}
    missing = full - mean["batches"]
    per_step, per_load = mean["steps"] / mean["batches"], mean["load"] / mean["batches"]
    steps = mean["steps"] + missing * per_step
    load = mean["load"] + missing * per_load
    epoch = mean["epoch"] + missing * (per_step + per_load)
    fixed = epoch - steps
    return {
        "case": name,
        "data": type(datamodule).__name__,
        "batches": full,
        "timed_batches": round(mean["batches"]),
        "epochs": len(timer.epochs),
        "epoch_s": round(epoch, 4),
        "steps_s": round(steps, 4),
        "load_s": round(load, 4),
        "val_s": round(mean["val"], 4),
        "other_s": round(fixed - load - mean["val"], 4),
        "fixed_s": round(fixed, 4),
        "fixed_pct": round(100 * fixed / epoch, 1),
        "figure_s": round(figure, 4),
        "first_fixed_s": round(timer.epochs[0]["epoch"] - timer.epochs[0]["steps"], 4),
        "fit_s": round(total, 2),
    }


def figure_cost(trainer: pl.Trainer, model: pl.LightningModule) -> float:
    """The config's figures per epoch: one drawing of each (its batch already taken), over its period in epochs."""
    from anymae.training.callbacks import PeriodicFigure

    cost = 0.0
    for callback in trainer.callbacks:
        if isinstance(callback, PeriodicFigure) and callback.every_n_epochs:
            start = time.perf_counter()
            callback.write(trainer, model, "benchmark.png")
            cost += (time.perf_counter() - start) / callback.every_n_epochs
    return cost


def run(epochs: int = 3, only: list[str] | None = None, max_batches: int | None = 8) -> list[dict[str, Any]]:
    """One row per case: an epoch, its steps and its fixed cost in seconds (means over the epochs after the first;
    epochs of more than ``max_batches`` training batches are cut to that many and the rest estimated)."""
    import anymae

    anymae.get_plugins()
    rows = []
    for name in only or list(CASES):
        with tempfile.TemporaryDirectory(prefix=f"anymae-epochs-{name}-") as folder:
            rows.append(time_case(name, epochs, Path(folder), max_batches))
    return rows


def format_rows(rows: list[dict[str, Any]]) -> str:
    """The rows as a table: seconds per epoch; ``fixed = epoch - steps`` is ``load + val + other``."""
    head = (
        f"{'case':<14} {'data module':<23} {'batches':>7} {'epoch s':>8} {'steps s':>8} {'load s':>7} {'val s':>7} "
        f"{'other s':>7} {'fixed s':>8} {'fixed %':>7} {'fig s':>6}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        batches = f"{r['timed_batches']}/{r['batches']}" if r["timed_batches"] < r["batches"] else str(r["batches"])
        lines.append(
            f"{r['case']:<14} {r['data']:<23} {batches:>7} {r['epoch_s']:>8.3f} {r['steps_s']:>8.3f} "
            f"{r['load_s']:>7.3f} {r['val_s']:>7.3f} {r['other_s']:>7.3f} {r['fixed_s']:>8.3f} {r['fixed_pct']:>6.1f}% "
            f"{r['figure_s']:>6.3f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=3, help="epochs per case (the first is left out)")
    parser.add_argument("--max-batches", type=int, default=8, help="cut longer epochs to this many training batches")
    parser.add_argument("--only", nargs="+", choices=list(CASES), help="these cases only")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (1 is steadier on a busy, shared machine)")
    options = parser.parse_args(argv)
    if options.threads:
        torch.set_num_threads(options.threads)
    rows = run(options.epochs, options.only, options.max_batches or None)
    print(
        f"fixed cost per epoch = epoch - its training steps = load (waits for training batches) + val (validation "
        f"loop) + other (checkpoint, hooks); mean of epochs 2-{options.epochs}; {os.cpu_count()} CPUs, "
        f"{torch.get_num_threads()} torch threads; batches a/b: a timed, b estimated; fig: the config's figure "
        "callback per epoch (one drawing / its period), not in the epochs timed"
    )
    print(format_rows(rows))
    return rows


if __name__ == "__main__":
    main()
