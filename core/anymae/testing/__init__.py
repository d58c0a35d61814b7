"""Contract tests for components (:mod:`anymae.testing.contracts`), which a plugin's test suite subclasses, and what
they build on (:mod:`anymae.testing.tools`). This package needs pytest; ``import anymae`` does not import it."""

from .contracts import DataModuleContract, DecoderContract, MaskerContract, TargetContract, TokenizerContract
from .tools import EncoderStub, available_devices, build_context, config_roundtrip, fast_dev_run, tiny_model

__all__ = [
    "DataModuleContract",
    "DecoderContract",
    "EncoderStub",
    "MaskerContract",
    "TargetContract",
    "TokenizerContract",
    "available_devices",
    "build_context",
    "config_roundtrip",
    "fast_dev_run",
    "tiny_model",
]
