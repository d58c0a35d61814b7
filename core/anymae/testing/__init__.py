"""Contract tests for components (:mod:`anymae.testing.contracts`); a plugin's test suite subclasses them. This
package needs pytest; ``import anymae`` does not import it."""

from .contracts import (
    DataModuleContract,
    DecoderContract,
    MaskerContract,
    TargetContract,
    TokenizerContract,
    available_devices,
    config_roundtrip,
    fast_dev_run,
    tiny_model,
)

__all__ = [
    "DataModuleContract",
    "DecoderContract",
    "MaskerContract",
    "TargetContract",
    "TokenizerContract",
    "available_devices",
    "config_roundtrip",
    "fast_dev_run",
    "tiny_model",
]
