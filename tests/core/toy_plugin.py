"""An installed-style plugin module for the loader tests (named by a fake entry point)."""

import anymae

from .toys import SeriesTokenizer

ANYMAE_PLUGIN_API = 3  # the anymae plugin API this module is written for


@anymae.hookimpl
def anymae_register(registry):
    registry.add(SeriesTokenizer)
