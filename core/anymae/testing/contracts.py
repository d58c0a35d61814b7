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
import yaml
from torch import Tensor
from torch.utils.data import DataLoader

from ..config import ConfigError, component_config, instantiate_component
from ..masking import Masker, RandomMasker
from ..model.decoders import Decoder, MAEDecoder
from ..model.encoder import ViTEncoder
from ..model.targets import PatchTarget, Target
from ..model.tokenizer import Tokenizer
from ..model.types import GridLayout, LayoutSpec, MaskSpec, PointLayout, TokenBatch
from ..training.module import MaskedAutoencoder

__all__ = [
    "DataModuleContract",
    "DecoderContract",
    "MaskerContract",
    "TargetContract",
    "TokenizerContract",
    "available_devices",
    "config_roundtrip",
    "fast_dev_run",
    "tiny_model",
]


def available_devices() -> list[str]:
    """``["cpu"]``, plus ``"cuda"`` when a GPU is present."""
    return ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]


devices = pytest.mark.parametrize("device", available_devices())


def config_roundtrip(component: Any, base: type) -> Any:
    """Describe ``component`` as YAML, parse it back as a ``base`` subclass with jsonargparse (as LightningCLI
    does), rebuild it, and check that the rebuilt component describes itself identically. Returns the rebuilt one."""
    config = component_config(component)
    assert isinstance(config, dict) and "class_path" in config, (
        f"{type(component).__name__} cannot describe its configuration: decorate its __init__ with @anymae.validated"
    )
    rebuilt = instantiate_component(yaml.safe_load(yaml.safe_dump(config)), base)
    assert type(rebuilt) is type(component)
    assert component_config(rebuilt) == config
    return rebuilt


def tiny_model(
    tokenizer: Tokenizer, target: Target | None = None, masker: Masker | None = None, decoder: Decoder | None = None
) -> MaskedAutoencoder:
    """The smallest sensible model around ``tokenizer``: a 1-block ViT of width 24 and a 1-block decoder of width 12
    (sin-cos embeddings of grids of rank 1 to 3 fit both)."""
    return MaskedAutoencoder(
        tokenizer=tokenizer,
        masker=masker or RandomMasker(mask_ratio=0.5),
        encoder=ViTEncoder(embed_dim=24, depth=1, num_heads=2),
        decoder=decoder or MAEDecoder(embed_dim=12, depth=1, num_heads=2),
        target=target or PatchTarget(),
    )


class _Batches(pl.LightningDataModule):
    def __init__(self, batches: list[Mapping[str, Tensor]]) -> None:
        super().__init__()
        self.batches = batches

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.batches, batch_size=None)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.batches, batch_size=None)


def fast_dev_run(model: MaskedAutoencoder, data: pl.LightningDataModule | list[Mapping[str, Tensor]]) -> pl.Trainer:
    """One training and one validation step on the CPU (Lightning's ``fast_dev_run``); returns the trainer."""
    datamodule = data if isinstance(data, pl.LightningDataModule) else _Batches(data)
    trainer = pl.Trainer(
        fast_dev_run=True,
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, datamodule)
    loss = trainer.callback_metrics.get("train/loss")
    assert loss is not None and torch.isfinite(loss), f"training loss is {loss}"
    return trainer


def _constant_like(batch: Mapping[str, Tensor], value: float = 0.5) -> dict[str, Tensor]:
    """The batch with every floating-point tensor set to one value (integer tensors, e.g. labels, kept)."""
    return {k: torch.full_like(v, value) if torch.is_floating_point(v) else v for k, v in batch.items()}


def _check_tokens(tokens: TokenBatch, spec: LayoutSpec, token_dim: int, batch_size: int, device: str) -> None:
    x = tokens.tokens
    assert x.dim() == 3 and x.shape[0] == batch_size and x.shape[2] == token_dim, (
        f"tokens must be [B={batch_size}, N, D={token_dim}], got {tuple(x.shape)}"
    )
    assert torch.is_floating_point(x), f"tokens must be floating point, got {x.dtype}"
    assert x.device.type == torch.device(device).type, f"tokens on {x.device}, input on {device}"
    assert tokens.layout.kind == spec.kind, f"declared a {spec.kind} layout, produced {tokens.layout.kind}"
    positions = tokens.positions()
    assert positions.shape == (batch_size, x.shape[1], spec.rank), (
        f"positions must be [B, N, rank={spec.rank}], got {tuple(positions.shape)}"
    )
    if spec.kind == "grid":
        assert isinstance(tokens.layout, GridLayout)
        assert not torch.is_floating_point(positions), "grid positions must be integers"
        assert len(tokens.layout.shape) == spec.rank
        assert (positions >= 0).all() and (positions < torch.tensor(tokens.layout.shape, device=x.device)).all()
        if tokens.layout.dense:
            assert x.shape[1] == tokens.layout.num_cells, "a dense grid has one token per cell"
    else:
        assert isinstance(tokens.layout, PointLayout)
        assert torch.is_floating_point(positions), "point positions must be floating point"
    if tokens.padding_mask is not None:
        assert spec.variable_length, "a padding mask was produced but the layout spec says variable_length=False"
        assert tokens.padding_mask.dtype == torch.bool and tokens.padding_mask.shape == x.shape[:2]


class _Contract:
    """Shared plumbing: the class under test and its init arguments."""

    component_class: ClassVar[type]
    init_args: ClassVar[dict[str, Any]] = {}

    def make(self) -> Any:
        return self.component_class(**self.init_args)


def _on(batch: Mapping[str, Tensor], device: str) -> dict[str, Tensor]:
    return {k: v.to(device) if isinstance(v, Tensor) else v for k, v in batch.items()}


#: the core's parts that know no modality, which :class:`TokenizerContract` pairs every tokenizer with
CORE_PARTS = ("AdaptiveMasker", "HardPatchesMasker", "AttentionMasker", "CrossMAEDecoder", "SimMIM", "WeightedTarget")


class TokenizerContract(_Contract):
    """Checks a :class:`~anymae.Tokenizer`. Subclasses set ``component_class`` and ``init_args``; sample data comes
    from the tokenizer's ``example_batch`` (override :meth:`make_batch` for other data), and override
    :meth:`make_target` when :class:`~anymae.PatchTarget` does not fit."""

    batch_size: ClassVar[int] = 3

    def make_batch(self, batch_size: int, device: str) -> dict[str, Tensor]:
        return _on(self.make().example_batch(batch_size), device)

    def make_target(self) -> Target:
        return PatchTarget()

    @devices
    def test_tokens_shapes_positions_and_device(self, device: str) -> None:
        tokenizer = self.make().to(device)
        assert isinstance(tokenizer, Tokenizer)
        assert tokenizer.token_dim > 0 and isinstance(tokenizer.layout, LayoutSpec)
        tokens = tokenizer(self.make_batch(self.batch_size, device))
        streams = self.batch_size * tokenizer.streams_per_sample  # token sequences: one per sample, or per channel
        _check_tokens(tokens, tokenizer.layout, tokenizer.token_dim, streams, device)
        assert not tokens.extras, f"computed {sorted(tokens.extras)} though nothing asked for them"

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
            assert set(tokens.extras) == {name}, f"asked for {name!r}, computed {sorted(tokens.extras)}"
            value = tokens.extras[name]
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
        again = tokenizer(_replace_raw(batch, raw))
        torch.testing.assert_close(again.tokens, tokens.tokens)

    def test_constant_input_gives_finite_loss(self) -> None:
        tokenizer = self.make()
        model = tiny_model(tokenizer, self.make_target())
        out = model(_constant_like(self.make_batch(self.batch_size, "cpu")))
        assert torch.isfinite(out.tokens.tokens).all() and torch.isfinite(out.loss), "NaN on an all-constant input"

    def test_fast_dev_run(self) -> None:
        fast_dev_run(tiny_model(self.make(), self.make_target()), [self.make_batch(self.batch_size, "cpu")])

    @pytest.mark.parametrize("part", CORE_PARTS)
    def test_pairs_with_the_cores_modality_free_parts(self, part: str) -> None:
        """The core's parts that know no modality -- learned maskers (AdaMAE, HPM, AttMask), CrossMAE's decoder with
        feature mixing, SimMIM's encoder and head, a weighted pair of targets -- train on this tokenizer's tokens."""
        model = _paired_model(part, self.make(), self.make_target)
        out = model(self.make_batch(self.batch_size, "cpu"), generator=torch.Generator().manual_seed(0))
        assert torch.isfinite(out.loss), f"{part}: loss {out.loss}"
        out.loss.backward()
        # every trainable parameter takes part in the loss: DDP refuses a model where one does not
        unused = [name for name, p in model.named_parameters() if p.requires_grad and p.grad is None]
        assert not unused, f"{part}: trainable parameters left out of the loss: {unused}"

    def test_config_roundtrips_through_yaml(self) -> None:
        config_roundtrip(self.make(), Tokenizer)


def _paired_model(part: str, tokenizer: Tokenizer, make_target: Any) -> MaskedAutoencoder:
    """A tiny model around ``tokenizer`` with one of :data:`CORE_PARTS` in it (half the tokens hidden)."""
    from ..masking import AdaptiveMasker, AttentionMasker, HardPatchesMasker
    from ..model.decoders import CrossMAEDecoder, LinearDecoder
    from ..model.targets import WeightedTarget

    encoder = ViTEncoder(embed_dim=24, depth=1, num_heads=2, mask_token=part == "SimMIM")
    parts: dict[str, Any] = {
        "masker": RandomMasker(mask_ratio=0.5),
        "decoder": MAEDecoder(embed_dim=12, depth=1, num_heads=2),
        "target": make_target(),
    }
    if part == "AdaptiveMasker":
        parts["masker"] = AdaptiveMasker(mask_ratio=0.5, num_heads=2)
    elif part == "HardPatchesMasker":
        parts["masker"] = HardPatchesMasker(mask_ratio=0.5, predictor_depth=1, predictor_dim=12, predictor_heads=2)
    elif part == "AttentionMasker":
        parts["masker"] = AttentionMasker(mask_ratio=0.5, mode="hints", show_max=0.5)
    elif part == "CrossMAEDecoder":
        parts["decoder"] = CrossMAEDecoder(embed_dim=12, depth=2, num_heads=2, weight_fm=True)
    elif part == "SimMIM":
        parts["decoder"] = LinearDecoder()
    elif part == "WeightedTarget":
        parts["target"] = WeightedTarget({"first": make_target(), "second": make_target()}, {"second": 0.5})
    return MaskedAutoencoder(tokenizer=tokenizer, encoder=encoder, **parts)


def _replace_raw(batch: Mapping[str, Tensor], raw: Tensor) -> dict[str, Tensor]:
    """Put the inverse's output back into the batch entry of the same shape."""
    keys = [k for k, v in batch.items() if isinstance(v, Tensor) and v.shape == raw.shape]
    assert keys, f"inverse() returned {tuple(raw.shape)}, which matches no batch entry"
    return {**batch, keys[0]: raw}


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
            _check_spec(spec, tokens, device)

    def test_padding_is_never_visible(self) -> None:
        masker = self.make()
        if "grid" not in masker.supported_layouts:
            pytest.skip("no grid layout")
        tokens = self.make_tokens("grid", self.batch_size, "cpu", padded=True)
        spec = masker(tokens, generator=torch.Generator().manual_seed(0))
        _check_spec(spec, tokens, "cpu")
        assert not torch.gather(tokens.padding_mask, 1, spec.ids_keep).any(), "a padding token is visible"
        if spec.decode_valid is not None:
            assert torch.equal(spec.decode_valid, ~torch.gather(tokens.padding_mask, 1, spec.ids_decode))

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


def _check_spec(spec: MaskSpec, tokens: TokenBatch, device: str) -> None:
    b, n = tokens.tokens.shape[:2]
    k = spec.ids_keep.shape[1]
    assert spec.ids_keep.shape == (b, k) and spec.ids_masked.shape == (b, n - k), "every sample keeps K visible"
    assert spec.mask.shape == (b, n) and spec.mask.dtype == torch.bool
    assert spec.ids_keep.device.type == torch.device(device).type, "masks must be on the tokens' device"
    assert (spec.mask.sum(dim=1) == n - k).all()
    order = torch.cat([spec.ids_keep, spec.ids_masked], dim=1)
    assert torch.equal(order.sort(dim=1).values, torch.arange(n, device=order.device).expand(b, -1)), "a permutation"
    assert torch.equal(torch.gather(order, 1, spec.ids_restore), torch.arange(n, device=order.device).expand(b, -1))
    assert not torch.gather(spec.mask, 1, spec.ids_keep).any() and torch.gather(spec.mask, 1, spec.ids_masked).all()
    decoded_hidden = torch.gather(spec.mask, 1, spec.ids_decode)
    if spec.decode_valid is None:
        assert decoded_hidden.all(), "decoded tokens the encoder saw must be marked invalid in decode_valid"
    else:
        assert not (spec.decode_valid & ~decoded_hidden).any(), "a decoded token the encoder saw counts in the loss"


class TargetContract(_Contract):
    """Checks a :class:`~anymae.Target` with the tokenizer it is meant for (:meth:`make_tokenizer`; sample data from
    its ``example_batch`` unless :meth:`make_batch` is overridden): its needs are offered, ``bind`` sets the size,
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
        return _on(self.make_tokenizer().example_batch(batch_size), device)

    def _bound(self, device: str = "cpu") -> tuple[Target, Tokenizer]:
        target, tokenizer = self.make().to(device), self.make_tokenizer().to(device)
        spec = tokenizer.spec
        spec.require(target.needs, "target", type(target).__name__)  # raises naming what is missing
        target.bind(spec)
        assert target.dim_per_token > 0
        return target, tokenizer

    def _tokens(self, tokenizer: Tokenizer, target: Target, batch: Mapping[str, Tensor]) -> TokenBatch:
        return tokenizer(batch, tokenizer.spec.require(target.needs, "target", type(target).__name__))

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
        loss = target.loss(self.perfect_prediction(values), values, spec)
        assert loss.dim() == 0 and loss.item() == pytest.approx(0.0, abs=1e-4), "a perfect prediction must cost ~0"
        subset = spec.with_decode(spec.ids_decode[:, :1], tokens.padding_mask)
        assert target(batch, tokens, subset).shape[1] == 1, "targets must follow ids_decode"

    def test_constant_input_gives_finite_targets(self) -> None:
        target, tokenizer = self._bound()
        batch = _constant_like(self.make_batch(self.batch_size, "cpu"))
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

    def _setup(self, device: str) -> tuple[Decoder, TokenBatch, MaskSpec, Tensor]:
        decoder = self.make()
        layout = LayoutSpec("grid", 2, (4, 6))
        decoder.build(self.encoder_dim, self.out_dim, layout)
        decoder.to(device)
        tokens = TokenBatch(torch.randn(self.batch_size, 24, 5, device=device), GridLayout((4, 6)))
        spec = MaskSpec.from_noise(torch.rand(self.batch_size, 24, device=device), 6)
        latent = torch.randn(self.batch_size, 1 + 6, self.encoder_dim, device=device)
        return decoder, tokens, spec, latent

    @devices
    def test_one_prediction_per_decoded_token(self, device: str) -> None:
        decoder, tokens, spec, latent = self._setup(device)
        pred = decoder(latent, tokens, spec, 1)
        assert pred.shape == (self.batch_size, spec.ids_decode.shape[1], self.out_dim)
        assert pred.device.type == torch.device(device).type and torch.isfinite(pred).all()
        subset = spec.with_decode(spec.ids_decode[:, :3])
        assert decoder(latent, tokens, subset, 1).shape == (self.batch_size, 3, self.out_dim)

    def test_predictions_never_see_token_values(self) -> None:
        decoder, tokens, spec, latent = self._setup("cpu")
        decoder.eval()
        leaked = tokens.with_tokens(torch.randn_like(tokens.tokens) * 100)
        torch.testing.assert_close(decoder(latent, tokens, spec, 1), decoder(latent, leaked, spec, 1))

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
        _check_tokens(tokens, tokenizer.layout, tokenizer.token_dim, size * tokenizer.streams_per_sample, "cpu")
        assert torch.isfinite(tokens.tokens).all()

    def test_validation_data(self) -> None:
        datamodule = self._setup()
        self._first(datamodule, datamodule.val_dataloader())

    def test_fast_dev_run(self) -> None:
        fast_dev_run(tiny_model(self.make_tokenizer(), self.make_target()), self.make())

    def test_config_roundtrips_through_yaml(self) -> None:
        config_roundtrip(self.make(), pl.LightningDataModule)
