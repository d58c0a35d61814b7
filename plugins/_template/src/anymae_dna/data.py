"""Synthetic DNA: sequences stitched from a few random motifs, with point mutations, generated in memory."""

from typing import Annotated

import lightning.pytorch as pl
import torch
from pydantic import Field, PositiveInt
from torch.utils.data import DataLoader, Dataset

import anymae


class _Sequences(Dataset):
    def __init__(self, sequences: torch.Tensor) -> None:
        self.sequences = sequences

    def __len__(self) -> int:
        return len(self.sequences)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"sequence": self.sequences[index]}


class SyntheticDNADataModule(pl.LightningDataModule):
    """Sequences of ``length`` bases made of motifs drawn from a bank of ``motifs`` random ``motif_length``-mers,
    each base then mutated with probability ``mutation_rate``: masked k-mers can be predicted from context.

    Args:
        num_sequences: sequences generated.
        length: bases per sequence (a multiple of ``motif_length``).
        motifs: size of the motif bank.
        motif_length: bases per motif.
        mutation_rate: probability that a base is replaced by a random one.
        batch_size: sequences per batch.
        val_fraction: share held out for validation.
        seed: seed of the generation, the split and the shuffling.
    """

    @anymae.validated
    def __init__(
        self,
        num_sequences: PositiveInt = 1024,
        length: PositiveInt = 128,
        motifs: PositiveInt = 8,
        motif_length: PositiveInt = 8,
        mutation_rate: Annotated[float, Field(ge=0, le=1)] = 0.05,
        batch_size: PositiveInt = 32,
        val_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.1,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if length % motif_length:
            raise anymae.ConfigError(f"SyntheticDNADataModule.length {length} is not a multiple of {motif_length}")
        self.num_sequences, self.length = num_sequences, length
        self.motifs, self.motif_length, self.mutation_rate = motifs, motif_length, mutation_rate
        self.batch_size, self.val_fraction, self.seed = batch_size, val_fraction, seed

    def setup(self, stage: str | None = None) -> None:
        g = torch.Generator().manual_seed(self.seed)
        bank = torch.randint(0, 4, (self.motifs, self.motif_length), generator=g)
        picks = torch.randint(0, self.motifs, (self.num_sequences, self.length // self.motif_length), generator=g)
        sequences = bank[picks].flatten(1)  # [num_sequences, length], vectorised
        mutate = torch.rand(sequences.shape, generator=g) < self.mutation_rate
        sequences = torch.where(mutate, torch.randint(0, 4, sequences.shape, generator=g), sequences)
        n_val = max(1, round(self.num_sequences * self.val_fraction))
        self.train_set, self.val_set = _Sequences(sequences[n_val:]), _Sequences(sequences[:n_val])

    def train_dataloader(self) -> DataLoader:
        sampler = anymae.EpochShuffleSampler(len(self.train_set), self.seed)
        return DataLoader(self.train_set, batch_size=self.batch_size, sampler=sampler, drop_last=True)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_set, batch_size=self.batch_size)
