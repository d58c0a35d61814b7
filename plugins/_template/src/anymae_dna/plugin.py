"""The entry point: anymae imports this module and calls its hook."""

import anymae

ANYMAE_PLUGIN_API = 3  # the anymae plugin API this plugin is written for


@anymae.hookimpl
def anymae_register(registry: anymae.Registry) -> None:
    # imported here, not at the top: `anymae --help` loads this module without needing the components
    from .data import SyntheticDNADataModule
    from .targets import BaseClassTarget
    from .tokenizers import DNAKmerTokenizer

    registry.add(DNAKmerTokenizer, BaseClassTarget, SyntheticDNADataModule)
