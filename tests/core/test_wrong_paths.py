"""Every wrong path of a plugin or a config ends the real ``anymae`` command with exit 2 and one error line naming
the part: a tokenizer or target that emits another width than it declares, a BROKEN plugin's components, a
component name a plugin tried to take twice, a plugin that is not installed, a class path into a missing module.

The plugins are installed for real, as distributions with ``anymae`` entry points in a folder on PYTHONPATH (what
pip writes, minus the build), so discovery goes through ``importlib.metadata`` as for any user. The cases run through
the command's entry point in one process (``cli_batch.py``); the console script itself runs for the disabled-plugin
and allow-list cases.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ANYMAE = Path(sys.executable).with_name("anymae")

WIDTHS = '''
import torch
import anymae
from anymae import GridLayout, LayoutSpec, TokenBatch


class WideTokenizer(anymae.Tokenizer):
    """Declares 4 values per token, emits 5."""

    @anymae.validated
    def __init__(self, length: int = 16) -> None:
        super().__init__()
        self.length, self.token_dim, self.channels = length, 4, 1
        self.layout = LayoutSpec("grid", 1, (length // 4,))

    def example_batch(self, batch_size=2):
        return {"series": torch.randn(batch_size, 2, self.length, generator=torch.Generator().manual_seed(0))}

    def forward(self, batch, needs=frozenset()):
        x = batch["series"][:, 0]
        patches = x.unflatten(1, (-1, 4))
        return TokenBatch(torch.cat([patches, patches[..., :1]], dim=-1), GridLayout((x.shape[1] // 4,)))


class ScalarTarget(anymae.Target):
    """Declares dim_per_token = token_dim, computes one value per token (which would broadcast silently)."""

    needs = frozenset({anymae.RAW_VALUES})

    @anymae.validated
    def __init__(self) -> None:
        super().__init__()

    def build(self, ctx):
        tokens = ctx.tokens
        self.dim_per_token = tokens.token_dim

    def forward(self, batch, tokens, mask):
        return anymae.gather_tokens(tokens.tokens, mask.ids_decode).mean(-1, keepdim=True)
'''

PLUGINS = {
    "anymae-widths": {
        "parts.py": WIDTHS,
        "plugin.py": "registry.add(WideTokenizer, ScalarTarget)",
    },
    "anymae-broken": {  # imports fine, fails while registering
        "parts.py": "import anymae\n\n\nclass BrokenTarget(anymae.PatchTarget):\n    pass\n",
        "plugin.py": "registry.add(BrokenTarget)\n    raise RuntimeError('boom')",
    },
    "anymae-noimport": {  # its entry module needs a library that is not installed
        "parts.py": "import libfoo_that_is_not_installed  # noqa\n",
        "plugin.py": "pass",
    },
    "anymae-dupe": {  # takes the core's short name PatchTarget with a class of its own
        "parts.py": "import anymae\n\n\nclass PatchTarget(anymae.PatchTarget):\n    pass\n",
        "plugin.py": "registry.add(PatchTarget)",
    },
}

CONFIG = {
    "seed_everything": 0,
    "trainer": {
        "max_epochs": 1,
        "accelerator": "cpu",
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "logger": False,
        "enable_checkpointing": False,
    },
    "model": {
        "tokenizer": {"class_path": "tests.core.toys.SeriesTokenizer"},
        "masker": {"class_path": "RandomMasker", "init_args": {"mask_ratio": 0.5}},
        "encoder": {"class_path": "ViTEncoder", "init_args": {"embed_dim": 16, "depth": 1, "num_heads": 2}},
        "decoder": {"class_path": "MAEDecoder", "init_args": {"embed_dim": 8, "depth": 1, "num_heads": 2}},
        "target": {"class_path": "PatchTarget"},
        "lr_schedule": {"warmup_epochs": 1},
    },
    "data": {"class_path": "tests.core.toys.SeriesData", "init_args": {"n": 64}},
}


def pythonpath(site: Path) -> str:
    """The installed plugins, this checkout, then the caller's path: the command runs the anymae under test."""
    return os.pathsep.join([str(site), str(ROOT), os.environ.get("PYTHONPATH", "")])


def install(site: Path, name: str, files: dict[str, str]) -> None:
    """A distribution as pip leaves it: the package, and a dist-info with metadata, entry points and top level."""
    package = name.replace("-", "_")
    (site / package).mkdir(parents=True)
    (site / package / "__init__.py").write_text("")
    (site / package / "parts.py").write_text(files["parts.py"])
    hook = files["plugin.py"]
    (site / package / "plugin.py").write_text(
        f"import anymae\n\nfrom .parts import *  # noqa\n\nANYMAE_PLUGIN_API = 3\n\n\n"
        f"@anymae.hookimpl\ndef anymae_register(registry):\n    {hook}\n"
    )
    info = site / f"{package}-0.0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.0.1\n")
    (info / "entry_points.txt").write_text(f"[anymae]\n{name} = {package}.plugin\n")
    (info / "top_level.txt").write_text(f"{package}\n")
    (info / "RECORD").write_text("".join(f"{package}/{f},,\n" for f in ("__init__.py", "parts.py", "plugin.py")))


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    site = tmp_path_factory.mktemp("site")
    for name, files in PLUGINS.items():
        install(site, name, files)
    return site


def anymae(site: Path, tmp_path: Path, *args: str, disable: str = "") -> subprocess.CompletedProcess:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    env = {
        **os.environ,
        "PYTHONPATH": pythonpath(site),
        "ANYMAE_STRICT_PLUGINS": "0",  # broken plugins are reported, the others work
        "ANYMAE_DISABLE_PLUGINS": disable,
    }
    command = [str(ANYMAE), "fit", "--config", str(config), "--trainer.default_root_dir", str(tmp_path), *args]
    return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)


def one_error(result: subprocess.CompletedProcess | dict) -> str:
    """The run failed with exit 2 and exactly one error line, no traceback; return that line."""
    if isinstance(result, dict):
        result = subprocess.CompletedProcess([], result["returncode"], result["stdout"], result["stderr"])
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("anymae: error: ")]
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    return errors[0].removeprefix("anymae: error: ")


WRONG_PATHS = {  # case: (override, the error line's content)
    "token-width": (
        ["--model.tokenizer", "WideTokenizer"],
        "model.tokenizer: WideTokenizer emits tokens of shape (2, 4, 5) but declares token_dim=4",
    ),
    "target-width": (
        ["--model.target", "anymae_widths.parts.ScalarTarget"],
        "model.target: ScalarTarget computes 1 value per token but declares dim_per_token=8",
    ),
    "broken": (
        ["--model.target", "anymae_broken.parts.BrokenTarget"],
        "model.target: anymae_broken.parts.BrokenTarget belongs to the plugin anymae-broken, which is BROKEN "
        "(failed to register: RuntimeError: boom)",
    ),
    "broken-short-name": (  # the class was imported, but the registry never took it
        ["--model.target", "BrokenTarget"],
        "model.target: anymae_broken.parts.BrokenTarget belongs to the plugin anymae-broken, which is BROKEN",
    ),
    "broken-import": (  # refused before its module is imported again
        ["--model.target", "anymae_noimport.parts.Target"],
        "model.target: anymae_noimport.parts.Target belongs to the plugin anymae-noimport, which is BROKEN "
        "(failed to import: ModuleNotFoundError: No module named 'libfoo_that_is_not_installed')",
    ),
    "duplicate": (
        ["--model.target", "anymae_dupe.parts.PatchTarget"],
        "model.target: anymae_dupe.parts.PatchTarget belongs to the plugin anymae-dupe, which is BROKEN "
        "(failed to register: DuplicateComponentError: component name 'PatchTarget' is registered twice: by anymae",
    ),
    "not-installed": (
        ["--data", "anymae_tabular.SklearnTabularDataModule"],
        "data: anymae_tabular.SklearnTabularDataModule: no module named 'anymae_tabular'; it comes from the "
        "plugin anymae-tabular: pip install anymae-tabular",
    ),
    "missing-module": (
        ["--model.masker", "foo_missing.sub.Thing"],
        "model.masker: foo_missing.sub.Thing: no module named 'foo_missing'; install the package that provides it",
    ),
}


@pytest.fixture(scope="module")
def batch(site, tmp_path_factory) -> dict[str, dict]:
    """Every wrong path, and the duplicate's harmlessness (a run with the core's PatchTarget), in one process."""
    root = tmp_path_factory.mktemp("runs")
    config = root / "config.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    base = ["fit", "--config", str(config), "--trainer.default_root_dir", str(root)]
    cases = {name: [*base, *override] for name, (override, _) in WRONG_PATHS.items()}
    cases["no-shadow"] = [*base, "--trainer.fast_dev_run", "true"]
    cases["listing"] = ["plugins"]
    return run_batch(cases, root, site)


def run_batch(cases: dict[str, list[str]], root: Path, site: Path) -> dict:
    """Each case (an argument list) through the command's entry point in one process (``cli_batch.py``) in ``root``,
    the plugins of ``site`` installed, failures reported not raised: its exit status and output, by name."""
    (root / "cases.json").write_text(json.dumps(list(cases.values())))
    env = {**os.environ, "PYTHONPATH": pythonpath(site), "ANYMAE_STRICT_PLUGINS": "0"}
    driver = [sys.executable, str(ROOT / "tests" / "core" / "cli_batch.py"), "cases.json", "results.json"]
    subprocess.run(driver, cwd=root, env=env, check=True, timeout=600)
    results = json.loads((root / "results.json").read_text())
    return {"root": root, **dict(zip(cases, results, strict=True))}


@pytest.mark.parametrize("case", WRONG_PATHS)
def test_wrong_paths_exit_2_with_one_line_naming_the_part(batch, case):
    result = batch[case]
    assert WRONG_PATHS[case][1] in one_error(result)
    # each broken plugin is named once, and says its components are unusable
    assert (
        "anymae: warning: plugin anymae-broken is BROKEN (failed to register: RuntimeError: boom)" in result["stderr"]
    )


def test_nothing_trained_on_a_wrong_path_and_a_rejected_duplicate_never_shadows_the_first_registration(batch):
    """With anymae-dupe's own PatchTarget imported, the short name still means the core's (the base config uses it),
    and the healthy plugin beside the broken ones works; the failed cases wrote nothing."""
    result = batch["no-shadow"]
    assert result["returncode"] == 0, result["stderr"][-2000:]
    assert "Multiple subclasses" not in result["stderr"]
    assert not (batch["root"] / "lightning_logs").exists()  # fast_dev_run writes no logs; the wrong paths none


def test_plugins_lists_the_broken_beside_the_healthy_and_fails(batch):
    result = batch["listing"]
    assert result["returncode"] == 1  # listed, but the run says something is wrong
    assert "anymae-broken 0.0.1: BROKEN (failed to register: RuntimeError: boom)" in result["stdout"]
    assert "anymae-noimport 0.0.1: BROKEN (failed to import: ModuleNotFoundError: No module named " in result["stdout"]
    assert "anymae-image 0.3.0 (plugin API 3)" in result["stdout"] and "tokenizer: WideTokenizer" in result["stdout"]


def test_a_disabled_plugin_is_blocked_whatever_way_a_config_names_it(site, tmp_path):
    result = anymae(site, tmp_path, "--model.target", "anymae_widths.parts.ScalarTarget", disable="anymae-widths")
    assert "anymae_widths.parts.ScalarTarget belongs to the plugin anymae-widths, which is disabled by " in one_error(
        result
    )


def test_the_allow_list_refuses_a_module_before_importing_it(site, tmp_path):
    """A config is code: naming a module imports it. With ANYMAE_ALLOWED_MODULES set, a class path outside the listed
    packages (and anymae, its healthy plugins, torch, lightning) is refused before its module runs."""
    marker = tmp_path / "imported"
    (site / "evil_module.py").write_text(f"open({str(marker)!r}, 'w').close()\n\n\nclass Masker:\n    pass\n")
    override = ["--model.masker", "evil_module.Masker"]  # without the allow-list, refused for its base class after
    config = tmp_path / "config.yaml"  # its import ran: the marker would exist
    config.write_text(yaml.safe_dump(CONFIG))
    env = {
        **os.environ,
        "PYTHONPATH": pythonpath(site),
        "ANYMAE_ALLOWED_MODULES": "tests",
        "ANYMAE_STRICT_PLUGINS": "0",
    }
    command = [str(ANYMAE), "fit", "--config", str(config), "--trainer.default_root_dir", str(tmp_path), *override]
    guarded = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert "model.masker: evil_module.Masker is outside ANYMAE_ALLOWED_MODULES (anymae, torch, lightning" in one_error(
        guarded
    )
    assert not marker.exists()
    trains = subprocess.run(
        [*command[:-2], "--trainer.fast_dev_run", "true"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert trains.returncode == 0, trains.stderr[-2000:]  # tests.core.toys is allowed; the core's names too
