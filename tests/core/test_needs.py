"""Declared needs and the dry run: parts bind to the tokenizer's spec, the tokenizer computes only what is asked for,
and a part that emits another shape than it declares fails at build, naming the part."""

from pathlib import Path

import pytest
import torch

import anymae
from anymae import ConfigError, GridLayout, LayoutSpec, TokenBatch
from anymae.testing import fast_dev_run

from .toys import CoordTarget, PointTokenizer, SeriesTokenizer, sinusoids


class StepTokenizer(SeriesTokenizer):
    """The toy series tokenizer that also provides each patch's per-step differences, counting how often."""

    @anymae.validated
    def __init__(self, patch: int = 4, channels: int = 2, length: int = 32) -> None:
        super().__init__(patch, channels, length)
        self.provides = {"steps": (patch, channels), "smooth": None}
        self.computed: list[str] = []

    def forward(self, batch, needs=frozenset()):
        tokens = super().forward(batch)
        if "steps" not in needs:
            return tokens
        self.computed.append("steps")
        x = batch["series"]
        steps = torch.diff(x, dim=-1, prepend=x[..., :1]).unflatten(-1, (-1, self.patch)).permute(0, 2, 3, 1)
        return TokenBatch(tokens.tokens, tokens.layout, tokens.padding_mask, provided={"steps": steps})


def parts(**overrides):
    base = {
        "masker": anymae.RandomMasker(mask_ratio=0.5),
        "encoder": anymae.ViTEncoder(embed_dim=16, depth=1, num_heads=2),
        "decoder": anymae.MAEDecoder(embed_dim=8, depth=1, num_heads=2),
        "lr_schedule": anymae.WarmupCosine(warmup_epochs=1),
    }
    return {**base, **overrides}


def test_a_provided_quantity_is_computed_only_when_a_part_asks_for_it():
    plain = anymae.MaskedAutoencoder(tokenizer=StepTokenizer(), target=anymae.PatchTarget(), **parts())
    plain({"series": sinusoids(4)})
    assert plain.tokenizer.computed == []
    model = anymae.MaskedAutoencoder(tokenizer=StepTokenizer(), target=anymae.ProvidedTarget("steps"), **parts())
    assert model.target.dim_per_token == 4 * 2  # from the declared per-token shape
    out = model({"series": sinusoids(4)})
    assert out.target.shape == (4, 4, 8) and model.tokenizer.computed  # the dry run and this call asked
    steps = out.tokens.provided["steps"]
    assert steps.shape == (4, 8, 4, 2)
    fast_dev_run(model, [{"series": sinusoids(8)}])


def test_a_need_the_tokenizer_cannot_meet_fails_at_build_naming_both():
    with pytest.raises(ConfigError, match=r"model.target: ProvidedTarget needs steps from the tokenizer, which Series"):
        anymae.MaskedAutoencoder(tokenizer=SeriesTokenizer(), target=anymae.ProvidedTarget("steps"), **parts())
    with pytest.raises(ConfigError, match=r"'smooth' is a property, not data"):
        anymae.MaskedAutoencoder(tokenizer=StepTokenizer(), target=anymae.ProvidedTarget("smooth"), **parts())


def test_spec_provides_raw_values_and_inverse_from_what_the_tokenizer_has():
    assert set(StepTokenizer().spec.provides) == {"steps", "smooth", "raw_values", "inverse"}
    assert set(PointTokenizer().spec.provides) == set()  # learned features, no inverse
    with pytest.raises(
        ConfigError, match=r"^x: Who needs inverse from the tokenizer to draw, which PointTokenizer does"
    ):
        PointTokenizer().spec.to_compute({"inverse"}, "x", "Who", " to draw")
    assert StepTokenizer().spec.to_compute({"steps", "smooth", "raw_values"}, "x", "Who") == {"steps"}  # data only


class NarrowTokenizer(SeriesTokenizer):
    """Declares one more value per token than it emits."""

    @anymae.validated
    def __init__(self) -> None:
        super().__init__()
        self.token_dim += 1


class ExtraShapeTokenizer(StepTokenizer):
    """Computes 'steps' with another shape than it declares."""

    @anymae.validated
    def __init__(self) -> None:
        super().__init__()
        self.provides = {"steps": (3,)}


class OneValueTarget(anymae.PatchTarget):
    """Declares the token width, computes one value per token (would broadcast silently against the predictions)."""

    def forward(self, batch, tokens, mask):
        return super().forward(batch, tokens, mask).mean(dim=-1, keepdim=True)


class FailingMasker(anymae.RandomMasker):
    def forward(self, tokens, generator=None, noise=None):
        raise RuntimeError("cannot mask this")


@pytest.mark.parametrize(
    ("model", "message"),
    [
        (
            lambda: anymae.MaskedAutoencoder(tokenizer=NarrowTokenizer(), target=anymae.PatchTarget(), **parts()),
            r"^model.tokenizer: NarrowTokenizer emits tokens of shape \(2, 8, 8\) but declares token_dim=9",
        ),
        (
            lambda: anymae.MaskedAutoencoder(
                tokenizer=ExtraShapeTokenizer(), target=anymae.ProvidedTarget("steps"), **parts()
            ),
            r"^model.tokenizer: ExtraShapeTokenizer computes 'steps' of shape \(2, 8, 4, 2\) but declares \[3\]",
        ),
        (
            lambda: anymae.MaskedAutoencoder(tokenizer=SeriesTokenizer(), target=OneValueTarget(), **parts()),
            r"^model.target: OneValueTarget computes 1 value per token but declares dim_per_token=8",
        ),
        (
            lambda: anymae.MaskedAutoencoder(
                tokenizer=SeriesTokenizer(), target=anymae.PatchTarget(), **parts(masker=FailingMasker())
            ),
            r"^model.masker: FailingMasker failed on the tokenizer's example batch: RuntimeError: cannot mask this",
        ),
        (
            lambda: anymae.MaskedAutoencoder(
                tokenizer=SeriesTokenizer(), target=anymae.PatchTarget(), **parts(masker=anymae.RandomMasker(0.99))
            ),
            r"^model.masker: RandomMasker failed on the tokenizer's example batch: ValueError: RandomMasker keeps 0",
        ),
    ],
    ids=["token-width", "extra-shape", "target-width", "masker-error", "keeps-none"],
)
def test_the_dry_run_names_the_part_that_emits_another_shape(model, message):
    with pytest.raises(ConfigError, match=message):
        model()


def test_the_dry_run_changes_no_weight_no_statistic_and_no_global_random_state():
    torch.manual_seed(0)
    model = anymae.MaskedAutoencoder(tokenizer=StepTokenizer(), target=anymae.PatchTarget(), **parts())
    after_build = torch.rand(1)
    torch.manual_seed(0)
    twin = anymae.MaskedAutoencoder(tokenizer=StepTokenizer(), target=anymae.PatchTarget(), **parts())
    assert torch.equal(torch.rand(1), after_build)
    for a, b in zip(model.state_dict().values(), twin.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert model.training  # back in the mode it was built in


def test_shape_checks_run_on_real_batches_too():
    """A tokenizer whose width depends on the data (here: on the channel count it is fed) is caught at the first
    batch that differs."""
    model = anymae.MaskedAutoencoder(tokenizer=SeriesTokenizer(), target=anymae.PatchTarget(), **parts())
    with pytest.raises(ConfigError, match=r"model.tokenizer: SeriesTokenizer emits tokens of shape \(2, 8, 12\)"):
        model({"series": torch.randn(2, 3, 32)})


class InverseFigure(anymae.PeriodicFigure):
    folder, label = "figures", "figure"
    drawings = {anymae.RAW_VALUES: frozenset({anymae.INVERSE})}

    def __init__(self) -> None:
        super().__init__(every_n_epochs=0, count=2, seed=0)

    def draw(self, module, batch, generator, path: Path) -> Path:
        return path


def test_a_figure_that_cannot_draw_the_model_says_so_before_training():
    point_model = anymae.MaskedAutoencoder(tokenizer=PointTokenizer(), target=CoordTarget(), **parts())
    with pytest.raises(ConfigError, match=r"trainer.callbacks: InverseFigure draws predictions of raw_values; "):
        InverseFigure().check(point_model)
    series_model = anymae.MaskedAutoencoder(tokenizer=SeriesTokenizer(), target=anymae.PatchTarget(), **parts())
    InverseFigure().check(series_model)
    with pytest.raises(ConfigError, match="reconstruct: CoordTarget predictions cannot be mapped back"):
        point_model.reconstruct({"points": torch.rand(2, 64, 3)})


def test_a_figure_draws_the_first_batch_with_a_readable_sample_or_none(tmp_path):
    """A batch of unreadable files only (what collate leaves of it: the skip count) holds nothing to draw: the figure
    takes the next batch, and with none warns and writes no figure instead of failing the run at its end."""
    from types import SimpleNamespace

    from anymae.data.samples import SKIPPED_KEY

    def trainer(batches):
        data = SimpleNamespace(val_dataloader=lambda: batches, on_before_batch_transfer=lambda batch, _: batch)
        return SimpleNamespace(datamodule=data, is_global_zero=True, log_dir=str(tmp_path), default_root_dir="")

    readable = {"series": torch.randn(3, 2, 32), SKIPPED_KEY: torch.tensor(1)}
    batch = InverseFigure().sample_batch(trainer([{SKIPPED_KEY: torch.tensor(4)}, readable]))
    assert batch is not None and set(batch) == {"series"} and torch.equal(batch["series"], readable["series"][:2])
    model = anymae.MaskedAutoencoder(tokenizer=SeriesTokenizer(), target=anymae.PatchTarget(), **parts())
    with pytest.warns(RuntimeWarning, match="InverseFigure: no readable sample to draw; no figure written"):
        assert InverseFigure().write(trainer([{SKIPPED_KEY: torch.tensor(4)}]), model, "final.png") is None


def test_tokenizer_spec_is_all_a_target_sees():
    seen = []

    class Spy(anymae.PatchTarget):
        def build(self, ctx):
            tokens = ctx.tokens
            seen.append(tokens)
            super().build(ctx)

    anymae.MaskedAutoencoder(tokenizer=StepTokenizer(), target=Spy(), **parts())
    (spec,) = seen
    assert isinstance(spec, anymae.TokenizerSpec) and not isinstance(spec, anymae.Tokenizer)
    assert spec.name == "StepTokenizer" and spec.token_dim == 8 and spec.channels == 2
    assert spec.layout == LayoutSpec("grid", 1, (8,), variable_length=True) and spec.invertible


def test_provided_data_names_what_is_missing():
    tokens = TokenBatch(torch.zeros(1, 2, 3), GridLayout((2,)), provided={"a": torch.zeros(1, 2)})
    with pytest.raises(KeyError, match="the tokens carry no 'b' \\(provided: a\\); a part that reads it must list it"):
        tokens.provided["b"]
