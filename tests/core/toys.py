"""Toy components for the core's tests: a 1-D series patcher (variable length), a video tubelet patcher (rank-3
grid) and a point tokenizer (continuous coordinates). They show that the core serves every layout without knowing
any modality, and they keep the core's tests independent of the plugins."""

from functools import partial

import lightning.pytorch as pl
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

import anymae
from anymae import GridLayout, LayoutSpec, PointLayout, TokenBatch


class SeriesTokenizer(anymae.Tokenizer):
    """``batch["series"]`` ``[B, C, L]`` -> patches of ``patch`` steps; ``batch["length"]`` (optional) pads."""

    @anymae.validated
    def __init__(self, patch: int = 4, channels: int = 2, length: int = 32) -> None:
        super().__init__()
        self.patch = patch
        self.channels = channels
        self.token_dim = patch * channels
        self.layout = LayoutSpec("grid", 1, (length // patch,), variable_length=True)

    def forward(self, batch, needs=frozenset()):
        x = batch["series"]
        b, c, length = x.shape
        tokens = x.reshape(b, c, length // self.patch, self.patch).permute(0, 2, 3, 1).flatten(2)
        padding = None
        if "length" in batch:
            steps = torch.arange(length // self.patch, device=x.device) * self.patch
            padding = steps[None, :] >= batch["length"][:, None]
        return TokenBatch(tokens, GridLayout((length // self.patch,)), padding)

    def example_batch(self, batch_size=2):
        return {"series": sinusoids(batch_size, self.channels, self.layout.shape[0] * self.patch)}

    def inverse(self, tokens: TokenBatch) -> Tensor:
        b, n, _ = tokens.tokens.shape
        return tokens.tokens.reshape(b, n, self.patch, self.channels).permute(0, 3, 1, 2).reshape(b, self.channels, -1)


class VideoTokenizer(anymae.Tokenizer):
    """``batch["video"]`` ``[B, C, T, H, W]`` -> tubelets ``(t, p, p)``, a rank-3 grid."""

    @anymae.validated
    def __init__(self, frames: int = 4, size: int = 8, tubelet: int = 2, patch: int = 4, channels: int = 1) -> None:
        super().__init__()
        self.t, self.p, self.channels = tubelet, patch, channels
        self.token_dim = tubelet * patch * patch * channels
        self.layout = LayoutSpec("grid", 3, (frames // tubelet, size // patch, size // patch))
        self.frames, self.size = frames, size

    def example_batch(self, batch_size=2):
        g = torch.Generator().manual_seed(0)
        return {"video": torch.randn(batch_size, self.channels, self.frames, self.size, self.size, generator=g)}

    def forward(self, batch, needs=frozenset()):
        x = batch["video"]
        b, c, t, h, w = x.shape
        x = x.reshape(b, c, t // self.t, self.t, h // self.p, self.p, w // self.p, self.p)
        tokens = x.permute(0, 2, 4, 6, 3, 5, 7, 1).reshape(b, -1, self.token_dim)
        return TokenBatch(tokens, GridLayout((t // self.t, h // self.p, w // self.p)))


class PointTokenizer(anymae.Tokenizer):
    """``batch["points"]`` ``[B, N, 3]``: one token per point, a learned feature of its coordinates."""

    @anymae.validated
    def __init__(self, dim: int = 16) -> None:
        super().__init__()
        self.embed = torch.nn.Linear(3, dim)
        self.token_dim = dim
        self.layout = LayoutSpec("points", 3)

    def example_batch(self, batch_size=2):
        return {"points": torch.rand(batch_size, 64, 3, generator=torch.Generator().manual_seed(0))}

    def forward(self, batch, needs=frozenset()):
        points = batch["points"]
        return TokenBatch(self.embed(points), PointLayout(points))


class CoordTarget(anymae.Target):
    """Predict the coordinates of hidden tokens (a target for a layout without raw values)."""

    @anymae.validated
    def __init__(self) -> None:
        super().__init__()

    def build(self, ctx):
        tokens = ctx.tokens
        self.dim_per_token = tokens.layout.rank

    def forward(self, batch, tokens, mask):
        return anymae.gather_tokens(tokens.positions().float(), mask.ids_decode)


def sinusoids(n: int, channels: int = 2, length: int = 32, seed: int = 0) -> Tensor:
    """Smooth, learnable series: sums of two sinusoids with random frequency and phase per sample and channel."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(length, dtype=torch.float32)
    freq = torch.rand(n, channels, 2, 1, generator=g) * 0.3 + 0.1
    phase = torch.rand(n, channels, 2, 1, generator=g) * 6.28
    return torch.sin(freq * t + phase).sum(dim=2)


class _Dicts(Dataset):
    def __init__(self, series: Tensor) -> None:
        self.series = series

    def __len__(self) -> int:
        return len(self.series)

    def __getitem__(self, i: int):
        return {"series": self.series[i]}


class SeriesData(pl.LightningDataModule):
    """Sinusoids; ``poison`` makes that training sample infinite (a corrupt sample that makes gradients NaN)."""

    @anymae.validated
    def __init__(self, n: int = 256, batch_size: int = 32, seed: int = 0, poison: int | None = None) -> None:
        super().__init__()
        series = sinusoids(n, seed=seed)
        if poison is not None:
            series[poison] = float("inf")
        self.train = _Dicts(series)
        self.val = _Dicts(sinusoids(64, seed=seed + 1))
        self.batch_size = batch_size
        self.seed = seed

    def train_dataloader(self):
        sampler = anymae.EpochShuffleSampler(len(self.train), self.seed)
        return DataLoader(self.train, batch_size=self.batch_size, sampler=sampler, drop_last=True)

    def val_dataloader(self):
        return DataLoader(self.val, batch_size=self.batch_size)


def series_model(**overrides) -> anymae.MaskedAutoencoder:
    parts = {
        "tokenizer": SeriesTokenizer(),
        "masker": anymae.RandomMasker(mask_ratio=0.5),
        "encoder": anymae.ViTEncoder(embed_dim=32, depth=2, num_heads=2),
        "decoder": anymae.MAEDecoder(embed_dim=16, depth=1, num_heads=2),
        "target": anymae.PatchTarget(normalize="none"),
        "lr_schedule": anymae.WarmupCosine(warmup_epochs=1),
        "optimizer": partial(anymae.MAEAdamW, lr=3e-3),
    }
    parts.update(overrides)
    return anymae.MaskedAutoencoder(**parts)


def quiet_trainer(**kwargs) -> pl.Trainer:
    defaults = {
        "accelerator": "cpu",
        "devices": 1,
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
    }
    return pl.Trainer(**{**defaults, **kwargs})


def epoch(data: pl.LightningDataModule) -> list[dict]:
    """One training epoch's batches, as the model would get them (the skip records taken out)."""
    data.setup("fit")
    return [data.on_before_batch_transfer(batch, 0) for batch in data.train_dataloader()]


def fit_and_compare(
    model: pl.LightningModule, data: pl.LightningDataModule, epochs: int
) -> tuple[float, float, pl.Trainer]:
    """The validation loss of ``model`` before training and after ``epochs`` epochs of it, and the fitted trainer."""
    trainer = quiet_trainer(max_epochs=1, limit_train_batches=1, num_sanity_val_steps=0)
    trainer.validate(model, data, verbose=False)
    before = trainer.callback_metrics["val/loss"].item()
    trainer = quiet_trainer(max_epochs=epochs, num_sanity_val_steps=0)
    trainer.fit(model, data)
    return before, trainer.callback_metrics["val/loss"].item(), trainer


class _Labelled(Dataset):
    def __init__(self, series: Tensor, labels: Tensor) -> None:
        self.series, self.labels = series, labels

    def __len__(self) -> int:
        return len(self.series)

    def __getitem__(self, i: int):
        return {"series": self.series[i], "label": self.labels[i]}


def separable_series(n: int, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Three classes that differ in frequency (slow, medium, fast sinusoids): trivially separable."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 3
    freq = torch.tensor([0.15, 0.6, 1.4])[labels][:, None, None]
    phase = torch.rand(n, 2, 1, generator=g) * 6.28
    t = torch.arange(32, dtype=torch.float32)
    return torch.sin(freq * t + phase) + 0.05 * torch.randn(n, 2, 32, generator=g), labels


class LabelledSeries(pl.LightningDataModule):
    @anymae.validated
    def __init__(self, n: int = 300, batch_size: int = 32, seed: int = 0) -> None:
        super().__init__()
        self.train = _Labelled(*separable_series(n, seed))
        self.val = _Labelled(*separable_series(n // 3, seed + 1))
        self.batch_size, self.seed = batch_size, seed

    def train_dataloader(self):
        sampler = anymae.EpochShuffleSampler(len(self.train), self.seed)
        return DataLoader(self.train, batch_size=self.batch_size, sampler=sampler)

    def val_dataloader(self):
        return DataLoader(self.val, batch_size=self.batch_size)


class KillAt(pl.Callback):
    """SIGKILL this process when training reaches ``step`` optimiser steps: a crash that runs no handler."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer, *args) -> None:
        if trainer.global_step >= self.step:
            import os
            import signal

            os.kill(os.getpid(), signal.SIGKILL)
