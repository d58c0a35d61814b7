"""A null given on the command line to a component inside a component (FewLabels' data module) reaches it as null:
jsonargparse alone hands it over as the text "None"."""

from pathlib import Path
from typing import Optional

import pytest
from jsonargparse import ActionConfigFile, ArgumentParser

from anymae.cli import main
from anymae.cli.parser import nested_nulls

ROOT = Path(__file__).resolve().parents[2]


class Inner:
    def __init__(self, path: Optional[str] = "x") -> None:  # noqa: UP045 (jsonargparse reads the annotation)
        self.path = path


class Outer:
    def __init__(self, data: Inner) -> None:
        self.data = data


def test_nulls_two_levels_deep_become_config_strings_in_place():
    args = ["--a.b.c", "null", "--x", "1", "--a.b.d=~", "--a.e", "null", "--a.b.f", "value"]
    assert nested_nulls(args) == [
        "--config",
        '{"a": {"b": {"c": null}}}',
        "--x",
        "1",
        "--config",
        '{"a": {"b": {"d": null}}}',
        "--a.e",  # one level deep: jsonargparse keeps it null itself
        "null",
        "--a.b.f",
        "value",
    ]


def test_jsonargparse_still_turns_a_nested_null_into_text():
    """Why nested_nulls exists: when this fails, jsonargparse keeps nested nulls and the rewrite can go."""
    parser = ArgumentParser(exit_on_error=False)
    parser.add_argument("--config", action=ActionConfigFile)  # as LightningCLI's parsers have
    parser.add_argument("--data", type=Outer)
    args = ["--data", f"{__name__}.Outer", "--data.data", f"{__name__}.Inner", "--data.data.path", "null"]
    assert parser.parse_args(args).data.init_args.data.init_args.path == "None"
    fixed = parser.parse_args(nested_nulls(args))
    assert fixed.data.init_args.data.init_args.path is None


def test_an_evaluation_reads_a_nested_null_as_null(capsys):
    config = str(ROOT / "examples/transfer/knn_textures.yaml")
    with pytest.raises(SystemExit):  # --print_config prints, then exits
        main(["knn", "--config", config, "--data.data.init_args.val_root", "null", "--print_config"])
    printed = capsys.readouterr().out
    assert "val_root: null" in printed and "val_root: None" not in printed
