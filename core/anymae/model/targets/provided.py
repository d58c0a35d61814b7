"""A target the tokenizer provides per token (Point-MAE's neighbourhoods, MaskFeat3D's normals, a trajectory's
displacements)."""

import math
from collections.abc import Mapping

from torch import Tensor

from ...config import ConfigError, validated
from ..specs import BuildContext
from ..types import MaskSpec, TokenBatch, gather_tokens
from .base import Target

__all__ = ["ProvidedTarget"]


class ProvidedTarget(Target):
    """Predict, for each decoded token, a quantity its tokenizer provides per token (a name in its ``provides``):
    Point-MAE's neighbourhoods, MaskFeat3D's normals, a trajectory's displacements. Mean squared error by default;
    subclasses fix :attr:`quantity` and bring their own loss (``ChamferTarget``).

    Args:
        quantity: the name the tokenizer provides (the target needs it and predicts it).
    """

    @validated
    def __init__(self, quantity: str) -> None:
        super().__init__()
        self.quantity = quantity
        self.needs = frozenset({quantity})
        self.predicts = quantity

    def build(self, ctx: BuildContext) -> None:
        shape = ctx.tokens.provides[self.quantity]
        if shape is None:
            raise ConfigError(f"{type(self).__name__}: {ctx.tokens.name}'s {self.quantity!r} is a property, not data")
        self.dim_per_token = math.prod(shape)

    def forward(self, batch: Mapping[str, Tensor], tokens: TokenBatch, mask: MaskSpec) -> Tensor:
        return gather_tokens(tokens.provided[self.quantity].flatten(2), mask.ids_decode)
