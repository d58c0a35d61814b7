"""Checkpoints that a run can always resume from: a ``last.ckpt`` by default, periodic ones every N steps, written
atomically, and ``--ckpt_path last`` found across runs.

* :class:`Checkpoints` is Lightning's ``ModelCheckpoint`` with ``save_last`` on (the CLI's ``--checkpoint.*``
  arguments; ``--checkpoint.every_n_train_steps 500`` adds mid-epoch checkpoints). With the kit's data modules and
  the model's per-step mask seeds, resuming from a mid-epoch checkpoint continues exactly as the uninterrupted run
  would (``DataModule.state_dict`` records the batches consumed).
* :class:`AtomicCheckpointIO` writes a checkpoint beside its destination and renames it into place, so a run killed
  mid-save leaves the previous checkpoint intact and no partial file in ``$TMPDIR`` (Lightning's own writer goes
  through a temporary file there); a partial file left by a killed save is removed when the next run starts.
* :func:`find_last_checkpoint` resolves ``last`` to the newest ``last.ckpt`` of the earlier runs (Lightning looks only
  in the new run's own folder, finds nothing, warns and trains from scratch).
"""

import glob
import os
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO

__all__ = ["AtomicCheckpointIO", "Checkpoints", "find_last_checkpoint"]

PARTIAL_SUFFIX = ".partial"


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer, made atomic on local disks: ``.<name>.partial`` in the destination folder,
    flushed to disk, then renamed over the destination (an atomic step on POSIX). Remote paths (``s3://``...) are
    written by Lightning's own code."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        if "://" in str(path):
            return super().save_checkpoint(checkpoint, path, storage_options)
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}{PARTIAL_SUFFIX}")
        with open(partial, "wb") as handle:
            torch.save(checkpoint, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, target)


class Checkpoints(ModelCheckpoint):
    """``ModelCheckpoint`` with anymae's defaults: ``save_last=True``; written by :class:`AtomicCheckpointIO`; the
    partial files of a killed save are removed when the next run starts."""

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        if type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:  # the default: not one a user chose
            trainer.strategy.checkpoint_io = AtomicCheckpointIO()
        if trainer.is_global_zero and self.dirpath and os.path.isdir(self.dirpath):
            for stale in glob.glob(os.path.join(self.dirpath, f".*{PARTIAL_SUFFIX}")):
                os.remove(stale)


def find_last_checkpoint(trainer: pl.Trainer) -> Path | None:
    """The newest ``last.ckpt`` of this trainer's checkpoint folder or of the earlier runs under its log root."""
    folders = [getattr(callback, "dirpath", None) for callback in trainer.checkpoint_callbacks]
    root = Path(trainer.default_root_dir) / "lightning_logs"
    if trainer.loggers and getattr(trainer.loggers[0], "root_dir", None):
        root = Path(trainer.loggers[0].root_dir)
    candidates = [Path(folder) / "last.ckpt" for folder in folders if folder]
    candidates += [Path(p) for p in glob.glob(str(root / "version_*" / "checkpoints" / "last.ckpt"))]
    existing = [p for p in candidates if p.is_file()]
    return max(existing, key=lambda p: p.stat().st_mtime) if existing else None
