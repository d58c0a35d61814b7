"""The time-series configs train from the anymae command; forecasting by masking beats the naive baselines."""

import csv
from pathlib import Path

import numpy as np
import pytest

from anymae.cli import main

from ..commands import assert_listed, fit, val_losses

ROOT = Path(__file__).resolve().parents[2]


def metrics(run: Path) -> list[dict]:
    return list(csv.DictReader((run / "metrics.csv").open()))


def test_plugins_command_lists_the_time_series_components(plugins_listing):
    assert_listed(
        plugins_listing, "anymae-timeseries 0.3.0 (plugin API 3)", "masker: ForecastMasker", "target: TrajectoryTarget"
    )


@pytest.mark.parametrize(("config", "epochs"), [("patch_mae_ucr", 6), ("trajectory_mae", 3), ("forecast_airline", 6)])
def test_configs_train_with_falling_loss_and_plot(config, epochs, tmp_path, capsys):
    run = fit(f"timeseries/{config}.yaml", tmp_path, "--trainer.max_epochs", str(epochs))
    losses = val_losses(run)
    assert len(losses) == epochs and losses[-1] < losses[0], losses
    assert (run / "series" / "final.png").is_file()
    assert f"series plot: {run / 'series' / 'final.png'}" in capsys.readouterr().out


def test_forecasting_by_masking_beats_the_naive_baselines(tmp_path):
    """A seasonal series (periods 12 and 7, noise): after a short fit the masked autoencoder's forecast of the last
    12 steps beats repeating the last value and repeating last season."""
    t = np.arange(600)
    rng = np.random.default_rng(0)
    values = np.sin(2 * np.pi * t / 12) + 0.6 * np.sin(2 * np.pi * t / 7 + 1) + 0.1 * rng.standard_normal(600)
    np.save(tmp_path / "seasonal.npy", values.astype(np.float32))
    data = (
        '{"class_path": "anymae_timeseries.SeriesFileDataModule", "init_args": '
        f'{{"path": "{tmp_path / "seasonal.npy"}", "window": 36, "stride": 2, "batch_size": 32}}}}'
    )
    callbacks = '[{"class_path": "anymae_timeseries.ForecastMetrics", "init_args": {"season": 12}}]'
    args = [
        "fit",
        "--config",
        str(ROOT / "examples" / "timeseries" / "forecast_airline.yaml"),
        "--data",
        data,
        "--trainer.max_epochs",
        "40",
        "--trainer.default_root_dir",
        str(tmp_path),
        "--trainer.callbacks",
        callbacks,
        "--trainer.enable_progress_bar",
        "false",
    ]
    assert main(args) == 0
    last = [r for r in metrics(tmp_path / "lightning_logs" / "version_0") if r.get("val/forecast_mse")][-1]
    forecast, naive, seasonal = (float(last[f"val/{k}_mse"]) for k in ("forecast", "naive", "seasonal_naive"))
    assert forecast < 0.5 * seasonal and forecast < 0.1 * naive, last
