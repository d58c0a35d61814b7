"""Every hook a plugin can implement is documented in docs/plugins.md, headed by its exact signature."""

import inspect
from pathlib import Path

from anymae.plugins import hookspecs

DOCS = Path(__file__).resolve().parents[2] / "docs" / "plugins.md"


def test_every_hook_is_documented_with_its_signature():
    text = DOCS.read_text()
    hooks = [f for name, f in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("anymae_")]
    assert hooks
    for hook in hooks:
        params = ", ".join(f"{p.name}: anymae.{p.annotation}" for p in inspect.signature(hook).parameters.values())
        assert f"## `{hook.__name__}({params}) -> None`" in text, hook.__name__
