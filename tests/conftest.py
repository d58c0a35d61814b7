"""Fixtures shared by every modality's tests."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: every epoch's reconstruction grid, of four digits
GRID = '[{"class_path": "anymae_image.ReconstructionGrid", "init_args": {"every_n_epochs": 1, "num_images": 4}}]'


@pytest.fixture(scope="session")
def plugins_listing(tmp_path_factory) -> subprocess.CompletedProcess:
    """``anymae plugins`` run once, as a user runs it (a fresh process, strict plugin loading): each plugin's tests
    check their own lines of it (one process start instead of one per plugin)."""
    env = {**os.environ, "ANYMAE_STRICT_PLUGINS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "anymae.cli", "plugins"],
        cwd=tmp_path_factory.mktemp("plugins"),
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory) -> Path:
    """A folder holding one short ``anymae fit`` of the demo's digits MAE (examples/image/mae_tiny_digits.yaml: 2
    epochs of 2 batches, a reconstruction grid every epoch, every step logged) at
    ``runs/teacher/lightning_logs/version_0``: the trained checkpoint the tests share (a teacher where
    examples/image/mrmae_digits.yaml looks for one, relative to the working folder; a run to report on; an encoder to
    evaluate). Tests that write next to it write in folders of their own."""
    from anymae.cli import main

    root = tmp_path_factory.mktemp("digits_run")
    args = ["fit", "--config", str(ROOT / "examples" / "image" / "mae_tiny_digits.yaml")]
    args += ["--trainer.default_root_dir", str(root / "runs" / "teacher"), "--trainer.max_epochs", "2"]
    args += ["--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1"]
    args += ["--trainer.log_every_n_steps", "1", "--trainer.enable_progress_bar", "false", "--trainer.callbacks", GRID]
    cwd = os.getcwd()
    os.chdir(root)
    try:
        assert main(args) == 0
    finally:
        os.chdir(cwd)
    assert (root / "runs/teacher/lightning_logs/version_0/checkpoints/last.ckpt").is_file()
    return root


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist (``make test`` runs one worker per core), each worker and every process it starts runs one
    torch thread: two workers of one thread each keep 2 cores busy, while two of 2 threads each would oversubscribe
    them and run several times slower (see :mod:`anymae.training.threads`)."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        os.environ["OMP_NUM_THREADS"] = "1"
        import torch

        torch.set_num_threads(1)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The tests that train under DDP (their names say ``ddp``: 2 ranks, each a process) run one after another on one
    xdist worker (``make test`` distributes with ``--dist loadgroup``): two at once would run 4 ranks on 2 cores, each
    rank waiting on its partner at every step while the other test's ranks hold the cores."""
    for item in items:
        if "ddp" in item.nodeid.lower():
            item.add_marker(pytest.mark.xdist_group("ddp"))
