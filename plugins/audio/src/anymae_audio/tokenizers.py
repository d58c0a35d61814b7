"""Spectrogram patches (Audio-MAE, Huang et al. 2022, https://arxiv.org/abs/2207.06405).

A ``[B, 1, T, F]`` fbank (time first, as Audio-MAE) becomes ``p x p`` patches on the ``(time, frequency)`` grid,
row-major with frequency fastest (Audio-MAE's token order: 64 x 8 for 1024 frames x 128 mel bins at 16 x 16).
With ``stride < patch_size`` patches overlap (Audio-MAE's fine-tuning option ``use_custom_patch``: stride 10, 101 x
12 tokens); the inverse then averages the overlaps. With ``variable_length``, tokens that start past a clip's real
frames (``frames`` in the batch) are padding, so short clips are not read as silence; a batch without ``frames`` is
taken as full length.
"""

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from pydantic import PositiveInt
from torch import Tensor

from anymae import ConfigError, GridLayout, LayoutSpec, TokenBatch, Tokenizer, patchify, unpatchify, validated

__all__ = ["SpectrogramPatchTokenizer"]


class SpectrogramPatchTokenizer(Tokenizer):
    """Patches of fbank spectrograms, for any ``target_length`` and mel count the patch fits.

    Args:
        target_length: nominal frames ``T`` (1024 AudioSet, 512 ESC-50, 128 Speech Commands).
        num_mel_bins: mel bands ``F`` (128).
        patch_size: patch side (16).
        stride: step between patches (unset: ``patch_size``, no overlap; Audio-MAE's fine-tuning option: 10).
        variable_length: mark tokens past each clip's real frames (``batch[frames_key]``) as padding.
        key: the batch entry holding the fbank ``[B, 1, T, F]``.
        frames_key: the batch entry holding each clip's real frame count.
    """

    @validated
    def __init__(
        self,
        target_length: PositiveInt = 1024,
        num_mel_bins: PositiveInt = 128,
        patch_size: PositiveInt = 16,
        stride: PositiveInt | None = None,
        variable_length: bool = False,
        key: str = "fbank",
        frames_key: str = "frames",
    ) -> None:
        super().__init__()
        p, s = patch_size, stride or patch_size
        if s > p:
            raise ConfigError(f"SpectrogramPatchTokenizer.stride {s} above patch_size {p} would skip frames")
        if target_length < p or num_mel_bins < p or (s == p and (target_length % p or num_mel_bins % p)):
            raise ConfigError(
                f"SpectrogramPatchTokenizer: a {target_length} x {num_mel_bins} fbank does not fit {p} x {p} patches; "
                f"allowed: multiples of the patch size (or a stride below it)"
            )
        self.target_length, self.num_mel_bins, self.patch_size, self.stride = target_length, num_mel_bins, p, s
        self.key, self.frames_key, self.variable_length = key, frames_key, variable_length
        self.channels = 1
        self.token_dim = p * p
        self.patch = (p, p) if s == p else None
        shape = self.grid((target_length, num_mel_bins))
        self.layout = LayoutSpec(kind="grid", rank=2, shape=shape, variable_length=variable_length)

    def grid(self, size: tuple[int, int]) -> tuple[int, int]:
        p, s = self.patch_size, self.stride
        return ((size[0] - p) // s + 1, (size[1] - p) // s + 1)

    def forward(self, batch: Mapping[str, Tensor], needs: frozenset[str] = frozenset()) -> TokenBatch:
        x = batch[self.key]
        if x.dim() != 4 or x.shape[1] != 1:
            raise ConfigError(f"expected fbank [B, 1, T, F] under {self.key!r}, got {tuple(x.shape)}")
        p, s = self.patch_size, self.stride
        grid = self.grid((x.shape[2], x.shape[3]))
        if s == p:
            if x.shape[2] % p or x.shape[3] % p:
                raise ConfigError(
                    f"fbank {tuple(x.shape[2:])} is not divisible into {p} x {p} patches: set the data's target_length "
                    "and num_mel_bins"
                )
            tokens = patchify(x, (p, p))
        else:  # overlapping patches: unfold lists each patch (time, frequency)-major, as patchify
            tokens = F.unfold(x, kernel_size=p, stride=s).transpose(1, 2)
        padding = None
        if self.variable_length and self.frames_key in batch:
            starts = torch.arange(grid[0], device=x.device) * s  # each token row's first frame
            frames = batch[self.frames_key].to(x.device)
            padding = (starts[None, :] >= frames[:, None]).repeat_interleave(grid[1], dim=1)
        return TokenBatch(tokens, GridLayout(grid), padding)

    def example_batch(self, batch_size: int = 2) -> dict[str, Tensor]:
        """Random fbanks of the nominal size (full length)."""
        g = torch.Generator().manual_seed(0)
        batch = {self.key: torch.randn(batch_size, 1, self.target_length, self.num_mel_bins, generator=g)}
        if self.variable_length:
            batch[self.frames_key] = torch.full((batch_size,), self.target_length)
        return batch

    def inverse(self, tokens: TokenBatch) -> Tensor:
        """Tokens -> fbanks ``[B, 1, T', F']`` (``T'``, ``F'``: the frames and bands the patches cover; overlaps
        averaged)."""
        p, s = self.patch_size, self.stride
        rows, cols = tokens.layout.shape
        if s == p:
            return unpatchify(tokens.tokens, (rows, cols), (p, p), 1)
        size = ((rows - 1) * s + p, (cols - 1) * s + p)
        values = F.fold(tokens.tokens.transpose(1, 2), size, kernel_size=p, stride=s)
        counts = F.fold(torch.ones_like(tokens.tokens).transpose(1, 2), size, kernel_size=p, stride=s)
        return values / counts
