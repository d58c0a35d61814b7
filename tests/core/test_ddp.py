"""Lightning's DDP on 2 CPU processes (gloo): one step equals one process on the global batch, and a real run with
every part that keeps state or writes files (a learned masker, a teacher target, feature mixing, bf16 with fp32
master weights, loader workers sent on to the next epoch, a figure every epoch) trains on both ranks and writes its
figures, checkpoint and evaluation row once, with no hang."""

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

from .ddp_step import build_model, eight_series

ROOT = Path(__file__).resolve().parents[2]
ANYMAE = Path(sys.executable).with_name("anymae")
DDP = ["--trainer.strategy", "ddp", "--trainer.devices", "2", "--trainer.accelerator", "cpu"]


def env() -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, "ANYMAE_STRICT_PLUGINS": "1"}


@pytest.mark.slow
def test_one_ddp_step_equals_one_process_on_the_global_batch(tmp_path):
    out = tmp_path / "ddp.pt"
    script = [sys.executable, str(ROOT / "tests" / "core" / "ddp_step.py"), str(out)]
    run = subprocess.run(script, cwd=ROOT, env=env(), capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    ddp = torch.load(out, weights_only=True)

    # One process, the same 8 series: rank r's half of the epoch's order (the kit's sampler: order[r::2]), masked as
    # rank r masks its step (the documented per-rank seed); DDP averages the two ranks' gradients.
    model = build_model()
    optimizer = torch.optim.SGD(model.param_groups(), lr=0.5)
    series = eight_series()["series"]
    sampler = anymae.EpochShuffleSampler(len(series), seed=0)
    losses = []
    for rank in (0, 1):
        generator = torch.Generator().manual_seed(mask_seed(0, rank, 0, 0))
        losses.append(model({"series": series[sampler.indices(rank, 2)]}, generator=generator).loss)
    (sum(losses) / 2).backward()
    optimizer.step()

    torch.testing.assert_close(ddp["losses"], torch.stack(losses).detach(), rtol=1e-6, atol=1e-6)
    for name, value in model.state_dict().items():
        torch.testing.assert_close(ddp["state"][name], value, rtol=1e-5, atol=1e-6, msg=name)
    start = build_model().state_dict()["encoder.token_embed.weight"]
    assert not torch.equal(ddp["state"]["encoder.token_embed.weight"], start)


@pytest.mark.slow
def test_a_run_with_every_stateful_part_writes_once_under_ddp(digits_run):
    """MR-MAE's teacher target (the teacher outside the module tree, loaded on each rank), HPM's masker (a loss
    predictor trained from each step's feedback, EMA copies choosing the masks), CrossMAE's decoder with feature
    mixing, bf16-true with fp32 master weights, 2 loader workers per rank sent on to the next epoch (full epochs)
    and a reconstruction grid every epoch (which used to hang both ranks); then k-NN on its checkpoint."""
    root = digits_run / "ddp"
    fit = [str(ANYMAE), "fit", "--config", str(ROOT / "examples" / "image" / "mrmae_digits.yaml"), *DDP]
    fit += ["--model.masker", "anymae.HardPatchesMasker", "--model.masker.predictor_dim", "32"]
    fit += ["--model.masker.predictor_heads", "4", "--model.masker.ema", "0.9"]
    fit += ["--model.decoder", "anymae.CrossMAEDecoder", "--model.decoder.embed_dim", "32"]
    fit += ["--model.decoder.depth", "2", "--model.decoder.num_heads", "4", "--model.decoder.weight_fm", "true"]
    fit += ["--trainer.precision", "bf16-true", "--model.optimizer.init_args.master_weights", "true"]
    fit += ["--data.init_args.num_workers", "2", "--trainer.max_epochs", "2", "--trainer.limit_val_batches", "1"]
    fit += ["--trainer.callbacks.every_n_epochs", "1", "--trainer.log_every_n_steps", "5"]
    fit += ["--trainer.enable_progress_bar", "false", "--trainer.default_root_dir", str(root)]
    result = subprocess.run(fit, cwd=digits_run, env=env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    run = root / "lightning_logs" / "version_0"
    figures = sorted(p.name for p in (run / "reconstructions").iterdir())
    assert figures == ["epoch=0000.png", "epoch=0001.png", "final.png"]
    assert result.stdout.count("reconstructions: ") == 1 and result.stdout.count("checkpoint: ") == 1
    header = (run / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"train/loss_pixels", "train/loss_teacher", "train/loss_predictor", "val/loss_teacher"} <= set(header)

    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["epoch"] == 1  # two full epochs: the workers went on to the second one
    masters = [s["master"] for s in checkpoint["optimizer_states"][0]["state"].values()]
    assert masters and all(m.dtype == torch.float32 and torch.isfinite(m).all() for m in masters)
    state = checkpoint["state_dict"]
    copy = {k.removeprefix("masker.ema_encoder."): v for k, v in state.items() if k.startswith("masker.ema_encoder.")}
    online = {k.removeprefix("encoder."): v for k, v in state.items() if k.startswith("encoder.")}
    assert copy.keys() == online.keys() and all(torch.isfinite(v).all() for v in copy.values())
    assert any(not torch.equal(copy[k], online[k]) for k in copy)  # the copy trails the online encoder
    assert not any(".teacher.net." in k or k.startswith("target.parts.teacher.teacher") for k in state)
    assert "decoder.feature_mix.weight" in state

    knn = [str(ANYMAE), "knn", "--config", str(ROOT / "examples" / "image" / "knn_digits.yaml"), *DDP]
    knn += ["--model.encoder.checkpoint", str(run / "checkpoints" / "last.ckpt"), "--results", "rows.csv"]
    result = subprocess.run(knn, cwd=root, env=env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = list(csv.DictReader((root / "rows.csv").open()))
    assert [r["init"] for r in rows] == ["pretrained"]  # one header, one row, not one per rank
    printed = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(printed) == 1 and printed[0]["protocol"] == "knn"
