"""The divergence guard: a non-finite gradient stops training before the weights are touched (one line naming the
step and the last good checkpoint, which stays finite), or, with ``on_nonfinite: skip``, the step is dropped and
counted."""

import os
import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest
import torch
import yaml

import anymae

from .test_cli import TOY_CONFIG
from .toys import SeriesData, quiet_trainer, series_model

ROOT = Path(__file__).resolve().parents[2]


def test_a_diverging_run_stops_with_one_line_and_keeps_its_last_good_checkpoint(tmp_path):
    config = tmp_path / "toy.yaml"
    config.write_text(yaml.safe_dump(TOY_CONFIG))
    command = [
        str(Path(sys.executable).with_name("anymae")),
        "fit",
        "--config",
        str(config),
        "--trainer.default_root_dir",
        str(tmp_path),
        "--model.optimizer.lr",
        "1e5",  # diverges within a few steps
        "--model.lr_schedule.warmup_epochs",
        "0",
        "--checkpoint.every_n_train_steps",
        "1",
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("anymae: error:")]
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    last = tmp_path / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt"
    assert "anymae: error: training diverged at step " in errors[0] and "non-finite gradients" in errors[0]
    assert f"the weights were not updated, and the last good checkpoint is {last}" in errors[0]
    for path in last.parent.glob("*.ckpt"):
        state = torch.load(path, weights_only=True)["state_dict"]
        assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point()), path
    assert "checkpoint:" not in result.stdout  # no success line


def test_skip_drops_the_steps_a_corrupt_sample_poisons_and_counts_them():
    torch.manual_seed(0)
    model = series_model(on_nonfinite="skip")
    data = SeriesData(n=64, poison=5)  # one infinite sample: once per epoch, its batch's gradients are NaN
    quiet_trainer(max_epochs=3, limit_val_batches=0).fit(model, data)
    assert model.skipped_steps == 3
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_skip_keeps_master_weights_finite_in_bf16_true():
    """bf16 working copy with fp32 masters: a poisoned step is dropped before the optimiser, so neither the masters
    nor the bf16 parameters take a NaN."""
    torch.manual_seed(0)
    model = series_model(on_nonfinite="skip", optimizer=partial(anymae.MAEAdamW, lr=1e-3, master_weights=True))
    trainer = quiet_trainer(max_epochs=2, limit_val_batches=0, precision="bf16-true")
    trainer.fit(model, SeriesData(n=64, poison=5))
    assert model.skipped_steps == 2
    assert all(p.dtype == torch.bfloat16 and torch.isfinite(p).all() for p in model.parameters())
    masters = [s["master"] for s in trainer.optimizers[0].state.values() if "master" in s]
    assert masters and all(m.dtype == torch.float32 and torch.isfinite(m).all() for m in masters)


def test_skipping_forever_stops():
    model = series_model(on_nonfinite="skip", max_skipped_steps=2, optimizer=partial(anymae.MAEAdamW, lr=1e-3))
    data = SeriesData(n=64, batch_size=64, poison=5)  # every batch holds the corrupt sample
    with pytest.raises(anymae.TrainingDiverged, match="after 2 skipped steps in a row"):
        quiet_trainer(max_epochs=5, limit_val_batches=0).fit(model, data)


def test_checkpoints_are_written_atomically_and_stale_partials_removed(tmp_path):
    from anymae.training.checkpointing import AtomicCheckpointIO, Checkpoints

    folder = tmp_path / "checkpoints"
    folder.mkdir()
    (folder / ".last.ckpt.partial").write_bytes(b"half a checkpoint from a killed run")
    callback = Checkpoints(dirpath=folder, save_last=True)
    trainer = quiet_trainer(max_epochs=1, enable_checkpointing=True, callbacks=[callback], limit_val_batches=0)
    trainer.fit(series_model(), SeriesData(n=64))
    assert isinstance(trainer.strategy.checkpoint_io, AtomicCheckpointIO)
    assert sorted(p.name for p in folder.iterdir()) == ["epoch=0-step=2.ckpt", "last.ckpt"]  # no partial left
    assert torch.load(folder / "last.ckpt", weights_only=True)["global_step"] == 2


@pytest.mark.parametrize(
    "masker",
    [
        lambda: anymae.AdaptiveMasker(mask_ratio=0.5, num_heads=2),
        lambda: anymae.HardPatchesMasker(
            mask_ratio=0.5, predictor_depth=1, predictor_dim=8, predictor_heads=2, ema=0.9
        ),
        lambda: anymae.AttentionMasker(mask_ratio=0.5, ema=0.9),
    ],
    ids=["adamae", "hpm", "attmask"],
)
def test_learned_maskers_skip_a_poisoned_step_and_keep_their_own_weights_finite(masker):
    """A corrupt sample reaches the learned masker first (AdaMAE's sampling network, HPM's and AttMask's running
    copies score it): the step is still drawn, dropped and counted, and neither the model nor the masker's own
    parameters and copies take a NaN."""
    torch.manual_seed(0)
    model = series_model(on_nonfinite="skip", masker=masker())
    quiet_trainer(max_epochs=2, limit_val_batches=0).fit(model, SeriesData(n=64, poison=5))
    assert model.skipped_steps == 2
    assert all(torch.isfinite(t).all() for t in (*model.parameters(), *model.buffers()))
