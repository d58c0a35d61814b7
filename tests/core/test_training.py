"""Training with a plain Lightning Trainer: loss falls, validation is real and repeatable, resume is exact."""

import itertools

import lightning.pytorch as pl
import pytest
import torch
import yaml

import anymae

from .toys import SeriesData, SeriesTokenizer, fit_and_compare, quiet_trainer, series_model


def test_plain_trainer_fit_loss_falls_and_validation_is_logged():
    torch.manual_seed(0)
    model, data = series_model(), SeriesData()
    before, after, trainer = fit_and_compare(model, data, epochs=50)
    assert "train/loss" in trainer.progress_bar_metrics
    assert 0 < after < 0.5 * before, (before, after)


def test_validation_masks_are_the_same_every_epoch():
    model, data = series_model(), SeriesData()
    trainer = quiet_trainer(max_epochs=1)
    first = trainer.validate(model, data, verbose=False)[0]["val/loss"]
    second = trainer.validate(model, data, verbose=False)[0]["val/loss"]
    assert first == second != 0.0


def test_schedule_warms_up_then_decays():
    schedule = anymae.WarmupCosine(warmup_epochs=2, min_lr=1e-5)
    factors = [schedule.factor(step, warmup_steps=20, total_steps=100, base_lr=1e-3) for step in range(101)]
    assert factors[0] == 0 and factors[10] == pytest.approx(0.5) and factors[20] == pytest.approx(1.0)
    assert all(a >= b for a, b in itertools.pairwise(factors[20:]))
    assert factors[100] == pytest.approx(0.01)


def test_weight_decay_skips_biases_and_norms():
    model = series_model(optimizer=anymae.MAEAdamW)
    trainer = quiet_trainer(max_epochs=1)
    trainer.fit(
        model,
        SeriesData(n=32),
    )
    no_decay, decay = trainer.optimizers[0].param_groups
    assert no_decay["weight_decay"] == 0.0 and decay["weight_decay"] == 0.05
    assert all(p.ndim > 1 for p in decay["params"]) and all(p.ndim == 1 for p in no_decay["params"])


class StopAfter(pl.Callback):
    """Interrupts a run at the end of an epoch, as a crash or a pre-empted job would."""

    def __init__(self, epochs: int) -> None:
        self.epochs = epochs

    def on_train_epoch_end(self, trainer, pl_module):
        if trainer.current_epoch + 1 == self.epochs:
            trainer.should_stop = True


def _fit(tmp_path, callbacks=(), ckpt_path=None, model_args=None, **trainer_args):
    torch.manual_seed(0)
    model = series_model(**(model_args or {}))
    trainer = quiet_trainer(
        max_epochs=3,
        enable_checkpointing=True,
        default_root_dir=tmp_path,
        num_sanity_val_steps=0,
        callbacks=list(callbacks),
        **trainer_args,
    )
    trainer.fit(model, SeriesData(n=96), ckpt_path=ckpt_path)
    return model, trainer


def test_resume_is_exact(tmp_path):
    straight, _ = _fit(tmp_path / "a")
    interrupted, first = _fit(tmp_path / "b", callbacks=[StopAfter(2)])
    assert first.current_epoch == 2
    resumed, _ = _fit(tmp_path / "c", ckpt_path=first.checkpoint_callback.best_model_path)
    assert not torch.equal(interrupted.encoder.cls_token, straight.encoder.cls_token)
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_checkpoint_rebuilds_from_recorded_config(tmp_path):
    model, trainer = _fit(tmp_path)
    path = trainer.checkpoint_callback.best_model_path
    checkpoint = torch.load(path, weights_only=True)  # configs, not pickled modules
    assert checkpoint["hyper_parameters"]["masker"] == {  # the public name: it survives moves inside the package
        "class_path": "anymae.RandomMasker",
        "init_args": {"mask_ratio": 0.5},
    }
    loaded = anymae.MaskedAutoencoder.load_from_checkpoint(path)
    assert isinstance(loaded.tokenizer, SeriesTokenizer) and loaded.masker.mask_ratio == 0.5
    state = loaded.state_dict()
    assert any(name.startswith("decoder.") for name in state)  # the decoder is kept, for resuming and showing
    for name, value in model.state_dict().items():
        assert torch.equal(value, state[name]), name
    # Lightning's arguments: a YAML file of hyperparameters in place of the recorded ones, keyword overrides on top
    hparams = {**checkpoint["hyper_parameters"], "masker": {"class_path": "anymae.RandomMasker"}}
    (tmp_path / "hparams.yaml").write_text(yaml.safe_dump(hparams))
    loaded = anymae.MaskedAutoencoder.load_from_checkpoint(
        path, map_location=None, hparams_file=tmp_path / "hparams.yaml", strict=True, weights_only=True, seed=3
    )
    assert (loaded.masker.mask_ratio, loaded.seed) == (0.75, 3)


def test_bf16_autocast_trains_on_cpu():
    model = series_model()
    trainer = quiet_trainer(max_epochs=1, precision="bf16-mixed", limit_train_batches=3, limit_val_batches=1)
    trainer.fit(model, SeriesData())
    assert torch.isfinite(trainer.callback_metrics["train/loss"])
    assert trainer.callback_metrics["val/loss"] > 0


def test_master_weights_are_an_fp32_adamw_behind_a_bf16_working_copy():
    """With master_weights, the bf16 parameters are the rounding of exactly what fp32 AdamW computes from the same
    gradients; without, updates below bf16's resolution are lost."""
    torch.manual_seed(0)
    reference = torch.nn.Linear(8, 8)
    working = torch.nn.Linear(8, 8).bfloat16()
    with torch.no_grad():
        for a, b in zip(reference.parameters(), working.parameters(), strict=True):
            a.copy_(b.float())
    fp32 = torch.optim.AdamW(reference.parameters(), lr=1e-3, betas=(0.9, 0.95), weight_decay=0.05)
    ours = anymae.MAEAdamW(working.parameters(), lr=1e-3, master_weights=True)
    for _ in range(5):
        for a, b in zip(reference.parameters(), working.parameters(), strict=True):
            b.grad = torch.randn_like(b)
            a.grad = b.grad.float()
        fp32.step()
        ours.step()
    for a, b in zip(reference.parameters(), working.parameters(), strict=True):
        assert b.dtype == b.grad.dtype == torch.bfloat16
        assert torch.equal(ours.state[b]["master"], a) and torch.equal(b, a.bfloat16())
    reloaded = anymae.MAEAdamW(working.parameters(), lr=1e-3, master_weights=True)
    reloaded.load_state_dict(ours.state_dict())  # torch would round the saved state to the parameters' bf16
    assert {v.dtype for v in reloaded.state[working.weight].values()} == {torch.float32}
    assert torch.equal(reloaded.state[working.weight]["master"], reference.weight)

    for masters, moved in ((False, False), (True, True)):  # steps of 1e-3 at 1.0, where bf16 resolves 2^-7
        weight = torch.nn.Parameter(torch.ones(4, dtype=torch.bfloat16))
        optimizer = anymae.MAEAdamW([weight], lr=1e-3, weight_decay=0.0, master_weights=masters)
        for _ in range(10):
            weight.grad = torch.ones_like(weight)
            optimizer.step()
        assert bool((weight < 1).all()) == moved


def test_bf16_true_with_master_weights_trains_resumes_exactly_and_draws(tmp_path):
    from functools import partial

    bf16 = {"model_args": {"optimizer": partial(anymae.MAEAdamW, lr=3e-3, master_weights=True)}}
    straight, trainer = _fit(tmp_path / "a", precision="bf16-true", **bf16)
    assert next(straight.parameters()).dtype == torch.bfloat16
    assert torch.isfinite(trainer.callback_metrics["train/loss"])
    _, first = _fit(tmp_path / "b", callbacks=[StopAfter(2)], precision="bf16-true", **bf16)
    path = first.checkpoint_callback.best_model_path
    resumed, _ = _fit(tmp_path / "c", ckpt_path=path, precision="bf16-true", **bf16)
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    weight = straight.encoder.cls_token
    with straight.float32():  # what figures run in: an exact fp32 view, then the same bf16 tensor back
        assert weight.dtype == torch.float32
    assert weight.dtype == torch.bfloat16 and torch.equal(weight, straight.encoder.cls_token)


def test_warmup_needs_an_epoch_length_or_steps():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    with pytest.raises(anymae.ConfigError, match=r"set lr_schedule\.warmup_steps"):
        anymae.WarmupCosine(warmup_epochs=1).scheduler(optimizer, total_steps=100, steps_per_epoch=None)
    scheduler = anymae.WarmupCosine(warmup_steps=10).scheduler(optimizer, total_steps=100, steps_per_epoch=None)
    for _ in range(5):
        optimizer.step()
        scheduler.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.5)


def test_blr_scales_with_the_effective_batch(capsys):
    """MAE's rule: lr = blr x ranks x batch per rank x accumulation / 256 (here 1 x 32 x 2)."""
    model = series_model(blr=1e-3)
    trainer = quiet_trainer(max_epochs=1, accumulate_grad_batches=2, limit_val_batches=0)
    trainer.fit(model, SeriesData(n=64, batch_size=32))
    assert trainer.optimizers[0].param_groups[1]["initial_lr"] == pytest.approx(1e-3 * 64 / 256)
    assert "lr = blr 0.001 x effective batch 64 / 256 = 0.00025" in capsys.readouterr().out
