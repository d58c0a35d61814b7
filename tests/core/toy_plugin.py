"""An installed-style plugin module for the loader tests (named by a fake entry point)."""

import anymae

ANYMAE_PLUGIN_API = 1  # the anymae plugin API this module is written for

from .toys import SeriesTokenizer


@anymae.hookimpl
def anymae_register(registry):
    registry.add_tokenizer(SeriesTokenizer)
