"""Plugin loading: in-process plugins, isolation of broken ones, duplicates, blocking, strict mode."""

import importlib.metadata
import re
import types

import pytest

import anymae
from anymae.cli import main
from anymae.plugins import loader as plugin_loading

from .toys import PointTokenizer, SeriesTokenizer


def plugin(name: str, register) -> types.ModuleType:
    module = types.ModuleType(name)
    module.anymae_register = anymae.hookimpl(register)
    return module


def registers(*classes):
    def anymae_register(registry):
        for cls in classes:
            registry.add(cls)

    return anymae_register


@pytest.fixture
def no_installed_plugins(monkeypatch):
    monkeypatch.setattr(plugin_loading.importlib.metadata, "entry_points", lambda group: [])


def test_builtins_are_registered_under_the_core():
    loaded = anymae.load_plugins(autoload=False)
    masker = loaded.registry.get("RandomMasker")
    assert masker.owner == "anymae" and masker.kind == "masker" and masker.cls is anymae.RandomMasker
    assert {c.name for c in loaded.registry.of_kind("encoder")} == {"ViTEncoder", "MultiModalEncoder"}


def test_in_process_plugin_registers_classes():
    loaded = anymae.load_plugins(autoload=False, extra=[("toys", plugin("toys", registers(SeriesTokenizer)))])
    component = loaded.registry.get("SeriesTokenizer")
    assert component.owner == "toys" and component.kind == "tokenizer"


def test_duplicate_names_fail_naming_both_plugins():
    class SeriesTokenizer(anymae.Tokenizer):  # same short name, another class
        def forward(self, batch): ...

    first, second = plugin("first", registers(PointTokenizer)), plugin("second", registers(PointTokenizer))
    loaded = anymae.load_plugins(autoload=False, extra=[("first", first), ("second", second)])
    assert not loaded.failed  # the same class twice is not a conflict
    clash = [
        ("a", plugin("a", registers(globals()["SeriesTokenizer"]))),
        ("b", plugin("b", registers(SeriesTokenizer))),
    ]
    with pytest.raises(anymae.DuplicateComponentError, match=r"by a \(tests\.core\.toys.*and by b"):
        anymae.load_plugins(autoload=False, strict=True, extra=clash)
    with pytest.warns(RuntimeWarning, match="registered twice"):
        loaded = anymae.load_plugins(autoload=False, strict=False, extra=clash)
    assert [p.name for p in loaded.failed] == ["b"]
    assert loaded.registry.get("SeriesTokenizer").owner == "a"


def test_a_plugin_that_fails_to_register_does_not_stop_the_others():
    def broken(registry):
        registry.add(PointTokenizer)
        raise RuntimeError("boom")

    extra = [("broken", plugin("broken", broken)), ("good", plugin("good", registers(SeriesTokenizer)))]
    with pytest.warns(RuntimeWarning, match="broken was skipped"):
        loaded = anymae.load_plugins(autoload=False, strict=False, extra=extra)
    assert "SeriesTokenizer" in loaded.registry
    assert "PointTokenizer" not in loaded.registry  # nothing half-registered
    assert "boom" in loaded.failed[0].error
    with pytest.raises(anymae.PluginError, match="broken failed to register"):
        anymae.load_plugins(autoload=False, strict=True, extra=extra)


def test_registering_a_wrong_class_is_an_error():
    with pytest.raises(TypeError, match="not a component class"):
        anymae.Registry("x").add(dict)


def fake_entry_points(monkeypatch, *specs):
    points = [importlib.metadata.EntryPoint(name, value, "anymae") for name, value in specs]
    monkeypatch.setattr(plugin_loading.importlib.metadata, "entry_points", lambda group: points)


def test_entry_point_import_errors_are_isolated_and_blocking_works(monkeypatch):
    fake_entry_points(monkeypatch, ("anymae-missing", "no_such_module_xyz"), ("anymae-toys", "tests.core.toy_plugin"))
    with pytest.warns(RuntimeWarning, match="anymae-missing was skipped"):
        loaded = anymae.load_plugins(strict=False)
    assert "SeriesTokenizer" in loaded.registry
    assert "No module named 'no_such_module_xyz'" in loaded.failed[0].error
    monkeypatch.setenv("ANYMAE_DISABLE_PLUGINS", "anymae-missing, anymae-toys")
    loaded = anymae.load_plugins(strict=True)
    assert "SeriesTokenizer" not in loaded.registry
    assert all(p.disabled for p in loaded.plugins)


def test_plugins_command_lists_plugins_and_components(monkeypatch, capsys):
    """Non-strict, a broken plugin is named and the others listed; strict, the command fails."""
    fake_entry_points(monkeypatch, ("anymae-toys", "tests.core.toy_plugin"), ("anymae-missing", "no_such_module_xyz"))
    monkeypatch.setattr(plugin_loading, "_loaded", None)
    monkeypatch.delenv("ANYMAE_STRICT_PLUGINS", raising=False)
    assert main(["plugins", "--verbose"]) == 1  # a broken plugin makes the listing fail, after listing
    out = capsys.readouterr().out
    assert "anymae-toys" in out and "tokenizer: SeriesTokenizer" in out
    assert "SeriesTokenizer(patch=4, channels=2, length=32)" in out
    assert "anymae-missing: BROKEN" in out
    assert "masker: RandomMasker" in out
    monkeypatch.setattr(plugin_loading, "_loaded", None)
    monkeypatch.setenv("ANYMAE_STRICT_PLUGINS", "1")
    assert main(["plugins"]) == 2
    assert "error: plugin anymae-missing failed to import" in capsys.readouterr().err


def test_plugins_command_without_plugins(no_installed_plugins, monkeypatch, capsys):
    monkeypatch.setattr(plugin_loading, "_loaded", None)
    assert main(["plugins"]) == 0
    assert "No plugins installed" in capsys.readouterr().out


def test_a_misspelt_hook_fails_only_its_plugin():
    typo = types.ModuleType("typo")
    typo.anymae_regster = anymae.hookimpl(registers(PointTokenizer))
    extra = [("typo", typo), ("good", plugin("good", registers(SeriesTokenizer)))]
    with pytest.warns(RuntimeWarning, match="typo was skipped"):
        loaded = anymae.load_plugins(autoload=False, strict=False, extra=extra)
    assert "SeriesTokenizer" in loaded.registry and "unknown hook" in loaded.failed[0].error


def test_plugin_api_version_is_checked(monkeypatch):
    fake_entry_points(monkeypatch, ("anymae-toys", "tests.core.toy_plugin"))
    assert anymae.load_plugins(strict=True).plugins[0].api == anymae.PLUGIN_API_VERSION
    monkeypatch.setattr("tests.core.toy_plugin.ANYMAE_PLUGIN_API", anymae.PLUGIN_API_VERSION + 1)
    newer = f"built for plugin API {anymae.PLUGIN_API_VERSION + 1}, but this anymae provides"
    with pytest.raises(anymae.IncompatiblePluginError, match=newer):
        anymae.load_plugins(strict=True)
    monkeypatch.setattr("tests.core.toy_plugin.ANYMAE_PLUGIN_API", 2)
    with pytest.raises(anymae.IncompatiblePluginError) as raised:  # an API-2 plugin is told what changed in 3
        anymae.load_plugins(strict=True)
    assert "what changed since API 2: every part builds once from a BuildContext" in str(raised.value)
    monkeypatch.setattr("tests.core.toy_plugin.ANYMAE_PLUGIN_API", 1)
    with pytest.raises(anymae.IncompatiblePluginError) as raised:  # an old plugin is told what changed
        anymae.load_plugins(strict=True)
    assert "built for plugin API 1" in str(raised.value)
    assert "what changed since API 1: tokenizers take forward(batch, extras), implement example_batch()" in str(
        raised.value
    )
    monkeypatch.delattr("tests.core.toy_plugin.ANYMAE_PLUGIN_API")
    with pytest.warns(RuntimeWarning, match="does not declare the plugin API"):
        loaded = anymae.load_plugins(strict=False)
    assert "SeriesTokenizer" not in loaded.registry


def test_help_lists_every_command_with_a_line_and_a_plugins_command_runs(no_installed_plugins, monkeypatch, capsys):
    ran = []

    def register(registry):
        registry.add_command("hello", lambda argv: ran.append(argv) or 0, help="say hello from a plugin")

    loaded = anymae.load_plugins(autoload=False, extra=[("hello-plugin", plugin("hello-plugin", register))])
    monkeypatch.setattr(plugin_loading, "_loaded", loaded)
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in (
        "fit",
        "validate",
        "test",
        "predict",
        "plugins",
        "masks",
        "knn",
        "probe",
        "finetune",
        "retrieval",
        "export",
        "table",
    ):
        assert f"\n  {name} " in out, name
    assert re.search(r"\n  hello +say hello from a plugin \(hello-plugin\)", out), out
    assert main(["hello", "--loud"]) == 0 and ran == [["--loud"]]
    assert main(["nope"]) == 2
    assert "anymae: error: unknown command 'nope'; commands: fit, validate" in capsys.readouterr().err


def test_masks_help_names_the_registered_maskers(no_installed_plugins, monkeypatch, capsys):
    monkeypatch.setattr(plugin_loading, "_loaded", None)
    with pytest.raises(SystemExit):
        main(["masks", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "a registered masker (AdaptiveMasker, AttentionMasker, BlockMasker, DualMasker," in help_text


def test_a_command_name_cannot_be_taken_twice():
    def takes_fit(registry):
        registry.add_command("fit", lambda argv: 0, help="")

    taker = [("taker", plugin("taker", takes_fit))]
    with pytest.raises(
        anymae.DuplicateComponentError, match="command 'fit' is registered twice: by anymae and by taker"
    ):
        anymae.load_plugins(autoload=False, strict=True, extra=taker)
    registry = anymae.Registry("x")
    registry.add_command("once", lambda argv: 0, help="")
    with pytest.raises(anymae.DuplicateComponentError, match="command 'once' is registered twice: by x and by x"):
        registry.add_command("once", lambda argv: 0, help="")
    with pytest.raises(ValueError, match="plain identifier"):
        registry.add_command("two words", lambda argv: 0, help="")


def test_commands_are_listed_without_registering_components():
    """`anymae_commands` runs alone (what `anymae --help` reads); `anymae_register` waits for the first use of the
    registry. A command added in `anymae_register` (the older way) still runs once components are loaded."""
    calls = []
    module = types.ModuleType("lazy")
    module.anymae_commands = anymae.hookimpl(lambda registry: registry.add_command("hi", lambda argv: 0, help="hi"))

    def register(registry):
        calls.append("register")
        registry.add(SeriesTokenizer)
        registry.add_command("old_style", lambda argv: 0, help="added with the components")

    module.anymae_register = anymae.hookimpl(register)
    loaded = anymae.load_plugins(autoload=False, extra=[("lazy", module)], components=False)
    assert "hi" in loaded.commands and "fit" in loaded.commands and "old_style" not in loaded.commands
    assert calls == []
    assert loaded.registry.get("SeriesTokenizer").owner == "lazy" and calls == ["register"]
    assert {"hi", "old_style"} <= set(loaded.commands)

    wrong = types.ModuleType("wrong")
    wrong.anymae_commands = anymae.hookimpl(lambda registry: registry.add(PointTokenizer))
    with pytest.raises(anymae.PluginError, match="anymae_commands registered components"):
        anymae.load_plugins(autoload=False, strict=True, extra=[("wrong", wrong)], components=False).commands  # noqa: B018


def test_help_imports_neither_torch_nor_lightning():
    """`anymae --help` with every installed plugin: the command table is read from light modules only (lazy package
    exports, components imported inside `anymae_register`)."""
    import subprocess
    import sys

    code = (
        "import sys\nfrom anymae.cli import main\nassert main(['--help']) == 0\n"
        "heavy = sorted(m for m in ('torch', 'lightning', 'open3d', 'av', 'torchaudio', 'aeon') if m in sys.modules)\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "fbank_stats" in out  # a plugin's command is listed
    assert "HEAVY []" in out, out


def test_lazy_exports_import_on_first_use():
    import anymae_image

    assert "DigitsDataModule" in dir(anymae_image)
    from anymae_image import DigitsDataModule
    from anymae_image.data import DigitsDataModule as defined

    assert DigitsDataModule is defined and vars(anymae_image)["DigitsDataModule"] is defined  # kept once imported
    with pytest.raises(AttributeError, match="has no attribute 'Nope'"):
        anymae_image.Nope  # noqa: B018


DUPLICATE = """
from tests.core import toys


class SeriesTokenizer(toys.SeriesTokenizer):  # the short name of tests.core.toys.SeriesTokenizer, on another class
    pass
"""


def test_the_jsonargparse_shim_holds(tmp_path, monkeypatch):
    """anymae.plugins.resolution leans on two internals of jsonargparse 4.53 (pinned in pyproject.toml): short names
    go through `_typehints.resolve_class_path_by_name`, and `set_parsing_settings` keeps the import-path verdicts in
    `_common.parsing_settings`. If either moves, this fails here, not in a user's config: a rejected duplicate would
    make a short name ambiguous, or one command's refusals would outlive it."""
    import argparse

    import jsonargparse
    from jsonargparse import _common

    from anymae.cli import format_cli_error
    from anymae.plugins.resolution import resolving

    (tmp_path / "dupe_pkg").mkdir()
    (tmp_path / "dupe_pkg" / "__init__.py").write_text(DUPLICATE)
    monkeypatch.syspath_prepend(tmp_path)
    dupe = importlib.import_module("dupe_pkg")
    clash = [("a", plugin("a", registers(SeriesTokenizer))), ("b", plugin("b", registers(dupe.SeriesTokenizer)))]
    with pytest.warns(RuntimeWarning, match="registered twice"):
        loaded = anymae.load_plugins(autoload=False, strict=False, extra=clash)
    parser = jsonargparse.ArgumentParser(exit_on_error=False)
    parser.add_argument("--tokenizer", type=anymae.Tokenizer)
    with pytest.raises(argparse.ArgumentError, match="Multiple subclasses with name SeriesTokenizer"):  # the need
        parser.parse_args(["--tokenizer", "SeriesTokenizer"])
    before = dict(_common.parsing_settings)
    monkeypatch.setenv("ANYMAE_ALLOWED_MODULES", "tests")
    with resolving(loaded):
        parsed = parser.parse_args(["--tokenizer", "SeriesTokenizer"])
        assert parsed.tokenizer.class_path == "tests.core.toys.SeriesTokenizer"  # the registry's, first registered
        with pytest.raises(argparse.ArgumentError) as refused:
            parser.parse_args(["--tokenizer", "dupe_pkg.SeriesTokenizer"])
        assert format_cli_error(refused.value, loaded) == (
            "tokenizer: dupe_pkg.SeriesTokenizer belongs to the plugin b, which is BROKEN (failed to register: "
            "DuplicateComponentError: component name 'SeriesTokenizer' is registered twice: by a "
            "(tests.core.toys.SeriesTokenizer) and by b (dupe_pkg.SeriesTokenizer); rename one class)"
        )
        with pytest.raises(argparse.ArgumentError) as refused:
            parser.parse_args(["--tokenizer", "collections.OrderedDict"])
        outside = format_cli_error(refused.value, loaded)
        assert outside.startswith("tokenizer: collections.OrderedDict is outside ANYMAE_ALLOWED_MODULES (anymae, ")
    assert _common.parsing_settings == before  # restored: nothing leaks into the next command (or test)
    with pytest.raises(argparse.ArgumentError, match="does not correspond to a subclass"):  # no longer refused
        parser.parse_args(["--tokenizer", "collections.OrderedDict"])
    assert parser.parse_args(["--tokenizer", "dupe_pkg.SeriesTokenizer"]).tokenizer.class_path.startswith("dupe_pkg")
