"""Series as patches (PatchTST, Nie et al. 2023, https://arxiv.org/abs/2211.14730; Ti-MAE, Li et al. 2023,
https://arxiv.org/abs/2301.08871).

A batch holds ``series`` ``[B, C, L]`` (padded) and optionally ``length`` ``[B]`` (valid steps per sample). A series is
cut into patches of ``patch_len`` steps every ``stride`` steps; a last partial patch is completed by repeating the last
value (PatchTST's end padding), so no step is dropped. Patches beyond a sample's length are padding; a patch holding a
missing value (NaN, or an infinite reading) is padding too: it is never visible and never in the loss.

* ``mode="mixed"``: one token per time patch over all channels, ``patch_len * C`` values laid out ``(step, channel)``.
* ``mode="independent"``: PatchTST's channel independence, one token sequence per channel (shared weights), folded
  into the batch dimension (``B * C`` sequences of ``patch_len`` values).

With ``revin=True`` each sample and channel is standardised over its valid, observed steps first (RevIN, Kim et al.
2022, https://openreview.net/forum?id=cGDAkQo1C0p, without the learned affine), so targets are in that scale.
"""

from collections.abc import Mapping
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import PositiveInt
from torch import Tensor

from anymae import ConfigError, GridLayout, LayoutSpec, TokenBatch, Tokenizer, validated

__all__ = ["SeriesPatchTokenizer"]


class SeriesPatchTokenizer(Tokenizer):
    """Patches of (multichannel) series.

    Args:
        channels: ``C``.
        length: nominal series length (sizes the position tables; other lengths work at run time).
        patch_len: steps per patch (16 in PatchTST).
        stride: steps between patch starts (unset: ``patch_len``, non-overlapping; PatchTST uses 8 with 16).
        mode: ``"mixed"`` or ``"independent"`` (see the module docstring).
        revin: per-instance standardisation.
        key: the batch entry holding the series ``[B, C, L]``.
        length_key: the batch entry holding valid lengths ``[B]`` (optional in a batch).
    """

    @validated
    def __init__(
        self,
        channels: PositiveInt = 1,
        length: PositiveInt = 128,
        patch_len: PositiveInt = 16,
        stride: PositiveInt | None = None,
        mode: Literal["mixed", "independent"] = "mixed",
        revin: bool = False,
        key: str = "series",
        length_key: str = "length",
    ) -> None:
        super().__init__()
        stride = stride or patch_len
        if stride > patch_len:
            raise ConfigError(
                f"SeriesPatchTokenizer.stride {stride} exceeds patch_len {patch_len}: steps would be lost"
            )
        self.in_channels, self.patch_len, self.stride, self.mode, self.revin = channels, patch_len, stride, mode, revin
        self.key, self.length_key = key, length_key
        self.channels = channels if mode == "mixed" else 1
        self.streams_per_sample = 1 if mode == "mixed" else channels
        self.token_dim = patch_len * self.channels
        self.length = length
        self.layout = LayoutSpec(kind="grid", rank=1, shape=(self.num_patches(length),), variable_length=True)
        # per-step differences x_t - x_{t-1}, patched like the tokens (trajectory targets)
        self.provides = {"displacements": (self.token_dim,)}

    def example_batch(self, batch_size: int = 2) -> dict[str, Tensor]:
        """Random walks of the nominal length."""
        g = torch.Generator().manual_seed(0)
        return {self.key: torch.randn(batch_size, self.in_channels, self.length, generator=g).cumsum(dim=-1)}

    def num_patches(self, length: int | Tensor) -> int | Tensor:
        """Patches covering ``length`` steps (the last one completed by repetition)."""
        if isinstance(length, Tensor):
            return ((length - self.patch_len).clamp_min(0) + self.stride - 1).div(
                self.stride, rounding_mode="floor"
            ) + 1
        return -(-max(length - self.patch_len, 0) // self.stride) + 1

    def _lengths(self, batch: Mapping[str, Tensor], series: Tensor) -> Tensor:
        lengths = batch.get(self.length_key)
        if lengths is None:
            return torch.full((series.shape[0],), series.shape[-1], device=series.device)
        return lengths.to(series.device).long()

    def normalize(self, series: Tensor, lengths: Tensor) -> Tensor:
        """RevIN without affine: each sample and channel to mean 0, std 1 over its valid, observed steps."""
        valid = (torch.arange(series.shape[-1], device=series.device) < lengths[:, None])[:, None] & ~series.isnan()
        count = valid.sum(dim=-1, keepdim=True).clamp_min(1)
        values = torch.where(valid, series, 0.0)
        mean = values.sum(dim=-1, keepdim=True) / count
        var = (torch.where(valid, series - mean, 0.0).pow(2)).sum(dim=-1, keepdim=True) / count
        return (series - mean) / (var + 1e-5).sqrt()

    def forward(self, batch: Mapping[str, Tensor], needs: frozenset[str] = frozenset()) -> TokenBatch:
        series = batch[self.key].float()
        series = series.masked_fill(series.isinf(), torch.nan)  # an infinite reading is missing, as a NaN one is
        b, c, total = series.shape
        if c != self.in_channels:
            raise ConfigError(
                f"expected series [B, {self.in_channels}, L], got {tuple(series.shape)}: the data's series have {c} "
                f"channels; set model.tokenizer.channels to {c}"
            )
        lengths = self._lengths(batch, series)
        if self.revin:
            series = self.normalize(series, lengths)
        n = int(self.num_patches(total))
        # Complete each sample's last patch by repeating its last value: past its length (the batch's padding, then
        # the padding to whole patches) every step holds it. Patches that start past the length are padding below.
        past_end = torch.arange(total, device=series.device) >= lengths[:, None, None]  # [B, 1, L]
        last = series.gather(-1, (lengths - 1).clamp_min(0)[:, None, None].expand(b, c, 1))
        series = torch.where(past_end, last, series)
        padded = F.pad(series, (0, (n - 1) * self.stride + self.patch_len - total), mode="replicate")
        patches = padded.unfold(-1, self.patch_len, self.stride)  # [B, C, N, p]
        starts = torch.arange(n, device=series.device) * self.stride
        beyond = starts[None, :] >= lengths[:, None]  # [B, N]: patches that start past the length
        missing = patches.isnan().any(dim=-1)  # [B, C, N]
        patches = patches.nan_to_num(0.0)
        if self.mode == "mixed":
            tokens = patches.permute(0, 2, 3, 1).reshape(b, n, self.patch_len * c)
            padding = beyond | missing.any(dim=1)
        else:
            tokens = patches.reshape(b * c, n, self.patch_len)
            padding = beyond.repeat_interleave(c, dim=0) | missing.reshape(b * c, n)
        computed = {"displacements": self._displacements(series, n)} if "displacements" in needs else {}
        return TokenBatch(tokens, GridLayout((n,)), padding if bool(padding.any()) else None, provided=computed)

    def _displacements(self, series: Tensor, n: int) -> Tensor:
        """Per-step differences ``x_t - x_{t-1}`` (0 at the first step), patched like the tokens."""
        steps = torch.diff(series, dim=-1, prepend=series[..., :1]).nan_to_num(0.0)
        padded = F.pad(steps, (0, (n - 1) * self.stride + self.patch_len - series.shape[-1]))
        patches = padded.unfold(-1, self.patch_len, self.stride)
        b, c = series.shape[:2]
        if self.mode == "mixed":
            return patches.permute(0, 2, 3, 1).reshape(b, n, self.patch_len * c)
        return patches.reshape(b * c, n, self.patch_len)

    def inverse(self, tokens: TokenBatch) -> Tensor:
        """Tokens back to series ``[B, C, (N - 1) * stride + patch_len]`` (overlaps averaged when strided)."""
        n, p, s = tokens.num_tokens, self.patch_len, self.stride
        if self.mode == "mixed":
            b = tokens.batch_size
            patches = tokens.tokens.reshape(b, n, p, self.in_channels).permute(0, 3, 2, 1)  # [B, C, p, N]
        else:
            b = tokens.batch_size // self.in_channels
            patches = tokens.tokens.reshape(b, self.in_channels, n, p).transpose(2, 3)
        total = (n - 1) * s + p
        flat = patches.reshape(b * self.in_channels, p, n)
        summed = F.fold(flat, output_size=(1, total), kernel_size=(1, p), stride=(1, s))
        counts = F.fold(torch.ones_like(flat), output_size=(1, total), kernel_size=(1, p), stride=(1, s))
        return (summed / counts).reshape(b, self.in_channels, total)
