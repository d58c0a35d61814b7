"""What the modality test suites do with the ``anymae`` command: check their lines of ``anymae plugins``, train an
example config (shrunk by an overlay or by flags) and score its checkpoint with the evaluation configs."""

import csv
import subprocess
from pathlib import Path
from typing import Any

import yaml

from anymae.cli import main

ROOT = Path(__file__).resolve().parents[1]
QUIET = ["--trainer.enable_progress_bar", "false"]


def assert_listed(listing: subprocess.CompletedProcess, header: str, *lines: str) -> None:
    """``anymae plugins`` succeeded and lists the plugin (``header``) with each of its component ``lines``."""
    assert listing.returncode == 0, listing.stderr
    for line in (header, *lines):
        assert line in listing.stdout, line


def fit(config: str, root: Path, *flags: str, overlay: dict[str, Any] | None = None) -> Path:
    """``anymae fit --config examples/<config>`` (with ``overlay`` written as a second config) under ``root``; the
    run's folder."""
    args = ["fit", "--config", str(ROOT / "examples" / config)]
    if overlay is not None:
        (root / "overlay.yaml").parent.mkdir(parents=True, exist_ok=True)
        (root / "overlay.yaml").write_text(yaml.safe_dump(overlay))
        args += ["--config", str(root / "overlay.yaml")]
    assert main([*args, *flags, "--trainer.default_root_dir", str(root), *QUIET]) == 0
    return root / "lightning_logs" / "version_0"


def folder_overlay(root: Path, model: dict[str, Any], data: dict[str, Any], **trainer: Any) -> dict[str, Any]:
    """An overlay that shrinks a paper-size folder config to a tiny model (``model``: its parts' init_args) for two
    epochs on the few files under ``root`` (a third of them held out, batches of 2; ``data``: the reader's sizes)."""
    return {
        "trainer": {"max_epochs": 2, "precision": "32-true", "enable_progress_bar": False, **trainer},
        "model": {part: {"init_args": args} for part, args in model.items()},
        "data": {"init_args": {"root": str(root), "val_fraction": 0.34, "batch_size": 2, "num_workers": 2, **data}},
    }


def short_fit(config: str, root: Path) -> Path:
    """One epoch of two batches, no figures: a checkpoint to evaluate."""
    run = fit(config, root, "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2",
              "--trainer.limit_val_batches", "1", "--trainer.callbacks", "[]")  # fmt: skip
    return next((run / "checkpoints").glob("*.ckpt"))


def evaluate(protocol: str, config: str, checkpoint: Path, results: Path, *flags: str, random: bool = True) -> None:
    """``anymae <protocol> --config examples/<config>`` on ``checkpoint``, pretrained (and at random init with
    ``random``), appending to ``results``; no logger, no checkpoints."""
    args = [protocol, "--config", str(ROOT / "examples" / config), "--model.encoder.checkpoint", str(checkpoint)]
    args += ["--compare-random"] if random else []
    args += ["--results", str(results), "--trainer.logger", "false"]
    args += ["--trainer.default_root_dir", str(results.parent), "--trainer.enable_checkpointing", "false"]
    assert main([*args, *flags]) == 0


def val_losses(run: Path) -> list[float]:
    return [float(r["val/loss"]) for r in csv.DictReader((run / "metrics.csv").open()) if r.get("val/loss")]
