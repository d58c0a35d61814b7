"""Checkpoints that a run can always resume from: a ``last.ckpt`` by default, periodic ones every N steps, written
atomically, and ``--ckpt_path last`` found across runs.

* :class:`Checkpoints` is Lightning's ``ModelCheckpoint`` with ``save_last`` on (the CLI's ``--checkpoint.*``
  arguments; ``--checkpoint.every_n_train_steps 500`` adds mid-epoch checkpoints). With the kit's data modules and
  the model's per-step mask seeds, resuming from a mid-epoch checkpoint continues exactly as the uninterrupted run
  would (``DataModule.state_dict`` records the batches consumed).
* :class:`AtomicCheckpointIO` writes a checkpoint beside its destination and renames it into place, so a run killed
  mid-save leaves the previous checkpoint intact and no partial file in ``$TMPDIR`` (Lightning's own writer goes
  through a temporary file there); a partial file left by a killed save is removed when the next run starts.
* With ``save_last=True`` the epoch's (or step's) top-k checkpoint and ``last.ckpt`` hold the same state, so it is
  serialised once: ``last.ckpt`` is written (atomically, as ever), then the top-k file is made a hard link to it
  (atomically too). A run killed at any point still finds a complete ``last.ckpt``.
* :func:`find_last_checkpoint` resolves ``last`` to the newest ``last.ckpt`` of the earlier runs (Lightning looks only
  in the new run's own folder, finds nothing, warns and trains from scratch).
"""

import contextlib
import glob
import os
import shutil
from pathlib import Path
from typing import Any
from weakref import proxy

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.strategies import DDPStrategy, SingleDeviceStrategy

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
    partial files of a killed save are removed when the next run starts.

    Where a top-k checkpoint and ``last.ckpt`` are saved together (every epoch by default), the state is serialised
    once: the top-k save is held back, ``last.ckpt`` is written, and the top-k file becomes a hard link to it (a copy
    where the file system has no hard links). Both files keep their names, contents and bookkeeping
    (``best_model_path``...); the writer always replaces a file by renaming a new one over it, never writes into it,
    so the two names never see each other's later contents.
    """

    _in_topk = False  # inside Lightning's top-k save
    _held: str | None = None  # a top-k checkpoint waiting for last.ckpt

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        if type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:  # the default: not one a user chose
            trainer.strategy.checkpoint_io = AtomicCheckpointIO()
        if trainer.is_global_zero and self.dirpath and os.path.isdir(self.dirpath):
            for stale in glob.glob(os.path.join(self.dirpath, f".*{PARTIAL_SUFFIX}")):
                os.remove(stale)

    def _shares_last(self, trainer: pl.Trainer, filepath: str) -> bool:
        """Whether the top-k checkpoint ``filepath`` can be a link to ``last.ckpt``: one local file per checkpoint
        (single device or DDP), written by :class:`AtomicCheckpointIO` (rename over, never in place)."""
        strategy = trainer.strategy
        return (
            self.save_last is True
            and isinstance(strategy.checkpoint_io, AtomicCheckpointIO)
            and (type(strategy) is DDPStrategy or isinstance(strategy, SingleDeviceStrategy))
            and "://" not in str(filepath)
            and "://" not in str(self.dirpath)
        )

    def _save_topk_checkpoint(self, trainer: pl.Trainer, monitor_candidates: dict[str, Any]) -> None:
        self._in_topk = True
        try:
            super()._save_topk_checkpoint(trainer, monitor_candidates)
        finally:
            self._in_topk = False

    def _save_checkpoint(self, trainer: pl.Trainer, filepath: str) -> None:
        self._flush_held(trainer)
        if self._in_topk and self._shares_last(trainer, filepath):
            # Lightning saves last.ckpt next (the hook that saves a top-k checkpoint always does, with save_last)
            self._held = filepath
            self._last_global_step_saved = trainer.global_step
            self._last_checkpoint_saved = filepath
            return
        super()._save_checkpoint(trainer, filepath)

    def _save_last_checkpoint(self, trainer: pl.Trainer, monitor_candidates: dict[str, Any]) -> None:
        held, self._held = self._held, None
        super()._save_last_checkpoint(trainer, monitor_candidates)
        if held is not None:
            self._link(trainer, self.last_model_path, held)

    def _flush_held(self, trainer: pl.Trainer) -> None:
        """Write a held-back top-k checkpoint that no ``last.ckpt`` followed (not expected: Lightning saves them
        together)."""
        held, self._held = self._held, None
        if held is not None:
            super()._save_checkpoint(trainer, held)

    def _link(self, trainer: pl.Trainer, source: str, target: str) -> None:
        """``target`` becomes ``source``'s contents, atomically: a hard link (or a copy) beside it renamed over it."""
        if trainer.is_global_zero:
            partial = os.path.join(os.path.dirname(target), f".{os.path.basename(target)}{PARTIAL_SUFFIX}")
            with contextlib.suppress(FileNotFoundError):
                os.remove(partial)
            try:
                os.link(source, partial)
            except OSError:  # no hard links on this file system
                shutil.copyfile(source, partial)
                with open(partial, "rb+") as handle:
                    os.fsync(handle.fileno())
            os.replace(partial, target)
        trainer.strategy.barrier("Checkpoints._link")
        if trainer.is_global_zero:
            for logger in trainer.loggers:
                logger.after_save_checkpoint(proxy(self))

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_end(trainer, pl_module)
        self._flush_held(trainer)


def find_last_checkpoint(trainer: pl.Trainer) -> Path | None:
    """The newest ``last.ckpt`` of this trainer's checkpoint folder or of the earlier runs under its log root."""
    folders = [getattr(callback, "dirpath", None) for callback in trainer.checkpoint_callbacks]
    root = Path(trainer.default_root_dir) / "lightning_logs"
    logger_root = getattr(trainer.loggers[0], "root_dir", None) if trainer.loggers else None
    if logger_root:
        root = Path(logger_root)
    candidates = [Path(folder) / "last.ckpt" for folder in folders if folder]
    candidates += [Path(p) for p in glob.glob(str(root / "version_*" / "checkpoints" / "last.ckpt"))]
    existing = [p for p in candidates if p.is_file()]
    return max(existing, key=lambda p: p.stat().st_mtime) if existing else None
