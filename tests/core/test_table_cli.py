"""``anymae table``'s bookkeeping, with pretraining and the protocols replaced by fakes (a real run is
tests/timeseries/test_table.py): result rows name their set, each suite keeps its own table under one root,
``pretrain.json`` holds absolute paths, a checkpoint is reused while the parsed config is unchanged (older records
included), and every option has help."""

import csv
import hashlib
import json
from pathlib import Path

import pytest
import yaml

from anymae import ConfigError
from anymae.cli import table
from anymae.cli.evaluate import FIELDS

PRETRAIN = "# a tiny run\ntrainer: {max_epochs: 1}\nmodel: {mask_ratio: 0.75}\n"


@pytest.fixture
def fakes(tmp_path, monkeypatch):
    """``pretrain`` leaves a checkpoint under the set's root (a relative one, as Lightning reports it for a relative
    ``--root``); ``protocol_rows`` returns one row per run. Both record their calls."""
    monkeypatch.chdir(tmp_path)
    calls: dict[str, list] = {"pretrain": [], "protocol": []}

    def pretrain(config, root):
        calls["pretrain"].append(config)
        checkpoint = root / f"run{len(calls['pretrain'])}.ckpt"
        checkpoint.parent.mkdir(parents=True, exist_ok=True)
        checkpoint.write_bytes(b"weights")
        return checkpoint

    def protocol_rows(command, args):
        calls["protocol"].append((command, args))
        value = lambda flag: args[args.index(flag) + 1] if flag in args else None  # noqa: E731
        random = value("--model.encoder.random_init") == "true"
        row = {
            "protocol": command,
            "data": "toy",
            "labels_per_class": int(value("--data.labels_per_class") or 0) or "all",
            "seed": int(value("--seed_everything")),
            "init": "random" if random else "pretrained",
            "checkpoint": value("--model.encoder.checkpoint"),
            "metric": "val/acc",
            "value": 0.25 if random else 0.75,
            "time": "2025-01-01T00:00:00",
        }
        assert set(row) == set(FIELDS)
        return [row]

    monkeypatch.setattr(table, "pretrain", pretrain)
    monkeypatch.setattr(table, "protocol_rows", protocol_rows)
    return calls


def write_suite(path: Path, names: list[str]) -> Path:
    for name in names:
        (path.parent / f"{name}.yaml").write_text(PRETRAIN)
    suite = [{"name": n, "pretrain": f"{n}.yaml", "protocols": {"knn": "knn.yaml"}} for n in names]
    path.write_text(yaml.safe_dump(suite))
    return path


def test_rows_name_their_set_and_each_suite_keeps_its_own_table(tmp_path, fakes, capsys):
    write_suite(tmp_path / "first.yaml", ["digits", "gunpoint"])
    write_suite(tmp_path / "second.yaml", ["shapes"])
    common = ["--labels", "2", "--seeds", "0", "1", "--root", "runs", "--results", "runs/rows.csv"]
    assert table.run(["--suite", "first.yaml", *common]) == 0
    assert table.run(["--suite", "second.yaml", *common]) == 0
    rows = list(csv.DictReader((tmp_path / "runs" / "rows.csv").open()))
    assert list(rows[0]) == ["set", *FIELDS]
    per_set = {name: sum(r["set"] == name for r in rows) for name in ("digits", "gunpoint", "shapes")}
    assert per_set == {"digits": 4, "gunpoint": 4, "shapes": 4}  # 2 seeds x 2 inits each
    first = (tmp_path / "runs" / "table-first.md").read_text()
    second = (tmp_path / "runs" / "table-second.md").read_text()
    assert "| digits | knn | 2 | val/acc | 0.750 ± 0.000 (n=2) | 0.250 ± 0.000 (n=2) |" in first
    assert "| gunpoint | knn |" in first and "shapes" not in first
    assert "| shapes | knn | 2 |" in second and "digits" not in second
    assert (tmp_path / "runs" / "table.md").read_text() == second  # the latest suite's
    assert table.format_table(rows) == table.format_table(rows[::-1])  # rows read back from the CSV make a table


def test_pretrain_json_records_absolute_paths(tmp_path, fakes):
    write_suite(tmp_path / "suite.yaml", ["digits"])
    assert table.run(["--suite", "suite.yaml", "--labels", "1", "--seeds", "0", "--root", "runs"]) == 0
    record = json.loads((tmp_path / "runs" / "digits" / "pretrain.json").read_text())
    assert record["config"] == str(tmp_path.resolve() / "digits.yaml")
    assert record["checkpoint"] == str(tmp_path.resolve() / "runs" / "digits" / "run1.ckpt")
    assert Path(record["checkpoint"]).is_absolute() and Path(record["config"]).is_absolute()
    ckpt_args = [args[args.index("--model.encoder.checkpoint") + 1] for _, args in fakes["protocol"]]
    assert set(ckpt_args) == {record["checkpoint"]}  # the protocols read the same absolute path


def test_a_comment_or_key_order_keeps_the_checkpoint_a_value_does_not(tmp_path, fakes):
    config, root = tmp_path / "pretrain.yaml", tmp_path / "runs" / "digits"
    config.write_text(PRETRAIN)
    first, reused = table.pretrained(str(config), root)
    assert not reused and len(fakes["pretrain"]) == 1
    config.write_text("model:\n  mask_ratio: 0.75   # MAE's\n\n# shorter\ntrainer:\n  max_epochs: 1\n")
    assert table.pretrained(str(config), root) == (first, True) and len(fakes["pretrain"]) == 1
    config.write_text(PRETRAIN.replace("0.75", "0.9"))
    second, reused = table.pretrained(str(config), root)
    assert not reused and second != first and len(fakes["pretrain"]) == 2


def test_the_digest_is_of_the_parsed_config(tmp_path):
    a, b, c = tmp_path / "a.yaml", tmp_path / "b.yaml", tmp_path / "c.yaml"
    a.write_text("x: 1\ny: [a, b]\n")
    b.write_text("# the same\ny:\n  - 'a'\n  - \"b\"\nx: 1  # one\n")
    c.write_text("x: 2\ny: [a, b]\n")
    assert table.config_digest(a) == table.config_digest(b) != table.config_digest(c)


def test_an_older_record_of_the_files_bytes_is_still_read(tmp_path, fakes):
    config, root = tmp_path / "pretrain.yaml", tmp_path / "runs" / "digits"
    config.write_text(PRETRAIN)
    old = root / "lightning_logs" / "old.ckpt"
    old.parent.mkdir(parents=True)
    old.write_bytes(b"weights")
    sha = hashlib.sha256(config.read_bytes()).hexdigest()
    (root / "pretrain.json").write_text(
        json.dumps({"config": "pretrain.yaml", "config_sha256": sha, "checkpoint": str(old)})
    )
    assert table.pretrained(str(config), root) == (old, True) and not fakes["pretrain"]  # the same bytes: reused
    config.write_text(PRETRAIN + "# a comment the old record cannot tell from a change\n")
    checkpoint, reused = table.pretrained(str(config), root)
    assert not reused and len(fakes["pretrain"]) == 1
    record = json.loads((root / "pretrain.json").read_text())
    assert "config_sha256" not in record and record["checkpoint"] == str(checkpoint)
    assert table.pretrained(str(config), root) == (checkpoint, True)  # the new record is read from now on


def test_a_results_file_with_other_columns_is_refused_before_anything_runs(tmp_path, fakes):
    write_suite(tmp_path / "suite.yaml", ["digits"])
    old = tmp_path / "old.csv"
    old.write_text(",".join(FIELDS) + "\n")  # an older anymae table's, or anymae knn's
    with pytest.raises(ConfigError, match=r"--results .*old\.csv: its columns are protocol,data"):
        table.run(["--suite", "suite.yaml", "--results", "old.csv"])
    assert not fakes["pretrain"] and not fakes["protocol"]


def test_every_option_has_help(capsys):
    parser = table.build_parser()
    options = [action for action in parser._actions if action.option_strings]
    assert {"--suite", "--seeds", "--labels", "--root", "--results", "--retrain", "--checkpoint"} <= {
        name for action in options for name in action.option_strings
    }
    assert all(action.help for action in options), [a.option_strings for a in options if not a.help]
    with pytest.raises(SystemExit):
        table.run(["--help"])
    assert "set column naming the suite entry" in " ".join(capsys.readouterr().out.split())
