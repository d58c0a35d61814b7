"""``anymae tune``: the search space it derives, and a tiny study on the digits that runs, writes its outputs,
resumes from its journal and runs an interrupted trial again."""

import csv
import os
from pathlib import Path

import pytest
import yaml

from anymae.cli import main
from anymae.cli.tune import Study, parse_budget
from anymae.cli.tune_space import Param, apply, config_value, default_space, grid_size, read_space
from anymae.config import ConfigError

ROOT = Path(__file__).resolve().parents[2]
DIGITS = ROOT / "examples/image/mae_tiny_digits.yaml"
KNN = ROOT / "examples/image/knn_digits.yaml"


def read(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def test_the_default_space_is_centred_on_the_configs_own_recipe() -> None:
    space = {p.key: p for p in default_space(read(DIGITS))}
    ratio = space["model.masker.init_args.mask_ratio"]
    assert ratio.low < 0.75 < ratio.high
    steps = space["trainer.max_steps"]  # the schedule, a third to 3x the config's 750 steps
    assert (steps.low, steps.high, steps.integer, steps.log) == (250, 2250, True, True)
    lr = space["model.optimizer.init_args.lr"]
    assert lr.low == pytest.approx(2e-4) and lr.high == pytest.approx(5e-3)
    assert space["model.encoder.init_args.embed_dim"].choices == (48, 96, 192)  # multiples of 3 heads, even per head
    assert (space["model.encoder.init_args.depth"].low, space["model.encoder.init_args.depth"].high) == (2, 6)
    assert space["model.tokenizer.init_args.patch_size"].choices == (2, 4, 8)  # each divides the 32-pixel image


def test_the_first_trial_is_the_configs_own_recipe_class_defaults_included() -> None:
    config = read(ROOT / "examples/transfer/mae_textures.yaml")  # sets no crop_scale: the data module's (0.2, 1)
    assert config_value(config, "data.init_args.crop_scale") == [0.2, 1.0]
    assert config_value(config, "model.masker.init_args.mask_ratio") == 0.75
    assert config_value(config, "model.encoder.init_args.no_such_argument") is None


def test_the_space_has_the_augmentation_a_data_module_offers() -> None:
    series = default_space(read(ROOT / "examples/timeseries/patch_mae_ucr.yaml"))
    keys = {p.key for p in series}
    assert {"data.init_args.jitter", "data.init_args.scaling", "data.init_args.crop"} <= keys
    assert "model.tokenizer.init_args.patch_len" in keys


def test_a_space_file_is_checked() -> None:
    space = read_space([{"key": "a.b", "low": 1, "high": 4}, {"key": "c", "choices": [[0.2, 1.0], [0.5, 1.0]]}])
    assert space[0].integer and space[1].choices == ([0.2, 1.0], [0.5, 1.0])
    assert grid_size(space) == 8
    with pytest.raises(ConfigError, match="unknown fields"):
        read_space([{"key": "a", "lo": 1}])
    with pytest.raises(ConfigError, match="low <= high"):
        read_space([{"key": "a", "low": 2.0, "high": 1.0}])
    with pytest.raises(ConfigError, match="log scale"):
        Param("a", 0.0, 1.0, log=True)
    assert apply({"a": {"b": 1}}, {"a.c.d": 2, "a.b": 3}) == {"a": {"b": 3, "c": {"d": 2}}}
    assert parse_budget("90s") == 90 and parse_budget("10m") == 600 and parse_budget("1.5h") == 5400
    assert parse_budget("2") == 120
    with pytest.raises(ConfigError, match="budget"):
        parse_budget("soon")


@pytest.fixture
def tiny(tmp_path: Path) -> tuple[Path, Path]:
    """A pretraining config of a few steps and a space of three mask ratios (a grid of 3 recipes)."""
    config = read(DIGITS)
    config["trainer"] = {"max_epochs": 1, "limit_train_batches": 6, "limit_val_batches": 1, "log_every_n_steps": 1}
    config["model"]["encoder"]["init_args"].update(embed_dim=48, depth=2)
    (tmp_path / "pretrain.yaml").write_text(yaml.safe_dump(config))
    space = [{"key": "model.masker.init_args.mask_ratio", "choices": [0.5, 0.75, 0.9]}]
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(space))
    return tmp_path / "pretrain.yaml", tmp_path / "space.yaml"


def tune(tmp_path: Path, config: Path, space: Path, *extra: str) -> int:
    args = ["tune", "--config", str(config), "--protocol", str(KNN), "--space", str(space)]
    args += ["--out", str(tmp_path / "study"), "--budget", "5m", *extra]
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        return main(args)
    finally:
        os.chdir(cwd)


def rows(tmp_path: Path) -> list[dict]:
    with (tmp_path / "study/trials.csv").open() as handle:
        return list(csv.DictReader(handle))


def test_a_tiny_study_writes_its_outputs_and_resumes(tiny, tmp_path: Path, capsys) -> None:
    config, space = tiny
    assert tune(tmp_path, config, space, "--trials", "2", "--rungs", "1") == 0
    first = rows(tmp_path)
    assert [r["trial"] for r in first] == ["0", "1"]
    assert first[0]["model.masker.mask_ratio"] == "0.75"  # the config's own recipe comes first
    assert all(r["state"] == "complete" and 0 < float(r["score"]) <= 1 for r in first)
    assert all(len(r["rungs"].split()) == 1 for r in first)  # one score, halfway through the 6 steps
    # resumed: the same journal, the one recipe of the grid not tried yet, and no more (no rungs: never pruned)
    assert tune(tmp_path, config, space, "--rungs", "0") == 0
    second = rows(tmp_path)
    assert [r["trial"] for r in second] == ["0", "1", "2"]
    assert sorted(float(r["model.masker.mask_ratio"]) for r in second) == [0.5, 0.75, 0.9]
    best = max(second, key=lambda r: float(r["score"]))
    written = read(tmp_path / "study/best.yaml")
    assert written["model"]["masker"]["init_args"]["mask_ratio"] == float(best["model.masker.mask_ratio"])
    assert written["model"]["encoder"]["init_args"]["embed_dim"] == 48  # the rest of the config as it was
    assert (tmp_path / "study/trials.png").stat().st_size > 1000
    assert "(best)" in (tmp_path / "study/trials.md").read_text()
    out = capsys.readouterr().out
    assert f"best: trial {best['trial']}" in out and "anymae fit --config" in out
    encoder = tmp_path / f"study/trial-{int(best['trial']):03d}/checkpoints/last.ckpt"
    assert f"its encoder: {encoder}" in out and encoder.is_file()


def test_an_interrupted_trial_runs_again_when_the_study_resumes(tiny, tmp_path: Path, monkeypatch) -> None:
    config, space = tiny
    pretrain = Study.pretrain
    calls = []

    def interrupted(self, values, folder, rungs):
        calls.append(values)
        if len(calls) == 2:
            raise KeyboardInterrupt  # Ctrl-C during the second trial
        return pretrain(self, values, folder, rungs)

    monkeypatch.setattr(Study, "pretrain", interrupted)
    with pytest.raises(KeyboardInterrupt):
        tune(tmp_path, config, space, "--rungs", "0")
    monkeypatch.setattr(Study, "pretrain", pretrain)
    assert tune(tmp_path, config, space, "--rungs", "0", "--trials", "1") == 0
    found = rows(tmp_path)
    assert [(r["trial"], r["state"]) for r in found] == [("0", "complete"), ("1", "fail"), ("2", "complete")]
    assert found[2]["model.masker.mask_ratio"] == found[1]["model.masker.mask_ratio"]  # the interrupted recipe


def test_a_recipe_that_cannot_build_fails_alone(tiny, tmp_path: Path) -> None:
    config, _ = tiny
    two = read(config)
    two["trainer"].update(accelerator="cpu", devices=2)  # DDP when pretrained; a trial runs here, on one device
    config.write_text(yaml.safe_dump(two))
    space = tmp_path / "bad.yaml"  # a patch of 5 does not divide the 32-pixel image: that recipe fails to build
    space.write_text(yaml.safe_dump([{"key": "model.tokenizer.init_args.patch_size", "choices": [4, 5]}]))
    assert tune(tmp_path, config, space, "--rungs", "0") == 0
    found = {r["model.tokenizer.patch_size"]: r for r in rows(tmp_path)}
    assert found["4"]["state"] == "complete"
    assert found["5"]["state"] == "fail" and "patch" in found["5"]["note"].lower()


def test_a_recipe_over_the_trial_limit_is_stopped_and_not_run_again(tiny, tmp_path: Path, capsys) -> None:
    config, space = tiny
    assert tune(tmp_path, config, space, "--rungs", "0", "--trials", "2", "--trial-limit", "0.01s") == 0
    own, trial = rows(tmp_path)
    # the config's own recipe is the reference: the limit does not stop it, and it is the best so far
    assert own["state"] == "complete" and own["model.masker.mask_ratio"] == "0.75"
    assert trial["state"] == "pruned" and "over the trial limit" in trial["note"]
    assert read(tmp_path / "study/best.yaml")["model"]["masker"]["init_args"]["mask_ratio"] == 0.75
    assert "best: trial 0" in capsys.readouterr().out
    assert tune(tmp_path, config, space, "--rungs", "0", "--trials", "1") == 0
    assert [r["model.masker.mask_ratio"] for r in rows(tmp_path)][2] != trial["model.masker.mask_ratio"]


def test_the_budget_stops_even_the_configs_own_recipe(tiny, tmp_path: Path, capsys) -> None:
    config, space = tiny
    assert tune(tmp_path, config, space, "--rungs", "0", "--trials", "1", "--budget", "0.01s") == 0
    (own,) = rows(tmp_path)
    assert own["state"] == "pruned" and own["note"] == "budget"
    assert not (tmp_path / "study/best.yaml").exists()  # no recipe finished: nothing to recommend
    assert "best:" not in capsys.readouterr().out


def test_a_recipe_that_diverges_fails_alone_and_the_study_goes_on(tiny, tmp_path: Path, monkeypatch) -> None:
    from anymae import TrainingDiverged

    config, space = tiny
    pretrain = Study.pretrain

    def diverging(self, values, folder, rungs):
        if values["model.masker.init_args.mask_ratio"] == 0.75:  # the first trial: the NaN guard stops its run
            raise TrainingDiverged("training diverged at step 3 (epoch 0): non-finite gradients (loss nan)")
        return pretrain(self, values, folder, rungs)

    monkeypatch.setattr(Study, "pretrain", diverging)
    assert tune(tmp_path, config, space, "--rungs", "0", "--trials", "2") == 0
    first, second = rows(tmp_path)
    assert first["state"] == "fail" and "diverged" in first["note"]
    assert second["state"] == "complete" and float(second["score"]) > 0
    assert read(tmp_path / "study/best.yaml")["model"]["masker"]["init_args"]["mask_ratio"] != 0.75
    # a failed recipe is the recipe's fault, not an interruption: a resumed study does not run it again
    assert tune(tmp_path, config, space, "--rungs", "0", "--trials", "1") == 0
    assert rows(tmp_path)[2]["model.masker.mask_ratio"] not in (first["model.masker.mask_ratio"], "")
