"""A tokenizer over several tokenizers: each modality keeps its own tokenizer (from any plugin), layout and figure;
the model sees one joint sequence with a record of which tokens belong to which modality.

A multi-modal batch is a flat dict: each modality's entries are prefixed ``"<modality>/"`` and hold what that
modality's tokenizer reads (``"audio/fbank"``, ``"video/video"``); unprefixed entries (``"label"``) are shared. Each
tokenizer sees its own entries without the prefix, so a tokenizer written for one modality works unchanged.
"""

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...config import ConfigError, validated
from ..specs import LayoutSpec, TokenizerSpec
from ..tokenizer import Tokenizer
from ..types import GridLayout, TokenBatch

__all__ = ["MultiModalTokenizer", "modality_batch"]


def modality_batch(batch: Mapping[str, Tensor], name: str) -> dict[str, Tensor]:
    """One modality's entries of a multi-modal batch, prefix removed, with the shared (unprefixed) entries."""
    prefix = f"{name}/"
    own = {key[len(prefix) :]: value for key, value in batch.items() if key.startswith(prefix)}
    return {**{key: value for key, value in batch.items() if "/" not in key}, **own}


class MultiModalTokenizer(Tokenizer):
    """Several tokenizers, one per modality, as one: MultiMAE's and CAV-MAE's input adapters.

    Each tokenizer tokenizes its own entries of the batch (see the module docstring); the joint
    :class:`~anymae.TokenBatch` holds every modality's tokens one after the other, zero-padded to the widest token
    (``tokens`` ``[B, N_1 + N_2 + ..., max D]``), its padding masks joined, and each modality's own batch in
    ``parts`` (its layout, padding and provided data), which the multi-modal encoder, masker, decoder and target read.
    What a modality's tokenizer provides is named ``"<modality>/<name>"`` in the joint spec.

    Args:
        tokenizers: the modalities by name (e.g. ``{"video": VideoTubeletTokenizer, "audio":
            SpectrogramPatchTokenizer}``), in sequence order; a name holds no ``/``.
        use: the modalities to tokenize (``None``: all). Evaluation sets it to read a subset (audio only);
            :meth:`use_modalities` changes it after the model is built.
    """

    @validated
    def __init__(self, tokenizers: dict[str, Tokenizer], use: list[str] | None = None) -> None:
        super().__init__()
        if not tokenizers:
            raise ConfigError("MultiModalTokenizer.tokenizers is empty; give at least one modality")
        bad = [name for name in tokenizers if "/" in name or not name]
        if bad:
            raise ConfigError(
                f"MultiModalTokenizer.tokenizers: modality names must be non-empty and hold no '/': {bad}"
            )
        self.modalities = nn.ModuleDict(tokenizers)
        self.token_dim = max(t.token_dim for t in tokenizers.values())
        variable = any(t.layout.variable_length for t in tokenizers.values())
        self.layout = LayoutSpec("grid", 1, None, variable_length=variable)
        self.active: tuple[str, ...] = tuple(tokenizers)
        if use is not None:
            self.use_modalities(use)

    def use_modalities(self, names: Sequence[str] | None) -> None:
        """Tokenize only ``names`` (in the configured order; ``None``: every modality)."""
        names = list(self.modalities) if names is None else list(names)
        unknown = sorted(set(names) - set(self.modalities))
        if unknown or not names:
            raise ConfigError(
                f"MultiModalTokenizer: cannot use modalities {unknown or names}; it has {list(self.modalities)}"
            )
        self.active = tuple(name for name in self.modalities if name in names)

    def _tokenizer(self, name: str) -> Tokenizer:
        tokenizer = self.modalities[name]
        assert isinstance(tokenizer, Tokenizer)  # validated at construction
        return tokenizer

    @property
    def spec(self) -> TokenizerSpec:
        """The joint spec: what each modality provides as ``"<modality>/<name>"``, each modality's spec in
        ``modalities``."""
        specs = {name: self._tokenizer(name).spec for name in self.modalities}
        provides = {f"{m}/{key}": shape for m, spec in specs.items() for key, shape in spec.provides.items()}
        return TokenizerSpec(type(self).__name__, self.token_dim, self.layout, None, provides, None, specs)

    def forward(self, batch: Mapping[str, Tensor], needs: frozenset[str] = frozenset()) -> TokenBatch:
        parts: dict[str, TokenBatch] = {}
        for name in self.active:
            own = modality_batch(batch, name)
            if len(own) == sum("/" not in key for key in batch):
                have = sorted({key.split("/", 1)[0] for key in batch if "/" in key})
                raise ValueError(
                    f"MultiModalTokenizer: the batch has no {name!r} entries ('{name}/...'); it has modalities {have}"
                )
            wanted = frozenset(n.split("/", 1)[1] for n in needs if n.startswith(f"{name}/"))
            parts[name] = self._tokenizer(name)(own, wanted)
        width = self.token_dim
        tokens = torch.cat([F.pad(part.tokens, (0, width - part.tokens.shape[-1])) for part in parts.values()], dim=1)
        padding = None
        if any(part.padding_mask is not None for part in parts.values()):
            padding = torch.cat(
                [
                    part.padding_mask
                    if part.padding_mask is not None
                    else part.tokens.new_zeros(part.tokens.shape[:2], dtype=torch.bool)
                    for part in parts.values()
                ],
                dim=1,
            )
        return TokenBatch(tokens, GridLayout((tokens.shape[1],)), padding, parts=parts)

    def example_batch(self, batch_size: int = 2) -> dict[str, Tensor]:
        batch: dict[str, Tensor] = {}
        for name in self.modalities:
            batch.update(
                {f"{name}/{key}": value for key, value in self._tokenizer(name).example_batch(batch_size).items()}
            )
        return batch

    def inverse(self, tokens: TokenBatch) -> Tensor:
        raise NotImplementedError(
            "a multi-modal batch has no single raw format: invert one modality (MaskedAutoencoder.reconstruct(..., "
            "modality=name), the tokenizer's modalities[name].inverse)"
        )
