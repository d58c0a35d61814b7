"""The issue-16 method examples train from the command line on the embedded data, and ``anymae masks`` draws what a
trained learned masker hides."""

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import anymae
from anymae.cli import main
from anymae.cli.masks import checkpoint_batch

ROOT = Path(__file__).resolve().parents[2]
SHORT = ["--trainer.max_epochs", "1", "--trainer.limit_train_batches", "3", "--trainer.limit_val_batches", "1"]
SHORT += ["--trainer.enable_progress_bar", "false", "--trainer.log_every_n_steps", "1"]


def fit(config: str, cwd: Path, monkeypatch) -> Path:
    monkeypatch.chdir(cwd)
    assert main(["fit", "--config", str(ROOT / "examples" / config), *SHORT, "--trainer.callbacks", "[]"]) == 0
    return sorted((cwd / "lightning_logs").glob("version_*"))[-1]


def logged(run: Path) -> set[str]:
    with open(run / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    return {k for row in rows for k, v in row.items() if v not in ("", None)}


@pytest.mark.parametrize(
    ("config", "terms"),
    [
        ("image/simmim_digits.yaml", set()),
        ("image/crossmae_digits.yaml", set()),
        ("image/adamae_digits.yaml", {"train/loss_sampling", "train/loss_target"}),
        ("image/hpm_digits.yaml", {"train/loss_predictor", "train/loss_target"}),
        ("image/attmask_digits.yaml", set()),
        ("timeseries/hpm_ucr.yaml", {"train/loss_predictor"}),
    ],
)
def test_method_example_trains_from_the_command_line(config, terms, tmp_path, monkeypatch):
    run = fit(config, tmp_path, monkeypatch)
    assert {"train/loss", "val/loss"} | terms <= logged(run)
    assert (run / "checkpoints" / "last.ckpt").is_file()


def test_mrmae_trains_with_the_teacher_of_a_previous_fit(digits_run, monkeypatch):
    run = fit("image/mrmae_digits.yaml", digits_run, monkeypatch)
    assert {"train/loss_pixels", "train/loss_teacher", "val/loss_teacher"} <= logged(run)


def test_masks_command_draws_a_trained_learned_masker(tmp_path, monkeypatch):
    run = fit("image/attmask_digits.yaml", tmp_path, monkeypatch)
    checkpoint = run / "checkpoints" / "last.ckpt"
    out = tmp_path / "masks.png"
    assert main(["masks", "--checkpoint", str(checkpoint), "--samples", "3", "--seed", "5", "--out", str(out)]) == 0
    drawn = np.asarray(Image.open(out))
    # the masks the trained model's masker makes on the run's validation images (the run's config names them)
    model = anymae.MaskedAutoencoder.load_from_checkpoint(checkpoint, map_location="cpu").eval()
    batch = checkpoint_batch(checkpoint, 3, model)
    assert batch["image"].shape[0] == 3
    with torch.no_grad():
        mask = model(batch, generator=torch.Generator().manual_seed(5)).mask.mask
    for i in range(3):  # one row of 8 x 8 cells of 8 px per sample, 4-px gaps; a cell's corner pixel is its state
        sample = drawn[4 + i * (8 * 8 + 4) :, 4:][: 8 * 8 : 8, : 8 * 8 : 8]
        assert ((sample != 255).reshape(-1) == mask[i].numpy()).all()
