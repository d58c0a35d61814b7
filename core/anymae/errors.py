"""The exception a training run ends with when it diverges: its own module, so that the ``anymae`` command can catch
it without importing the model (torch and Lightning) before a command needs them."""

from __future__ import annotations

__all__ = ["TrainingDiverged"]


class TrainingDiverged(RuntimeError):
    """Training met a non-finite loss or gradient and stopped before applying it (``on_nonfinite="stop"``)."""
