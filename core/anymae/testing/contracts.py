"""Contract tests for components: what the core relies on, checked on any plugin's classes.

A plugin subclasses a contract in its test suite, names its class and init arguments, and supplies sample data;
pytest collects every check. For example::

    from anymae.testing import TokenizerContract

    class TestDNATokenizer(TokenizerContract):
        component_class = DNATokenizer
        init_args = {"length": 64, "k": 4}

Sample data comes from the tokenizer's own ``example_batch`` (override ``make_batch`` for other data). Contracts:
:class:`TokenizerContract`, :class:`MaskerContract`, :class:`TargetContract`, :class:`DecoderContract`,
:class:`DataModuleContract`. Each checks shapes and dtypes, positions of the declared kind, devices followed (CPU, and
CUDA when present), finite outputs on all-constant inputs, that the configuration round-trips through YAML, and (for
the data-carrying ones) a ``fast_dev_run`` of a tiny model built with the component.

This module needs pytest; ``import anymae`` does not import it.
"""

import contextlib
from collections.abc import Mapping
from typing import Any, ClassVar

import lightning.pytorch as pl
import pytest
import torch
from torch import Tensor
from torch.utils.data import DataLoader

from ..config import ConfigError
from ..masking.base import Masker
from ..model.decoders.base import Decoder
from ..model.specs import LayoutSpec, TokenizerSpec
from ..model.targets.base import Target, masked_mean
from ..model.targets.patch import PatchTarget
from ..model.tokenizer import Tokenizer
from ..model.types import EncoderOutput, GridLayout, MaskSpec, PointLayout, TokenBatch
from .tools import (
    CORE_PARTS,
    available_devices,
    build_context,
    check_spec,
    check_tokens,
    config_roundtrip,
    constant_like,
    fast_dev_run,
    multimodal_model,
    on_device,
    paired_model,
    replace_raw,
    tiny_model,
)

__all__ = ["DataModuleContract", "DecoderContract", "MaskerContract", "TargetContract", "TokenizerContract"]

devices = pytest.mark.parametrize("device", available_devices())


class _Contract:
    """Shared plumbing: the class under test and its init arguments."""

    component_class: ClassVar[type]
    init_args: ClassVar[dict[str, Any]] = {}

    def make(self) -> Any:
        return self.component_class(**self.init_args)


class TokenizerContract(_Contract):
    """Checks a :class:`~anymae.Tokenizer`. Subclasses set ``component_class`` and ``init_args``; sample data comes
    from the tokenizer's ``example_batch`` (override :meth:`make_batch` for other data), and override
    :meth:`make_target` when :class:`~anymae.PatchTarget` does not fit."""

    batch_size: ClassVar[int] = 3

    def make_batch(self, batch_size: int, device: str) -> dict[str, Tensor]:
        return on_device(self.make().example_batch(batch_size), device)

    def make_target(self) -> Target:
        return PatchTarget()

    @devices
    def test_tokens_shapes_positions_and_device(self, device: str) -> None:
        tokenizer = self.make().to(device)
        assert isinstance(tokenizer, Tokenizer)
        assert tokenizer.token_dim > 0 and isinstance(tokenizer.layout, LayoutSpec)
        tokens = tokenizer(self.make_batch(self.batch_size, device))
        streams = self.batch_size * tokenizer.streams_per_sample  # token sequences: one per sample, or per channel
        check_tokens(tokens, tokenizer.layout, tokenizer.token_dim, streams, device)
        assert not tokens.provided, f"computed {sorted(tokens.provided)} though nothing asked for them"

    def test_example_batch_is_reproducible_and_sized(self) -> None:
        tokenizer = self.make()
        first, again = tokenizer.example_batch(self.batch_size), tokenizer.example_batch(self.batch_size)
        assert isinstance(first, Mapping) and first, "example_batch must return a non-empty dict of tensors"
        assert first.keys() == again.keys() and all(torch.equal(first[k], again[k]) for k in first), (
            "example_batch must draw from a fixed seed"
        )
        sizes = {v.shape[0] for v in first.values() if isinstance(v, Tensor) and v.dim() > 0}
        assert sizes == {self.batch_size}, f"every entry must hold batch_size={self.batch_size} samples, got {sizes}"

    def test_provides_what_it_declares_and_only_what_is_asked(self) -> None:
        tokenizer = self.make()
        batch = self.make_batch(self.batch_size, "cpu")
        for name, shape in tokenizer.provides.items():
            tokens = tokenizer(batch, frozenset({name}))
            if shape is None:  # a property, not data
                continue
            assert set(tokens.provided) == {name}, f"asked for {name!r}, computed {sorted(tokens.provided)}"
            value = tokens.provided[name]
            expected = (*tokens.tokens.shape[:2], *shape)
            assert tuple(value.shape) == expected, f"{name} is {tuple(value.shape)}, declared {expected}"

    def test_inverse_roundtrip_where_declared(self) -> None:
        tokenizer = self.make()
        batch = self.make_batch(self.batch_size, "cpu")
        tokens = tokenizer(batch)
        try:
            raw = tokenizer.inverse(tokens)
        except NotImplementedError:
            pytest.skip(f"{type(tokenizer).__name__} declares no inverse")
        again = tokenizer(replace_raw(batch, raw))
        torch.testing.assert_close(again.tokens, tokens.tokens)

    def test_constant_input_gives_finite_loss(self) -> None:
        tokenizer = self.make()
        model = tiny_model(tokenizer, self.make_target())
        out = model(constant_like(self.make_batch(self.batch_size, "cpu")))
        assert torch.isfinite(out.tokens.tokens).all() and torch.isfinite(out.loss), "NaN on an all-constant input"

    def test_fast_dev_run(self) -> None:
        fast_dev_run(tiny_model(self.make(), self.make_target()), [self.make_batch(self.batch_size, "cpu")])

    @pytest.mark.parametrize("part", CORE_PARTS)
    def test_pairs_with_the_cores_modality_free_parts(self, part: str) -> None:
        """The core's parts that know no modality -- learned maskers (AdaMAE, HPM, AttMask), CrossMAE's decoder with
        feature mixing, SimMIM's encoder and head, a weighted pair of targets -- train on this tokenizer's tokens."""
        model = paired_model(part, self.make(), self.make_target)
        out = model(self.make_batch(self.batch_size, "cpu"), generator=torch.Generator().manual_seed(0))
        assert torch.isfinite(out.loss), f"{part}: loss {out.loss}"
        out.loss.backward()
        # every trainable parameter takes part in the loss: DDP refuses a model where one does not
        unused = [name for name, p in model.named_parameters() if p.requires_grad and p.grad is None]
        assert not unused, f"{part}: trainable parameters left out of the loss: {unused}"

    def test_works_inside_a_multimodal_model(self) -> None:
        """Unchanged, as two modalities of one multi-modal model (its batch entries prefixed ``first/`` and
        ``second/``): both are masked, encoded, decoded and scored, every parameter trains, each modality can be
        reconstructed or read alone."""
        from ..model.pretrained import PretrainedEncoder

        names = ("first", "second")
        model = multimodal_model({n: self.make() for n in names}, {n: self.make_target() for n in names})
        own = self.make_batch(self.batch_size, "cpu")
        batch = {f"{n}/{key}": value for n in names for key, value in own.items()}
        out = model(batch, generator=torch.Generator().manual_seed(0))
        assert torch.isfinite(out.loss) and {*names, "contrastive"} <= set(out.terms), out.terms
        out.loss.backward()
        unused = [name for name, p in model.named_parameters() if p.requires_grad and p.grad is None]
        assert not unused, f"trainable parameters left out of the loss: {unused}"
        alone = PretrainedEncoder(model.tokenizer, model.encoder)
        alone.use_modalities(["second"])
        assert torch.isfinite(alone(batch).pooled).all()
        alone.use_modalities(None)  # the model's own tokenizer: every modality again
        if model.target.predicts is not None and self.make().spec.invertible:
            model.eval()
            drawn = model.reconstruct(batch, generator=torch.Generator().manual_seed(0), modality="first")
            assert drawn["reconstruction"].shape == drawn["input"].shape

    def test_config_roundtrips_through_yaml(self) -> None:
        config_roundtrip(self.make(), Tokenizer)


class MaskerContract(_Contract):
    """Checks a :class:`~anymae.Masker` on every layout it declares in ``supported_layouts``: exact and equal
    visible counts, a consistent :class:`~anymae.MaskSpec`, padding never visible, reproducible from a generator,
    different across draws, on the tokens' device. Override :meth:`make_tokens` to test other shapes."""

    batch_size: ClassVar[int] = 4
    #: a masker whose masks depend only on the layout (forecasting's "hide the end"): draws need not differ
    deterministic: ClassVar[bool] = False

    def make_tokens(self, kind: str, batch_size: int, device: str, padded: bool = False) -> TokenBatch:
        if kind == "points":
            coords = torch.rand(batch_size, 64, 3, device=device)
            return TokenBatch(torch.zeros(batch_size, 64, 8, device=device), PointLayout(coords))
        shape = (4, 8, 8)  # a rank-3 grid; maskers for lower ranks override make_tokens
        padding = None
        if padded:
            n = 4 * 8 * 8
            lengths = torch.tensor([n, n - 64, n - 100, n][:batch_size], device=device)
            padding = torch.arange(n, device=device)[None, :] >= lengths[:, None]
        return TokenBatch(torch.zeros(batch_size, 4 * 8 * 8, 8, device=device), GridLayout(shape), padding)

    def _layouts(self, masker: Masker) -> list[str]:
        return sorted(masker.supported_layouts)

    @devices
    def test_spec_is_consistent_with_equal_counts(self, device: str) -> None:
        masker = self.make()
        for kind in self._layouts(masker):
            tokens = self.make_tokens(kind, self.batch_size, device)
            spec = masker(tokens, generator=torch.Generator(device=device).manual_seed(0))
            check_spec(spec, tokens, device)

    def test_padding_is_never_visible(self) -> None:
        masker = self.make()
        if "grid" not in masker.supported_layouts:
            pytest.skip("no grid layout")
        tokens = self.make_tokens("grid", self.batch_size, "cpu", padded=True)
        spec = masker(tokens, generator=torch.Generator().manual_seed(0))
        check_spec(spec, tokens, "cpu")
        padding = tokens.padding_mask
        assert padding is not None, "make_tokens(padded=True) gave no padding mask"
        assert not torch.gather(padding, 1, spec.ids_keep).any(), "a padding token is visible"
        if spec.decode_valid is not None:
            assert torch.equal(spec.decode_valid, ~torch.gather(padding, 1, spec.ids_decode))

    def test_reproducible_and_different_across_draws(self) -> None:
        masker = self.make()
        kind = self._layouts(masker)[0]
        tokens = self.make_tokens(kind, self.batch_size, "cpu")
        first = masker(tokens, generator=torch.Generator().manual_seed(1))
        again = masker(tokens, generator=torch.Generator().manual_seed(1))
        assert torch.equal(first.mask, again.mask), "the same seed must give the same masks"
        if not self.deterministic:
            generator = torch.Generator().manual_seed(1)
            a, b = masker(tokens, generator=generator), masker(tokens, generator=generator)
            assert not torch.equal(a.mask, b.mask), "successive draws must differ"

    def test_refuses_unsupported_layouts_at_build_time(self) -> None:
        masker = self.make()
        for spec in (LayoutSpec("grid", 1, (16,)), LayoutSpec("grid", 2, (4, 4)), LayoutSpec("points", 3)):
            ranks = masker.grid_ranks
            if spec.kind in masker.supported_layouts and (spec.kind != "grid" or ranks is None or spec.rank in ranks):
                with contextlib.suppress(ConfigError):  # other limits (sizes) may still apply; the kind is served
                    masker.check_layout(spec)
            else:
                with pytest.raises(ConfigError):
                    masker.check_layout(spec)

    def test_config_roundtrips_through_yaml(self) -> None:
        config_roundtrip(self.make(), Masker)


class TargetContract(_Contract):
    """Checks a :class:`~anymae.Target` with the tokenizer it is meant for (:meth:`make_tokenizer`; sample data from
    its ``example_batch`` unless :meth:`make_batch` is overridden): its needs are provided, ``build`` sets the size,
    targets cover exactly the decoded tokens, the loss is ~0 for :meth:`perfect_prediction` and targets are finite on
    constant inputs."""

    batch_size: ClassVar[int] = 3

    def make_tokenizer(self) -> Tokenizer:
        raise NotImplementedError("return the tokenizer this target is computed from")

    def perfect_prediction(self, target: Tensor) -> Tensor:
        """Predictions whose loss against ``target`` should be ~0 (the target itself for regression; override for
        classification, e.g. confident logits)."""
        return target

    def make_batch(self, batch_size: int, device: str) -> dict[str, Tensor]:
        return on_device(self.make_tokenizer().example_batch(batch_size), device)

    def _bound(self, device: str = "cpu") -> tuple[Target, Tokenizer]:
        target, tokenizer = self.make().to(device), self.make_tokenizer().to(device)
        spec = tokenizer.spec
        spec.to_compute(target.needs, "target", type(target).__name__)  # raises naming what is missing
        target.build(build_context(spec))
        assert target.dim_per_token > 0
        return target, tokenizer

    def _tokens(self, tokenizer: Tokenizer, target: Target, batch: Mapping[str, Tensor]) -> TokenBatch:
        return tokenizer(batch, tokenizer.spec.to_compute(target.needs, "target", type(target).__name__))

    @devices
    def test_targets_for_the_decoded_tokens(self, device: str) -> None:
        target, tokenizer = self._bound(device)
        batch = self.make_batch(self.batch_size, device)
        tokens = self._tokens(tokenizer, target, batch)
        n = tokens.num_tokens
        spec = MaskSpec.from_noise(torch.rand(self.batch_size, n, device=device), max(1, n // 4), tokens.padding_mask)
        values = target(batch, tokens, spec)
        assert values.shape == (self.batch_size, spec.ids_decode.shape[1], target.dim_per_token)
        assert values.device.type == torch.device(device).type
        loss = masked_mean(target.token_loss(self.perfect_prediction(values), values, spec, tokens), spec.decode_valid)
        assert loss.dim() == 0 and loss.item() == pytest.approx(0.0, abs=1e-4), "a perfect prediction must cost ~0"
        subset = spec.with_decode(spec.ids_decode[:, :1], tokens.padding_mask)
        assert target(batch, tokens, subset).shape[1] == 1, "targets must follow ids_decode"

    def test_constant_input_gives_finite_targets(self) -> None:
        target, tokenizer = self._bound()
        batch = constant_like(self.make_batch(self.batch_size, "cpu"))
        tokens = self._tokens(tokenizer, target, batch)
        spec = MaskSpec.from_noise(torch.rand(self.batch_size, tokens.num_tokens), 1, tokens.padding_mask)
        assert torch.isfinite(target(batch, tokens, spec)).all(), "NaN on an all-constant input"

    def test_fast_dev_run(self) -> None:
        fast_dev_run(tiny_model(self.make_tokenizer(), self.make()), [self.make_batch(self.batch_size, "cpu")])

    def test_config_roundtrips_through_yaml(self) -> None:
        config_roundtrip(self.make(), Target)


class DecoderContract(_Contract):
    """Checks a :class:`~anymae.Decoder`: one prediction per decoded index, in that order, that depends on the
    latents and positions only (never on the hidden tokens' values), on the latents' device."""

    batch_size: ClassVar[int] = 2
    encoder_dim: ClassVar[int] = 24
    out_dim: ClassVar[int] = 10

    def _setup(self, device: str) -> tuple[Decoder, TokenBatch, MaskSpec, EncoderOutput]:
        decoder = self.make()
        spec = TokenizerSpec("Grid", 5, LayoutSpec("grid", 2, (4, 6)))
        decoder.build(build_context(spec, self.out_dim, embed_dim=self.encoder_dim))
        decoder.to(device)
        tokens = TokenBatch(torch.randn(self.batch_size, 24, 5, device=device), GridLayout((4, 6)))
        mask = MaskSpec.from_noise(torch.rand(self.batch_size, 24, device=device), 6)
        latent = torch.randn(self.batch_size, 1 + 6, self.encoder_dim, device=device)
        return decoder, tokens, mask, EncoderOutput(latent, mask.ids_keep, 1)

    @devices
    def test_one_prediction_per_decoded_token(self, device: str) -> None:
        decoder, tokens, spec, latent = self._setup(device)
        pred = decoder(latent, tokens, spec)
        assert pred.shape == (self.batch_size, spec.ids_decode.shape[1], self.out_dim)
        assert pred.device.type == torch.device(device).type and torch.isfinite(pred).all()
        subset = spec.with_decode(spec.ids_decode[:, :3])
        assert decoder(latent, tokens, subset).shape == (self.batch_size, 3, self.out_dim)

    def test_predictions_never_see_token_values(self) -> None:
        decoder, tokens, spec, latent = self._setup("cpu")
        decoder.eval()
        leaked = tokens.with_tokens(torch.randn_like(tokens.tokens) * 100)
        torch.testing.assert_close(decoder(latent, tokens, spec), decoder(latent, leaked, spec))

    def test_config_roundtrips_through_yaml(self) -> None:
        config_roundtrip(self.make(), Decoder)


class DataModuleContract(_Contract):
    """Checks a ``LightningDataModule``: batches are dicts of tensors with one batch size, the tokenizer the data is
    meant for accepts them, validation data exists, and a tiny model trains on it for a step."""

    def make_tokenizer(self) -> Tokenizer:
        raise NotImplementedError("return the tokenizer for this data")

    def make_target(self) -> Target:
        return PatchTarget()

    def _setup(self) -> pl.LightningDataModule:
        datamodule = self.make()
        assert isinstance(datamodule, pl.LightningDataModule)
        datamodule.setup("fit")
        return datamodule

    def _first(self, datamodule: pl.LightningDataModule, loader: DataLoader) -> dict[str, Tensor]:
        batch = datamodule.on_before_batch_transfer(next(iter(loader)), 0)
        assert isinstance(batch, Mapping) and batch, "a batch must be a non-empty dict of tensors"
        sizes = {v.shape[0] for v in batch.values() if isinstance(v, Tensor) and v.dim() > 0}
        assert len(sizes) == 1, f"every entry of a batch must share the batch size, got {sizes}"
        return dict(batch)

    def test_batches_fit_the_tokenizer(self) -> None:
        datamodule = self._setup()
        batch = self._first(datamodule, datamodule.train_dataloader())
        tokenizer = self.make_tokenizer()
        tokens = tokenizer(batch)
        size = next(v.shape[0] for v in batch.values() if isinstance(v, Tensor) and v.dim() > 0)
        check_tokens(tokens, tokenizer.layout, tokenizer.token_dim, size * tokenizer.streams_per_sample, "cpu")
        assert torch.isfinite(tokens.tokens).all()

    def test_validation_data(self) -> None:
        datamodule = self._setup()
        self._first(datamodule, datamodule.val_dataloader())

    def test_fast_dev_run(self) -> None:
        fast_dev_run(tiny_model(self.make_tokenizer(), self.make_target()), self.make())

    def test_config_roundtrips_through_yaml(self) -> None:
        config_roundtrip(self.make(), pl.LightningDataModule)
