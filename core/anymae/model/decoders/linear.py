"""SimMIM's prediction head (Xie et al. 2022, https://arxiv.org/abs/2111.09886)."""

from pydantic import PositiveInt
from torch import Tensor, nn

from ...config import validated
from ..layers import init_mae_weights
from ..specs import BuildContext
from ..types import EncoderOutput, MaskSpec, TokenBatch, gather_tokens
from .base import Decoder, prediction_width

__all__ = ["LinearDecoder"]


class LinearDecoder(Decoder):
    """One linear layer from each hidden token's own latent to its target (SimMIM's 1x1 convolution to a patch's
    pixels), for an encoder that sees every token with the hidden ones replaced by a mask token
    (``ViTEncoder(mask_token=True)``). The class token is not used. SimMIM's point is that the head can be this
    light once the encoder does all the work.

    Args:
        out_dim: size of each prediction; ``None`` takes the target's size. When given, it must equal the target's.
    """

    reads = frozenset({"all"})
    head: nn.Linear  # created by build

    @validated
    def __init__(self, out_dim: PositiveInt | None = None) -> None:
        super().__init__()
        self.requested_out_dim = out_dim

    def build(self, ctx: BuildContext) -> None:
        self.out_dim = prediction_width("LinearDecoder", self.requested_out_dim, ctx)
        self.head = nn.Linear(ctx.encoder.embed_dim, self.out_dim)
        self.apply(init_mae_weights)

    def forward(self, encoded: EncoderOutput, tokens: TokenBatch, mask: MaskSpec) -> Tensor:
        return self.head(gather_tokens(encoded.body, mask.ids_decode))
