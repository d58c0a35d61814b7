"""An installed-style plugin module for the loader tests (named by a fake entry point)."""

import anymae

from .toys import SeriesTokenizer


@anymae.hookimpl
def anymae_register(registry):
    registry.add_tokenizer(SeriesTokenizer)
