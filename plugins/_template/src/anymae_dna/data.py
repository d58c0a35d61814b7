"""Synthetic DNA: sequences stitched from random motifs, with point mutations and unread bases (N), generated in
memory and labelled by the family whose motifs they use."""

from typing import Annotated, Any

import torch
from pydantic import Field, PositiveInt

import anymae

from .tokenizers import UNKNOWN


class SyntheticDNADataModule(anymae.DataModule):
    """Sequences of ``length`` bases from ``families`` families: a sequence of family ``c`` is made of motifs drawn
    from family ``c``'s bank of ``motifs`` random ``motif_length``-mers, each base then mutated with probability
    ``mutation_rate``, and read as N (4) with probability ``unknown_rate``. Masked k-mers can be predicted from
    context; ``"label"`` is the family.

    Args:
        num_sequences: sequences generated.
        length: bases per sequence (a multiple of ``motif_length``).
        families: classes, each with its own motif bank.
        motifs: motifs per family.
        motif_length: bases per motif.
        mutation_rate: probability that a base is replaced by a random one.
        unknown_rate: probability that a base is unread (N), as sequencers report bases they cannot call.
        val_fraction: share held out for validation.
        batch_size, num_workers, seed: :class:`anymae.DataModule`'s (the seed also draws the sequences).
    """

    name = "synthetic-dna"  # what evaluation results call this data set

    @anymae.validated
    def __init__(
        self,
        num_sequences: PositiveInt = 1024,
        length: PositiveInt = 128,
        families: PositiveInt = 4,
        motifs: PositiveInt = 8,
        motif_length: PositiveInt = 8,
        mutation_rate: Annotated[float, Field(ge=0, le=1)] = 0.05,
        unknown_rate: Annotated[float, Field(ge=0, lt=1)] = 0.01,
        val_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.1,
        **kwargs: Any,  # batch_size, num_workers, seed: the kit's loaders (epoch shuffle, skip counts)
    ) -> None:
        super().__init__(**kwargs)
        if length % motif_length:
            raise anymae.ConfigError(f"SyntheticDNADataModule.length {length} is not a multiple of {motif_length}")
        self.num_sequences, self.length, self.families = num_sequences, length, families
        self.motifs, self.motif_length, self.mutation_rate = motifs, motif_length, mutation_rate
        self.unknown_rate = unknown_rate
        self.val_fraction = val_fraction

    def build(self) -> tuple[anymae.TensorSamples, anymae.TensorSamples]:
        g = torch.Generator().manual_seed(self.seed)
        banks = torch.randint(0, 4, (self.families, self.motifs, self.motif_length), generator=g)
        labels = torch.arange(self.num_sequences) % self.families
        picks = torch.randint(0, self.motifs, (self.num_sequences, self.length // self.motif_length), generator=g)
        sequences = banks[labels[:, None], picks].flatten(1)  # [num_sequences, length], vectorised
        mutate = torch.rand(sequences.shape, generator=g) < self.mutation_rate
        sequences = torch.where(mutate, torch.randint(0, 4, sequences.shape, generator=g), sequences)
        unread = torch.rand(sequences.shape, generator=g) < self.unknown_rate
        sequences = sequences.masked_fill(unread, UNKNOWN)  # N: a base the sequencer could not read
        train, val = anymae.split_indices(self.num_sequences, self.val_fraction, self.seed)
        return (
            anymae.TensorSamples({"sequence": sequences[train], "label": labels[train]}),
            anymae.TensorSamples({"sequence": sequences[val], "label": labels[val]}),
        )
