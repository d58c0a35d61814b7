"""The exceptions a training run stops with, for reasons the user can act on: their own module, so that the
``anymae`` command can catch them without importing the model (torch and Lightning) before a command needs them.
The command prints their message in one line and exits with status 1 (a run that stopped; 2 is for a configuration
or input that is wrong)."""

from __future__ import annotations

__all__ = ["CheckpointNotSaved", "RunStopped", "TrainingDiverged"]


class RunStopped(RuntimeError):
    """A run stopped before its end; the message says why and what was kept (the last good checkpoint)."""


class TrainingDiverged(RunStopped):
    """Training met a non-finite loss or gradient and stopped before applying it (``on_nonfinite="stop"``)."""


class CheckpointNotSaved(RunStopped):
    """A checkpoint could not be written (the disk is full); the previous one is intact and no partial file is left."""
