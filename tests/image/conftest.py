"""Shared fixtures of the image tests."""

import os
from pathlib import Path

import pytest

from anymae.cli import main

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def digits_teacher_dir(tmp_path_factory):
    """A folder holding ``runs/teacher/lightning_logs/version_0/checkpoints/last.ckpt``: the tiny digits MAE of a
    short previous fit, where examples/image/mrmae_digits.yaml looks for its teacher (relative to the working
    folder)."""
    root = tmp_path_factory.mktemp("teacher_run")
    cwd = os.getcwd()
    os.chdir(root)
    try:
        args = ["fit", "--config", str(ROOT / "examples" / "image" / "mae_tiny_digits.yaml")]
        args += ["--trainer.default_root_dir", "runs/teacher", "--trainer.max_epochs", "1"]
        args += ["--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1"]
        args += ["--trainer.enable_progress_bar", "false", "--trainer.callbacks", "[]"]
        assert main(args) == 0
    finally:
        os.chdir(cwd)
    assert (root / "runs/teacher/lightning_logs/version_0/checkpoints/last.ckpt").is_file()
    return root
