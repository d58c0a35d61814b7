"""``anymae table`` end to end on GunPoint (pretrain, score pretrained vs random init, time it), and its reuse of a
set's checkpoint while the pretraining config is unchanged."""

from pathlib import Path

import yaml

from anymae.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_table_pretrains_scores_and_times_a_set(tmp_path, monkeypatch, capsys):
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


def test_a_checkpoint_is_reused_until_its_config_changes(tmp_path, monkeypatch):
    from anymae.cli import table

    made = []

    def fake_pretrain(config, root):  # what anymae fit would leave: a checkpoint under root
        made.append(config)
        checkpoint = root / f"run{len(made)}.ckpt"
        checkpoint.parent.mkdir(parents=True, exist_ok=True)
        checkpoint.write_bytes(b"weights")
        return checkpoint

    monkeypatch.setattr(table, "pretrain", fake_pretrain)
    config = tmp_path / "pretrain.yaml"
    config.write_text("trainer: {max_epochs: 1}\n")
    root = tmp_path / "runs" / "gunpoint"
    first, reused = table.pretrained(str(config), root)
    assert not reused and len(made) == 1
    assert table.pretrained(str(config), root) == (first, True) and len(made) == 1  # unchanged: reused
    assert table.pretrained(str(config), root, retrain=True)[1] is False and len(made) == 2  # --retrain
    config.write_text("trainer: {max_epochs: 2}\n")  # changed: pretrained again
    second, reused = table.pretrained(str(config), root)
    assert not reused and len(made) == 3 and second != first
    second.unlink()  # the recorded checkpoint is gone: pretrained again
    assert table.pretrained(str(config), root)[1] is False and len(made) == 4
