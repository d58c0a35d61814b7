"""The plugin kit end to end: a plugin made from plugins/_template under a new name installs, is discovered through
its entry point, passes the contract tests, trains and is scored by anymae knn (broken installed plugins:
tests/core/test_wrong_paths.py).

Plugins are pip-installed into a temporary --target folder put on PYTHONPATH of subprocesses, so the test leaves
the environment as it found it.
"""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "plugins" / "_template"
TUTORIAL = ROOT / "docs" / "writing-a-plugin.md"


def pip_install(project: Path, site: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(site),
            str(project),
        ],
        check=True,
        capture_output=True,
    )


def run(args, site: Path, cwd: Path, strict: bool = True, disable: str = "", timeout: int = 600):
    env = {
        **os.environ,
        "PYTHONPATH": str(site),
        "ANYMAE_STRICT_PLUGINS": "1" if strict else "0",
        "ANYMAE_DISABLE_PLUGINS": disable,
    }
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def copy_template(dest: Path, name: str) -> Path:
    """The template under a new distribution and package name, as a plugin author starts."""
    project = dest / f"anymae-{name}"
    shutil.copytree(TEMPLATE, project, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    (project / "src" / "anymae_dna").rename(project / "src" / f"anymae_{name}")
    for path in project.rglob("*"):
        if path.is_file() and path.suffix in {".py", ".toml", ".md", ".yaml"}:
            text = path.read_text()
            path.write_text(text.replace("anymae_dna", f"anymae_{name}").replace("anymae-dna", f"anymae-{name}"))
    return project


def test_a_plugin_made_from_the_template_installs_is_discovered_passes_contracts_and_trains(tmp_path):
    project = copy_template(tmp_path, "genome")
    site = tmp_path / "site"
    pip_install(project, site)

    listing = run([sys.executable, "-m", "anymae.cli", "plugins"], site, tmp_path)
    assert listing.returncode == 0, listing.stderr
    assert "anymae-genome 0.1.0 (plugin API 3): anymae_genome.plugin" in listing.stdout
    assert "tokenizer: DNAKmerTokenizer" in listing.stdout and "target: BaseClassTarget" in listing.stdout

    contracts = run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"], site, project)
    assert contracts.returncode == 0, contracts.stdout[-3000:]
    assert re.search(r"\b22 passed\b", contracts.stdout), contracts.stdout[-500:]

    fit = run(
        [
            sys.executable,
            "-m",
            "anymae.cli",
            "fit",
            "--config",
            "examples/dna_mae.yaml",
            "--trainer.max_epochs",
            "2",
            "--trainer.enable_progress_bar",
            "false",
            "--data.num_sequences",
            "256",
        ],
        site,
        project,
    )
    assert fit.returncode == 0, fit.stderr[-3000:]
    metrics = (project / "lightning_logs" / "version_0" / "metrics.csv").read_text().splitlines()
    header = metrics[0].split(",")
    val = [
        float(row.split(",")[header.index("val/loss")])
        for row in metrics[1:]
        if row.split(",")[header.index("val/loss")]
    ]
    assert len(val) == 2 and val[1] < val[0] < 1.6  # cross-entropy of 4 bases starts near ln 4 = 1.39 and falls

    knn = run(
        [
            sys.executable,
            "-m",
            "anymae.cli",
            "knn",
            "--config",
            "examples/dna_knn.yaml",
            "--data.data.num_sequences",
            "256",
        ],
        site,
        project,
    )
    assert knn.returncode == 0, knn.stderr[-3000:]
    row = json.loads(knn.stdout.strip().splitlines()[-1])  # the plugin's labelled data serves the evaluation
    assert row["protocol"] == "knn" and row["labels_per_class"] == 5 and row["value"] > 0.5  # 4 families: chance 0.25


TEMPLATE_FILES = sorted(
    p.relative_to(TEMPLATE) for p in TEMPLATE.rglob("*") if p.suffix in {".py", ".toml", ".yaml"} and p.is_file()
)


@pytest.mark.parametrize("path", TEMPLATE_FILES, ids=str)
def test_tutorial_shows_the_template_files_as_they_are(path):
    """Every file of the template appears whole in docs/writing-a-plugin.md, so following the tutorial gives exactly
    the plugin the test above installs and trains."""
    blocks = dict(re.findall(r"```(?:python|toml|yaml)\n# file: (\S+)\n(.*?)```", TUTORIAL.read_text(), re.S))
    assert str(path) in blocks, f"{path} is not shown in the tutorial"
    assert blocks[str(path)] == (TEMPLATE / path).read_text()
