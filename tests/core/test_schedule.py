"""A schedule derived from the data set's size when a config gives none, and warm-up as a share of the schedule."""

from pathlib import Path

import pytest
import torch
import yaml

from anymae import WarmupCosine
from anymae.cli import main
from anymae.training.schedule import EPOCHS, MIN_STEPS, derived_steps

ROOT = Path(__file__).resolve().parents[2]


def test_small_sets_get_at_least_the_minimum_and_large_ones_epochs() -> None:
    assert derived_steps(50, 32) == MIN_STEPS  # 2 steps an epoch: 200 epochs would be 400 steps
    assert derived_steps(100_000, 64) == EPOCHS * 1563  # ceil(100000 / 64) steps an epoch
    assert derived_steps(100_000, 64, world_size=2) == EPOCHS * 782  # the effective batch counts
    assert derived_steps(100_000, 64, accumulate=2) == EPOCHS * 1563 // 2
    # a set 5x smaller is not trained 5x shorter
    assert derived_steps(2_000, 64) / derived_steps(400, 64) < 5


def test_fit_without_a_schedule_derives_one_from_the_data(tmp_path: Path, capsys, monkeypatch) -> None:
    import anymae.training.schedule as schedule

    monkeypatch.setattr(schedule, "MIN_STEPS", 3)  # the rule, on a scale a test can run
    monkeypatch.setattr(schedule, "EPOCHS", 0)
    config = yaml.safe_load((ROOT / "examples/image/mae_tiny_digits.yaml").read_text())
    config["trainer"] = {"limit_val_batches": 1, "enable_progress_bar": False, "logger": False}
    config["model"]["encoder"]["init_args"].update(embed_dim=24, depth=1)
    config["model"]["lr_schedule"] = {"warmup_fraction": 0.5}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    args = ["fit", "--config", str(tmp_path / "c.yaml"), "--trainer.default_root_dir", str(tmp_path)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "schedule: 3 steps (1617 training samples" in out  # scikit-learn's 1797 digits less the 10% held out
    checkpoint = torch.load(tmp_path / "checkpoints/last.ckpt", weights_only=True, map_location="cpu")
    assert checkpoint["global_step"] == 3 and checkpoint["epoch"] == 0


@pytest.mark.parametrize(("fraction", "warmup"), [(0.05, 5), (0.5, 50), (0.0, 0)])
def test_warmup_as_a_share_of_the_schedule(fraction: float, warmup: int) -> None:
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = WarmupCosine(warmup_fraction=fraction).scheduler(optimizer, total_steps=100, steps_per_epoch=None)
    factors = [scheduler.lr_lambdas[0](step) for step in range(101)]
    peak = max(range(101), key=factors.__getitem__)
    assert peak == warmup and factors[peak] == pytest.approx(1.0)
    assert factors[100] == pytest.approx(0.0)


def test_warmup_steps_win_over_the_share() -> None:
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = WarmupCosine(warmup_steps=10, warmup_fraction=0.5).scheduler(optimizer, 100, None)
    assert scheduler.lr_lambdas[0](10) == pytest.approx(1.0) and scheduler.lr_lambdas[0](5) == pytest.approx(0.5)
