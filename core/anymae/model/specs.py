"""What the parts know of each other before any data is seen, and what building a model hands each part.

* :class:`LayoutSpec` and :class:`TokenizerSpec` -- a tokenizer's promises (token width, layout, channels, what else
  it can provide per token). Targets and figures bind to these, never to the tokenizer's class.
* :class:`BuildContext` -- what each part's ``build(ctx)`` may depend on: the tokenizer's spec, the encoder (its
  width, depth and prefix tokens), what the target predicts, and the training progress. The model builds each part
  once, in the order encoder, target, decoder, masker; after its constructor returns no part is half built.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol

__all__ = ["INVERSE", "RAW_VALUES", "BuildContext", "EncoderInfo", "LayoutSpec", "TokenizerSpec"]

#: Names a tokenizer provides without computing anything: tokens that are raw values laid out channel-last (its
#: ``channels`` is set), and an ``inverse`` back to the raw format.
RAW_VALUES = "raw_values"
INVERSE = "inverse"


@dataclass(frozen=True)
class LayoutSpec:
    """What a tokenizer promises about its tokens' layout.

    Args:
        kind: ``"grid"`` (integer coordinates) or ``"points"`` (continuous coordinates).
        rank: number of coordinates per token (grid rank, or 3 for points in space).
        shape: the nominal grid shape for a grid tokenizer (inputs of another size give another shape at run time);
            ``None`` for points.
        variable_length: whether batches may carry a padding mask.
    """

    kind: Literal["grid", "points"]
    rank: int
    shape: tuple[int, ...] | None = None
    variable_length: bool = False

    def describe(self) -> str:
        if self.kind == "grid":
            grid = "x".join(map(str, self.shape or ()))
            return f"grid {grid}" + (" (variable length)" if self.variable_length else "")
        return f"points in {self.rank}-D" + (" (variable count)" if self.variable_length else "")


@dataclass(frozen=True)
class TokenizerSpec:
    """What a tokenizer promises (``Tokenizer.spec``).

    Args:
        name: the tokenizer's class name (for messages).
        token_dim: size ``D`` of each token vector (sizes the encoder's input).
        layout: the :class:`LayoutSpec` of its tokens.
        channels: channels of raw-value tokens laid out channel-last, or ``None`` for learned features.
        provides: what it can provide per token, by name: data with its shape per token (``{"neighborhoods": (32,
            3)}``), or ``None`` for a property without data -- ``raw_values`` when ``channels`` is set, ``inverse``
            when it maps tokens back to the raw format, ``{"counts": None}``.
        patch: each raw-value token's extent along every grid axis (``Tokenizer.patch``), or ``None``.
        modalities: a multi-modal tokenizer's modalities, each one's spec by name, in sequence order; what it
            provides is then named ``"<modality>/<name>"`` (``"audio/raw_values"``). Empty for one modality.
    """

    name: str
    token_dim: int
    layout: LayoutSpec
    channels: int | None = None
    provides: Mapping[str, tuple[int, ...] | None] = field(default_factory=dict)
    patch: tuple[int, ...] | None = None
    modalities: Mapping[str, TokenizerSpec] = field(default_factory=dict)

    @property
    def invertible(self) -> bool:
        return INVERSE in self.provides

    def modality_specs(self, owner: str, names: Iterable[str] = ()) -> Mapping[str, TokenizerSpec]:
        """Each modality's spec of a multi-modal tokenizer; a :class:`~anymae.ConfigError` naming ``owner`` when the
        tokenizer has one modality, or when ``names`` (what ``owner`` was configured with, per modality) holds one
        that is not a modality."""
        from ..config import ConfigError

        if not self.modalities:
            raise ConfigError(
                f"{owner} needs a multi-modal tokenizer (MultiModalTokenizer); {self.name} has one modality"
            )
        unknown = sorted(set(names) - set(self.modalities))
        if unknown:
            raise ConfigError(f"{owner} names {unknown}, which are not modalities ({list(self.modalities)})")
        return self.modalities

    def to_compute(self, needs: frozenset[str] | set[str], part: str, who: str, purpose: str = "") -> frozenset[str]:
        """The names of ``needs`` the tokenizer must compute (data, not properties); a
        :class:`~anymae.ConfigError` naming the config ``part`` (``"model.target"``), ``who`` needs them
        (``"ChamferTarget"``), what for, and what the tokenizer provides when it provides not all of them."""
        from ..config import ConfigError

        missing = sorted(set(needs) - set(self.provides))
        if missing:
            provides = ", ".join(sorted(self.provides)) or "nothing beyond its tokens"
            raise ConfigError(
                f"{part}: {who} needs {', '.join(missing)} from the tokenizer{purpose}, which {self.name} does not "
                f"provide (it provides: {provides})"
            )
        return frozenset(name for name in needs if self.provides[name] is not None)


class EncoderInfo(Protocol):
    """What a part may read of the model's encoder while it builds (a masker that scores with the encoder keeps it
    as an :class:`~anymae.Encoder`)."""

    embed_dim: int
    num_layers: int
    num_prefix_tokens: int
    sees_all_tokens: bool


def _finished() -> float:
    return 1.0


@dataclass(frozen=True)
class BuildContext:
    """What a part may depend on when the model builds it (each part's ``build(ctx)``, called once).

    Attributes:
        tokens: the tokenizer's spec.
        encoder: the model's encoder: its width, depth, prefix tokens and whether it sees every token (built
            before the other parts, so a masker may keep a running copy of it).
        target_dim: the values the decoder predicts per token (the target's ``dim_per_token``; 0 while the target
            itself builds).
        predicts: what a prediction is (the target's ``predicts``).
        progress: the share of training done, in ``[0, 1]`` (1 outside training): what a masker's schedule follows.
        modality_dims: a multi-modal target's values per token of each modality (``target_dim`` is the widest).
    """

    tokens: TokenizerSpec
    encoder: EncoderInfo
    target_dim: int = 0
    predicts: str | None = None
    progress: Callable[[], float] = _finished
    modality_dims: Mapping[str, int] = field(default_factory=dict)
