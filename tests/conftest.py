"""Fixtures shared by every modality's tests."""

import os
import subprocess
import sys

import pytest


@pytest.fixture(scope="session")
def plugins_listing(tmp_path_factory) -> subprocess.CompletedProcess:
    """``anymae plugins`` run once, as a user runs it (a fresh process, strict plugin loading): each plugin's tests
    check their own lines of it (one process start instead of one per plugin)."""
    env = {**os.environ, "ANYMAE_STRICT_PLUGINS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "anymae.cli", "plugins"],
        cwd=tmp_path_factory.mktemp("plugins"),
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
