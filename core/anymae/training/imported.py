"""Whole models from files: :func:`load_model` builds the tokenizer, masker, encoder, decoder and target an
``anymae fit`` checkpoint, an ``anymae convert`` folder or a published file with a decoder records, and loads their
weights (``anymae export --format hf`` and ``anymae convert`` use it)."""

from pathlib import Path
from typing import Any

from ..config import ConfigError
from ..model.published import ImportedWeights
from .module import MaskedAutoencoder
from .weights import PARTS, read_model_weights

__all__ = ["build_model", "load_model"]


def load_model(path: str | Path, **overrides: Any) -> MaskedAutoencoder:
    """A whole model (tokenizer, masker, encoder, decoder, target) from any file :func:`init_weights` takes, built
    with the sizes it records (``overrides`` replace parts or arguments); a file without a decoder is a
    :class:`~anymae.ConfigError`: use :func:`~anymae.load_encoder` for an encoder."""
    return build_model(read_model_weights(path), str(path), **overrides)


def build_model(imported: ImportedWeights, source: str, **overrides: Any) -> MaskedAutoencoder:
    """The model ``imported`` describes, its weights loaded (see :func:`load_model`)."""
    path = source
    missing = [p for p in ("decoder", "target", "masker") if p not in imported.parts and p not in overrides]
    if missing:
        raise ConfigError(
            f"{path}: {imported.source} holds no {' or '.join(missing)}; anymae.load_encoder reads its encoder"
        )
    config = {**{k: v for k, v in imported.parts.items() if k in PARTS}, **overrides}
    model = MaskedAutoencoder.from_config(config, source=str(path))
    try:
        model.load_state_dict(imported.state, strict=False)
    except RuntimeError as error:  # a tensor of another shape than the config builds (an edited config, overrides)
        raise ConfigError(f"{path}: the weights do not fit the parts its config builds: {error}") from None
    expected = set(model.state_dict())  # every part's weights (a learned masker's, a target's head) included
    absent = sorted(expected - set(imported.state))
    if absent:
        shown = ", ".join(absent[:3])
        raise ConfigError(f"{path}: {imported.source} lacks {len(absent)} weights of the model ({shown}, ...)")
    return model.eval()
