"""The composed model on every layout the core defines, and the build-time contracts."""

from typing import Annotated

import pytest
import torch
from pydantic import Field

import anymae

from .toys import CoordTarget, PointTokenizer, SeriesTokenizer, VideoTokenizer, series_model, sinusoids


def small_parts(**overrides):
    parts = {
        "masker": anymae.RandomMasker(mask_ratio=0.75),
        "encoder": anymae.ViTEncoder(embed_dim=24, depth=1, num_heads=2),
        "decoder": anymae.MAEDecoder(embed_dim=12, depth=1, num_heads=2),
        "target": anymae.PatchTarget(),
    }
    parts.update(overrides)
    return parts


def test_series_grid_rank1_shapes_and_loss():
    model = series_model()
    out = model({"series": sinusoids(3)})
    assert out.pred.shape == out.target.shape == (3, 4, 8)  # 8 tokens, half hidden, 4 steps x 2 channels
    assert out.latent.shape == (3, 1 + 4, 32)
    assert out.loss.ndim == 0 and out.loss > 0


def test_video_grid_rank3():
    model = anymae.MaskedAutoencoder(tokenizer=VideoTokenizer(), **small_parts())
    out = model({"video": torch.randn(2, 1, 4, 8, 8)})
    assert out.tokens.layout.shape == (2, 2, 2)
    assert out.pred.shape == (2, 6, 32)


def test_points_with_learned_position_embedding():
    model = anymae.MaskedAutoencoder(tokenizer=PointTokenizer(), **small_parts(target=CoordTarget()))
    assert isinstance(model.encoder.pos_embed, anymae.MLPPositionEmbedding)
    out = model({"points": torch.rand(2, 16, 3)})
    assert out.pred.shape == (2, 12, 3)
    out.loss.backward()
    assert model.encoder.pos_embed.mlp[0].weight.grad is not None


def test_padding_stays_out_of_visible_set_and_loss():
    model = series_model(target=anymae.PatchTarget(normalize="none"))
    series = sinusoids(2)
    lengths = torch.tensor([32, 16])  # the second sample has 4 real patches of 8
    out = model({"series": series, "length": lengths})
    padding = out.tokens.padding_mask
    assert not torch.gather(padding, 1, out.mask.ids_keep).any()
    assert out.mask.num_visible == 2  # half of the shortest sample's 4 tokens
    # Garbage in the padded region changes neither the predictions of real tokens nor the loss.
    noisy = series.clone()
    noisy[1, :, 16:] = 1e3
    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    a = model({"series": series, "length": lengths}, generator=gen())
    b = model({"series": noisy, "length": lengths}, generator=gen())
    torch.testing.assert_close(a.loss, b.loss)
    valid = a.mask.decode_valid
    torch.testing.assert_close(a.pred[valid], b.pred[valid])


def test_explicit_mask_and_noise_are_honoured():
    model = series_model()
    batch = {"series": sinusoids(2)}
    mask = torch.zeros(2, 8, dtype=torch.bool)
    mask[:, -3:] = True  # hide the last three patches: forecasting by masking
    out = model(batch, mask=mask)
    assert out.mask.ids_masked.tolist() == [[5, 6, 7]] * 2
    noise = torch.linspace(0, 1, 8).expand(2, -1)
    assert model(batch, noise=noise).mask.ids_keep.tolist() == [[0, 1, 2, 3]] * 2


def test_reconstruct_returns_raw_format():
    model = series_model()
    images = model.reconstruct({"series": sinusoids(2)}, generator=torch.Generator().manual_seed(0))
    assert images["input"].shape == images["reconstruction"].shape == (2, 2, 32)
    torch.testing.assert_close(images["input"], sinusoids(2))
    visible = images["hidden"] == 0
    torch.testing.assert_close(images["reconstruction"][visible], images["input"][visible])
    assert (images["masked"][~visible] == 0).all()


def test_build_fails_on_decoder_target_mismatch():
    with pytest.raises(anymae.ConfigError, match=r"out_dim is 5 but the target predicts 8"):
        series_model(decoder=anymae.MAEDecoder(embed_dim=16, depth=1, num_heads=2, out_dim=5))


def test_build_fails_on_target_tokenizer_mismatch():
    with pytest.raises(
        anymae.ConfigError, match="PatchTarget needs raw_values from the tokenizer, which PointTokenizer"
    ):
        anymae.MaskedAutoencoder(tokenizer=PointTokenizer(), **small_parts())


def test_build_fails_on_masker_layout_mismatch():
    class GridOnly(anymae.RandomMasker):
        supported_layouts = frozenset({"grid"})

    with pytest.raises(anymae.ConfigError, match="GridOnly cannot mask a points in 3-D layout"):
        anymae.MaskedAutoencoder(tokenizer=PointTokenizer(), **small_parts(masker=GridOnly(), target=CoordTarget()))


def test_build_fails_on_head_count():
    with pytest.raises(anymae.ConfigError, match="divisible by num_heads"):
        anymae.ViTEncoder(embed_dim=30, num_heads=4)


def test_series_tokenizer_inverse_is_exact():
    tok = SeriesTokenizer()
    x = sinusoids(2)
    assert torch.equal(tok.inverse(tok({"series": x})), x)


def test_half_precision_weights_with_a_new_grid_shape():
    model = series_model().to(torch.bfloat16)
    longer = torch.cat([sinusoids(2), sinusoids(2, seed=1)], dim=-1).to(torch.bfloat16)  # 16 tokens, not 8
    out = model({"series": longer})
    assert out.pred.dtype == torch.bfloat16 and torch.isfinite(out.loss)


def test_an_unreadable_batch_gives_a_zero_loss_that_reaches_every_parameter():
    model = series_model()
    loss = model.training_step({}, 0)
    loss.backward()
    assert loss.item() == 0
    assert all(p.grad is not None for p in model.parameters())


def test_nan_in_padding_never_reaches_the_loss():
    values = torch.tensor([[1.0, float("nan")]])
    assert anymae.masked_mean(values, torch.tensor([[True, False]])).item() == 1.0


def test_channel_normalisation_needs_two_values_per_channel():
    with pytest.raises(anymae.ConfigError, match="at least 2 values per channel"):
        series_model(tokenizer=SeriesTokenizer(patch=1), target=anymae.PatchTarget(normalize="channel"))


def test_recorded_config_follows_the_most_derived_constructor():
    from anymae.config import component_config

    class Percent(anymae.RandomMasker):  # its own constructor, not validated: cannot be described, so kept as is
        def __init__(self, percent: int = 90) -> None:
            super().__init__(mask_ratio=percent / 100)

    class Described(anymae.RandomMasker):
        @anymae.validated
        def __init__(self, percent: int = 90) -> None:
            super().__init__(mask_ratio=percent / 100)

    undescribed = Percent(80)
    assert component_config(undescribed) is undescribed
    assert component_config(Described(80))["init_args"] == {"percent": 80}
    assert component_config(anymae.RandomMasker(0.6))["init_args"] == {"mask_ratio": 0.6}


class Plain(anymae.RandomMasker):  # its own constructor, not validated: passes its own arguments on
    def __init__(self, percent: int = 90) -> None:
        super().__init__(mask_ratio=percent / 100)


class Forwarding(Plain):
    @anymae.validated
    def __init__(self, label: str = "x", **kwargs) -> None:
        super().__init__(**kwargs)
        self.label = label


def test_forwarded_arguments_are_recorded_from_the_direct_parent_only():
    """A constructor that forwards **kwargs to a parent without @validated cannot know what the parent made of them:
    it is not described (not described wrongly, with the grandparent's arguments, which would not rebuild it)."""
    from anymae.config import component_config, instantiate_component

    forwarded = Forwarding("y", percent=80)
    assert forwarded.mask_ratio == 0.8 and component_config(forwarded) is forwarded
    own_only = Forwarding("y")  # nothing forwarded: its own arguments describe it
    assert component_config(own_only)["init_args"] == {"label": "y"}
    assert instantiate_component(component_config(own_only), anymae.Masker).mask_ratio == 0.9


def test_an_argument_given_by_position_is_named_in_the_error():
    class Ratio(anymae.RandomMasker):
        @anymae.validated
        def __init__(self, percent: Annotated[int, Field(ge=1, le=99)] = 90) -> None:
            super().__init__(mask_ratio=percent / 100)

    with pytest.raises(
        anymae.ConfigError, match=r"^Ratio\.percent: Input should be greater than or equal to 1 \(got 0\)$"
    ):
        Ratio(0)


def test_activation_checkpointing_gives_the_same_gradients():
    torch.manual_seed(0)
    plain = series_model()
    checkpointed = series_model(
        encoder=anymae.ViTEncoder(embed_dim=32, depth=2, num_heads=2, grad_checkpointing=True),
        decoder=anymae.MAEDecoder(embed_dim=16, depth=1, num_heads=2, grad_checkpointing=True),
    )
    checkpointed.load_state_dict(plain.state_dict())
    batch = {"series": sinusoids(3)}
    for model in (plain, checkpointed):
        model(batch, generator=torch.Generator().manual_seed(0)).loss.backward()
    for (name, a), b in zip(plain.named_parameters(), checkpointed.parameters(), strict=True):
        torch.testing.assert_close(a.grad, b.grad, msg=name)


def test_compile_flag_matches_eager(monkeypatch):
    """``compile=True`` sends the step after masking through ``torch.compile``: dynamo traces the encoder, decoder and
    target as they are, and the result matches eager. The backend is ``aot_eager`` here: inductor's code generation
    (half a minute on 2 CPU cores, and torch's own to test) is not what this checks."""
    compile_ = torch.compile
    calls = []
    monkeypatch.setattr(torch, "compile", lambda fn, **kw: calls.append(fn) or compile_(fn, backend="aot_eager", **kw))
    torch.manual_seed(0)
    eager = series_model()
    compiled = series_model(compile=True)
    assert calls == [compiled._score]
    compiled.load_state_dict(eager.state_dict())
    batch = {"series": sinusoids(3)}
    a = eager(batch, generator=torch.Generator().manual_seed(0))
    b = compiled(batch, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(a.loss, b.loss, rtol=1e-5, atol=1e-6)
    b.loss.backward()
    assert all(p.grad is not None for p in compiled.encoder.parameters())
