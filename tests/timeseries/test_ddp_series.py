"""The recipe study's parts under Lightning's DDP (2 CPU processes, gloo): series augmentation in each rank's
training batches, then k-NN on a carved validation split with an averaged, max-pooled read-out: one checkpoint, one
result row."""

import csv
import math
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ANYMAE = Path(sys.executable).with_name("anymae")
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "ANYMAE_STRICT_PLUGINS": "1"}
DDP = ["--trainer.strategy", "ddp", "--trainer.devices", "2", "--trainer.accelerator", "cpu"]


def test_augmented_pretraining_and_carved_knn_under_ddp(tmp_path):
    examples = ROOT / "examples" / "timeseries"
    fit = [str(ANYMAE), "fit", "--config", str(examples / "patch_mae_ucr.yaml"), *DDP, "--trainer.max_epochs", "2"]
    fit += ["--trainer.callbacks", "[]", "--trainer.enable_progress_bar", "false"]
    fit += ["--data.init_args.jitter", "0.05", "--data.init_args.scaling", "0.2", "--data.init_args.crop", "0.2"]
    result = subprocess.run(fit, cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    run = tmp_path / "lightning_logs" / "version_0"
    assert (run / "checkpoints" / "last.ckpt").is_file()
    losses = [float(r["val/loss"]) for r in csv.DictReader((run / "metrics.csv").open()) if r.get("val/loss")]
    assert len(losses) == 2 and all(math.isfinite(v) for v in losses)

    knn = [str(ANYMAE), "knn", "--config", str(examples / "knn_ucr.yaml"), *DDP, "--results", "rows.csv"]
    knn += ["--data.carve_validation", "true", "--model.layers", "2", "--model.pool", "max"]
    result = subprocess.run(knn, cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = list(csv.DictReader((tmp_path / "rows.csv").open()))
    assert [(r["data"], r["init"]) for r in rows] == [("GunPoint/carved", "pretrained")]  # once, not per rank
    assert 0 <= float(rows[0]["value"]) <= 1
