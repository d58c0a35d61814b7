"""DNA as tokens: each base one-hot (A, C, G, T; an unread base, N, all zeros), ``k`` consecutive bases per token."""

from collections.abc import Mapping

import torch
from pydantic import PositiveInt
from torch import Tensor

import anymae

BASES = 4
UNKNOWN = 4  # "N": a base the sequencer could not read


class DNAKmerTokenizer(anymae.Tokenizer):
    """``batch["sequence"]`` ``[B, L]`` integer bases (0-3; 4 for N) -> ``L / k`` tokens of ``k * 4`` one-hot values.

    Provides ``"known"`` ``[B, L / k, k]``: which bases of each token were read (not N), computed when a part needs it.

    Args:
        length: sequence length ``L``; a multiple of ``k``.
        k: bases per token.
    """

    @anymae.validated
    def __init__(self, length: PositiveInt = 128, k: PositiveInt = 4) -> None:
        super().__init__()
        if length % k:
            raise anymae.ConfigError(f"DNAKmerTokenizer.length {length} is not a multiple of k={k}")
        self.length, self.k = length, k
        self.token_dim = k * BASES
        self.channels = BASES  # tokens are raw values, channel (base) last: provides "raw_values"
        self.layout = anymae.LayoutSpec(kind="grid", rank=1, shape=(length // k,))
        self.provides = {"known": (k,)}

    def forward(self, batch: Mapping[str, Tensor], needs: frozenset[str] = frozenset()) -> anymae.TokenBatch:
        sequence = batch["sequence"]
        b, length = sequence.shape
        one_hot = torch.nn.functional.one_hot(sequence.long(), BASES + 1)[..., :BASES].float()  # [B, L, 4]; N: zeros
        tokens = one_hot.reshape(b, length // self.k, self.k * BASES)
        provided = {"known": (sequence != UNKNOWN).view(b, -1, self.k)} if "known" in needs else {}
        return anymae.TokenBatch(tokens, anymae.GridLayout((length // self.k,)), provided=provided)

    def example_batch(self, batch_size: int = 2) -> dict[str, Tensor]:
        generator = torch.Generator().manual_seed(0)
        return {"sequence": torch.randint(0, BASES, (batch_size, self.length), generator=generator)}

    def inverse(self, tokens: anymae.TokenBatch) -> Tensor:
        b, n, _ = tokens.tokens.shape
        return tokens.tokens.reshape(b, n * self.k, BASES).argmax(dim=-1)
