"""``anymae table`` end to end on GunPoint: pretrain, score pretrained vs random init, reuse the checkpoint while the
pretraining config is unchanged, pretrain again when it changes."""

from pathlib import Path

import yaml

from anymae.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_table_reuses_a_checkpoint_until_its_config_changes(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    config = yaml.safe_load((ROOT / "examples" / "timeseries" / "patch_mae_ucr.yaml").read_text())
    config["trainer"].update({"max_epochs": 1, "callbacks": [], "limit_train_batches": 2, "limit_val_batches": 1})
    (tmp_path / "pretrain.yaml").write_text(yaml.safe_dump(config))
    suite = [
        {
            "name": "gunpoint",
            "pretrain": "pretrain.yaml",
            "protocols": {"knn": str(ROOT / "examples" / "timeseries" / "knn_ucr.yaml")},
        }
    ]
    (tmp_path / "suite.yaml").write_text(yaml.safe_dump(suite))
    args = ["table", "--suite", "suite.yaml", "--labels", "2", "--seeds", "0", "--root", "runs"]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert "gunpoint: encoder" in first and "pretrained in" in first
    assert "| gunpoint | knn | 2 | val/acc |" in first and "* gunpoint: pretraining" in first
    rows = (tmp_path / "anymae-table" / "results.csv").read_text().splitlines()
    assert len(rows) == 3 and ",GunPoint," in rows[1]  # a header, pretrained and random init; the set's own name

    assert main(args) == 0
    assert "reused (config unchanged)" in capsys.readouterr().out
    config["trainer"]["limit_train_batches"] = 3
    (tmp_path / "pretrain.yaml").write_text(yaml.safe_dump(config))
    assert main(args) == 0
    assert "pretrained in" in capsys.readouterr().out
    assert len(list((tmp_path / "runs" / "gunpoint" / "lightning_logs").iterdir())) == 2
