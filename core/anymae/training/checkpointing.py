"""Checkpoints that a run can always resume from: a ``last.ckpt`` by default, periodic ones every N steps, written
atomically, and ``--ckpt_path last`` found across runs.

* :class:`Checkpoints` is Lightning's ``ModelCheckpoint`` with ``save_last`` on (the CLI's ``--checkpoint.*``
  arguments; ``--checkpoint.every_n_train_steps 500`` adds mid-epoch checkpoints). With the kit's data modules and
  the model's per-step mask seeds, resuming from a mid-epoch checkpoint continues exactly as the uninterrupted run
  would (``DataModule.state_dict`` records the batches consumed).
* :class:`AtomicCheckpointIO` writes a checkpoint beside its destination and renames it into place, so a run killed
  mid-save leaves the previous checkpoint intact and no partial file in ``$TMPDIR`` (Lightning's own writer goes
  through a temporary file there); a partial file left by a killed save is removed when the next run starts, in its
  own folder and in the folder of the checkpoint it resumes from. A disk too full for the next checkpoint stops the
  run with :class:`~anymae.CheckpointNotSaved` (exit 1): the previous checkpoint intact, the partial file removed,
  the space the checkpoint needs said.
* With ``save_last=True`` the epoch's (or step's) top-k checkpoint and ``last.ckpt`` hold the same state, so it is
  serialised once: ``last.ckpt`` is written (atomically, as ever), then the top-k file is made a hard link to it
  (atomically too). A run killed at any point still finds a complete ``last.ckpt``.
* :func:`find_last_checkpoint` resolves ``last`` to the newest ``last.ckpt`` of the earlier runs (Lightning looks only
  in the new run's own folder, finds nothing, warns and trains from scratch).
"""

import contextlib
import errno
import glob
import os
import shutil
import time
from pathlib import Path
from typing import Any
from weakref import proxy

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO
from lightning.pytorch.strategies import DDPStrategy, SingleDeviceStrategy

from ..errors import CheckpointNotSaved

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
        # at least its tensors' bytes; about the previous file's size when it replaces one
        needed = max(tensor_bytes(checkpoint), target.stat().st_size if target.is_file() else 0)
        if not fits(target.parent, needed):  # it cannot fit: do not fill the disk trying
            raise disk_full(target, needed)
        try:
            with open(partial, "wb") as handle:
                torch.save(checkpoint, handle)
                handle.flush()
                os.fsync(handle.fileno())
        except (OSError, RuntimeError) as error:
            # torch's zip writer reports a full disk as "unexpected pos ..." (RuntimeError): judge by the space left
            full = _out_of_space(error) or shutil.disk_usage(target.parent).free < 1 << 20
            written = partial.stat().st_size if partial.is_file() else 0
            with contextlib.suppress(FileNotFoundError):
                os.remove(partial)  # frees the space for the logs' last rows
            if full:
                raise disk_full(target, max(needed, written), more=written >= needed) from error
            raise
        os.replace(partial, target)


def remove_partials(folder: str | os.PathLike, older_than: float = 0.0) -> None:
    """Remove the partial files that killed saves left in ``folder`` (only those not written to for ``older_than``
    seconds: in another run's folder, a save may be under way)."""
    for stale in glob.glob(os.path.join(glob.escape(str(folder)), f".*{PARTIAL_SUFFIX}")):
        with contextlib.suppress(FileNotFoundError):
            if time.time() - os.path.getmtime(stale) >= older_than:
                os.remove(stale)


def fits(folder: Path, size: int) -> bool:
    """Whether ``size`` bytes fit in ``folder``'s file system (assumed, where it reports no size: some network and
    FUSE mounts)."""
    while not folder.exists() and folder.parent != folder:  # not made yet: its file system is its parent's
        folder = folder.parent
    usage = shutil.disk_usage(folder)
    return usage.total == 0 or usage.free >= size


def tensor_bytes(obj: Any) -> int:
    """The bytes of the tensors in a (nested) checkpoint, each storage counted once: a lower bound of its file's
    size."""
    seen: set[tuple[str, int]] = set()
    total, stack = 0, [obj]
    while stack:
        item = stack.pop()
        if isinstance(item, torch.Tensor):
            storage = item.untyped_storage()
            key = (str(item.device), storage.data_ptr())
            if key not in seen or not storage.data_ptr():
                seen.add(key)
                total += storage.nbytes()
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return total


def _out_of_space(error: BaseException | None) -> bool:
    while error is not None:
        if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        error = error.__cause__ or error.__context__
    return False


def disk_full(target: Path, needed: int, more: bool = False) -> CheckpointNotSaved:
    """The error of a checkpoint that did not fit: where, how much it needs (``more``: more than ``needed``, all a
    failed write could tell), which checkpoint is still good."""
    free = shutil.disk_usage(target.parent).free
    saved = [p for p in target.parent.glob("*.ckpt") if p.is_file()]
    newest = max(saved, key=lambda p: p.stat().st_mtime) if saved else None
    last = target.parent / "last.ckpt" if (target.parent / "last.ckpt").is_file() else newest
    kept = (
        f"the last good checkpoint is {last}, intact: free some space and resume with --ckpt_path last"
        if last
        else "no checkpoint was saved yet: free some space and run again"
    )
    return CheckpointNotSaved(
        f"checkpoint {target} not saved: no space left on the device ({_size(free)} free in {target.parent}; the "
        f"checkpoint needs {'more than' if more else 'at least'} {_size(needed)}); {kept}"
    )


def _size(n: int) -> str:
    return f"{n / 2**20:.1f} MB" if n >= 2**20 else f"{n / 2**10:.0f} KB"


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
        if trainer.is_global_zero and self.dirpath:
            remove_partials(self.dirpath)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Say which checkpoint a resumed run started from (restored by now), and remove the partial files a killed
        save left beside it (a resumed run writes to a new folder: its own clean-up would miss them)."""
        super().on_train_start(trainer, pl_module)
        resumed = trainer.ckpt_path
        if resumed and trainer.is_global_zero:
            if "://" not in str(resumed):
                remove_partials(os.path.dirname(os.path.abspath(resumed)), older_than=60.0)
            print(f"resumed from {resumed} at epoch {trainer.current_epoch}, step {trainer.global_step}")

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
        self._check_room(trainer, filepath)
        super()._save_checkpoint(trainer, filepath)

    def _check_room(self, trainer: pl.Trainer, filepath: str) -> None:
        """Every rank takes the decision rank zero takes from the size of the checkpoint this save replaces (or of the
        last one), so a full disk stops all of them: an error on rank zero alone would leave the others waiting at
        the save's barrier."""
        target = Path(filepath)
        last = target if target.is_file() else Path(self.last_model_path) if self.last_model_path else None
        size = last.stat().st_size if last is not None and last.is_file() else 0
        room = "://" in str(filepath) or fits(target.parent, size)
        if not trainer.strategy.broadcast(room, src=0):
            raise disk_full(target, size)

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
