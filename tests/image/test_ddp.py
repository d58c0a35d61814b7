"""Lightning's DDP on 2 CPU processes (gloo): the same step as one process, and the example configs' figure callbacks
and the evaluation commands write their files and rows once, with no hang."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import anymae
from anymae.training.module import mask_seed

from .ddp_reference import build_model, first_digits

ROOT = Path(__file__).resolve().parents[2]
ANYMAE = Path(sys.executable).with_name("anymae")
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "ANYMAE_STRICT_PLUGINS": "1"}
DDP = ["--trainer.strategy", "ddp", "--trainer.devices", "2", "--trainer.accelerator", "cpu"]


@pytest.mark.slow
def test_one_ddp_step_equals_one_process_on_the_global_batch(tmp_path):
    out = tmp_path / "ddp.pt"
    script = [sys.executable, str(ROOT / "tests" / "image" / "ddp_step.py"), str(out)]
    run = subprocess.run(script, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    ddp = torch.load(out, weights_only=True)

    # One process, the same 8 digits: rank r's half of the epoch's order (the kit's sampler: order[r::2]), masked as
    # rank r masks its step (the documented per-rank seed); DDP averages the two ranks' gradients.
    model = build_model()
    optimizer = torch.optim.SGD(model.param_groups(), lr=0.5)  # the model's optimizer: see ddp_reference
    digits = first_digits()["image"]
    sampler = anymae.EpochShuffleSampler(len(digits), seed=0)
    losses = []
    for rank in (0, 1):
        generator = torch.Generator().manual_seed(mask_seed(0, rank, 0, 0))
        losses.append(model({"image": digits[sampler.indices(rank, 2)]}, generator=generator).loss)
    (sum(losses) / 2).backward()
    optimizer.step()

    torch.testing.assert_close(ddp["losses"], torch.stack(losses).detach(), rtol=1e-6, atol=1e-6)
    for name, value in model.state_dict().items():
        torch.testing.assert_close(ddp["state"][name], value, rtol=1e-5, atol=1e-6, msg=name)
    assert not torch.equal(
        ddp["state"]["encoder.token_embed.weight"], build_model().state_dict()["encoder.token_embed.weight"]
    )


@pytest.mark.slow
def test_figures_checkpoints_and_evaluation_rows_under_ddp(tmp_path):
    """The digits config with its reconstruction grid every epoch (which used to hang both ranks), then k-NN: one
    figure per period, one last.ckpt, one CSV header and one row, one printed result."""
    fit = [
        str(ANYMAE),
        "fit",
        "--config",
        str(ROOT / "examples" / "image" / "mae_tiny_digits.yaml"),
        *DDP,
        "--trainer.max_epochs",
        "2",
        "--trainer.limit_train_batches",
        "3",
        "--trainer.limit_val_batches",
        "1",
        "--trainer.callbacks.every_n_epochs",
        "1",
        "--trainer.enable_progress_bar",
        "false",
    ]
    result = subprocess.run(fit, cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    run = tmp_path / "lightning_logs" / "version_0"
    assert sorted(p.name for p in (run / "reconstructions").iterdir()) == [
        "epoch=0000.png",
        "epoch=0001.png",
        "final.png",
    ]
    assert result.stdout.count("reconstructions: ") == 1 and result.stdout.count("checkpoint: ") == 1
    assert (run / "checkpoints" / "last.ckpt").is_file()

    knn = [
        str(ANYMAE),
        "knn",
        "--config",
        str(ROOT / "examples" / "image" / "knn_digits.yaml"),
        *DDP,
        "--results",
        str(tmp_path / "results.csv"),
    ]
    result = subprocess.run(knn, cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = list(csv.DictReader((tmp_path / "results.csv").open()))
    assert [r["init"] for r in rows] == ["pretrained"]  # one header, one row, not one per rank
    printed = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(printed) == 1 and printed[0]["protocol"] == "knn"


def test_crossmae_in_bf16_with_master_weights_and_early_workers_under_ddp(tmp_path):
    """This session's parts together on 2 ranks: the CrossMAE decoder, bf16-true with fp32 master weights, and loader
    workers sent on to the next epoch (full epochs, 2 workers per rank): it trains, draws, and saves fp32 masters."""
    fit = [
        str(ANYMAE),
        "fit",
        "--config",
        str(ROOT / "examples" / "image" / "crossmae_digits.yaml"),
        *DDP,
        "--trainer.precision",
        "bf16-true",
        "--model.optimizer.init_args.master_weights",
        "true",
        "--data.init_args.num_workers",
        "2",
        "--trainer.max_epochs",
        "2",
        "--trainer.limit_val_batches",
        "1",
        "--trainer.enable_progress_bar",
        "false",
    ]
    result = subprocess.run(fit, cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    checkpoint = torch.load(tmp_path / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["epoch"] == 1
    masters = [s["master"] for s in checkpoint["optimizer_states"][0]["state"].values()]
    assert masters and all(m.dtype == torch.float32 and torch.isfinite(m).all() for m in masters)
    assert (tmp_path / "lightning_logs" / "version_0" / "reconstructions" / "final.png").is_file()


def test_learned_masker_and_teacher_target_under_ddp(digits_teacher_dir):
    """Issue 16's parts on 2 ranks: MR-MAE's teacher target (the teacher outside the module tree, loaded on each rank)
    with HPM's masker (a loss predictor trained from each step's feedback, EMA copies choosing the masks)."""
    root = digits_teacher_dir / "ddp"
    fit = [
        str(ANYMAE),
        "fit",
        "--config",
        str(ROOT / "examples" / "image" / "mrmae_digits.yaml"),
        *DDP,
        "--model.masker",
        "anymae.HardPatchesMasker",
        "--model.masker.predictor_dim",
        "32",
        "--model.masker.predictor_heads",
        "4",
        "--model.masker.ema",
        "0.9",
        "--trainer.max_epochs",
        "2",
        "--trainer.limit_train_batches",
        "4",
        "--trainer.limit_val_batches",
        "1",
        "--trainer.log_every_n_steps",
        "1",
        "--trainer.callbacks",
        "[]",
        "--trainer.enable_progress_bar",
        "false",
        "--trainer.default_root_dir",
        str(root),
    ]
    result = subprocess.run(fit, cwd=digits_teacher_dir, env=ENV, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    run = root / "lightning_logs" / "version_0"
    header = (run / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"train/loss_pixels", "train/loss_teacher", "train/loss_predictor", "val/loss_teacher"} <= set(header)
    state = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    copy = {k.removeprefix("masker.ema_encoder."): v for k, v in state.items() if k.startswith("masker.ema_encoder.")}
    online = {k.removeprefix("encoder."): v for k, v in state.items() if k.startswith("encoder.")}
    assert copy.keys() == online.keys() and all(torch.isfinite(v).all() for v in copy.values())
    assert any(not torch.equal(copy[k], online[k]) for k in copy)  # the copy trails the online encoder
    assert not any(".teacher.net." in k or k.startswith("target.parts.teacher.teacher") for k in state)
