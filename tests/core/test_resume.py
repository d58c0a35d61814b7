"""Reliability of a real `anymae fit`: killed with SIGKILL mid-epoch and resumed with `--ckpt_path last`, it reaches
the same weights and validation loss as an uninterrupted run, says where it resumed from, does not call its data
unresumable and removes the partial file a killed save left; `last` with nothing to resume from is one line."""

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
ANYMAE = Path(sys.executable).with_name("anymae")
SMALL = [
    "--config",
    str(ROOT / "examples" / "image" / "mae_tiny_digits.yaml"),
    "--trainer.max_epochs",
    "2",
    "--trainer.callbacks",
    "null",
    "--trainer.enable_progress_bar",
    "false",
    "--trainer.enable_model_summary",
    "false",
    "--model.encoder.init_args.embed_dim",
    "24",
    "--model.encoder.init_args.depth",
    "1",
    "--model.decoder.init_args.embed_dim",
    "16",
    "--model.decoder.init_args.depth",
    "1",
    "--model.lr_schedule.warmup_epochs",
    "1",
    "--model.tokenizer.init_args.image_size",
    "16",
    "--data.image_size",
    "16",
    "--checkpoint.every_n_train_steps",
    "10",
]  # 1,617 training digits in batches of 64: 25 steps an epoch, 50 in all, a checkpoint every 10


def fit(root: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ANYMAE_STRICT_PLUGINS": "1"}
    command = [str(ANYMAE), "fit", *SMALL, "--trainer.default_root_dir", str(root), *extra]
    return subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=600)


def val_losses(run: Path) -> list[float]:
    return [float(r["val/loss"]) for r in csv.DictReader((run / "metrics.csv").open()) if r.get("val/loss")]


def weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_from_last_is_exact(tmp_path):
    straight, crashed = tmp_path / "straight", tmp_path / "crashed"
    straight.mkdir(), crashed.mkdir()
    assert fit(straight).returncode == 0

    killed = fit(crashed, "--trainer.callbacks+=tests.core.toys.KillAt", "--trainer.callbacks.step", "33")
    assert killed.returncode == -9  # SIGKILL at step 33, mid-epoch 1; the last checkpoint is step 30's
    first = crashed / "lightning_logs" / "version_0" / "checkpoints"
    assert sorted(p.name for p in first.iterdir()) == ["epoch=1-step=30.ckpt", "last.ckpt"]
    assert torch.load(first / "last.ckpt", weights_only=True)["global_step"] == 30
    partial = first / ".last.ckpt.partial"  # what a run killed in the middle of its next save would have left
    partial.write_bytes(b"PK" + bytes(1000))
    os.utime(partial, (partial.stat().st_atime - 120, partial.stat().st_mtime - 120))  # a save killed 2 minutes ago

    resumed = fit(crashed, "--ckpt_path", "last")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resumed from {first / 'last.ckpt'} at epoch 1, step 30" in resumed.stdout
    assert "not resumable" not in resumed.stderr  # Lightning's warning: the kit's loaders resume exactly
    assert not partial.exists()  # the resumed run writes to version_1: the clean-up looks where it resumed from too
    done = weights(crashed / "lightning_logs" / "version_1" / "checkpoints" / "last.ckpt")
    reference = weights(straight / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt")
    assert done.keys() == reference.keys()
    for name, value in reference.items():
        torch.testing.assert_close(done[name], value, rtol=0, atol=0, msg=name)  # bit for bit
    assert (
        val_losses(crashed / "lightning_logs" / "version_1")[-1]
        == val_losses(straight / "lightning_logs" / "version_0")[-1]
    )


def test_ckpt_path_last_with_nothing_to_resume_is_one_line(tmp_path, capsys):
    from anymae.cli import main

    assert main(["fit", *SMALL, "--trainer.default_root_dir", str(tmp_path), "--ckpt_path", "last"]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("anymae: error:")]
    assert errors == [
        f"anymae: error: ckpt_path: 'last' found no last.ckpt under {tmp_path}; run anymae fit first (every run "
        "writes one) or give a checkpoint's path"
    ]
