"""Learned and data-aware maskers (AdaMAE, HPM, AttMask): the contract without a model, what each learns or reads,
and a training step of a tiny model with each."""

import math

import pytest
import torch
from torch import Tensor, nn

from anymae import (
    AdaptiveMasker,
    AttentionMasker,
    BuildContext,
    ConfigError,
    EncoderOutput,
    GridLayout,
    HardPatchesMasker,
    LayoutSpec,
    Step,
    TokenBatch,
    TokenizerSpec,
    ViTEncoder,
)
from anymae.masking.learned.hard_patches import ranking_loss, standardised_loss
from anymae.testing import MaskerContract, build_context, fast_dev_run, tiny_model

from .toys import SeriesTokenizer, sinusoids

N, DIM = 16, 4
SPEC = TokenizerSpec("Toy", DIM, LayoutSpec("grid", 1, (N,)))


def tokens(batch: int = 4, seed: int = 0, padding: Tensor | None = None) -> TokenBatch:
    x = torch.randn(batch, N, DIM, generator=torch.Generator().manual_seed(seed))
    return TokenBatch(x, GridLayout((N,)), padding)


def encoder(class_token: bool = True) -> ViTEncoder:
    torch.manual_seed(0)
    enc = ViTEncoder(embed_dim=16, depth=1, num_heads=2, class_token=class_token)
    enc.build(build_context(SPEC))
    return enc


class Clock:
    """The training progress a masker reads (the model's ``progress`` in a real run), set by the tests."""

    value = 1.0

    def __call__(self) -> float:
        return self.value


CLOCK = Clock()


@pytest.fixture(autouse=True)
def _finished_training():
    CLOCK.value = 1.0


def build(masker, enc) -> None:
    masker.build(BuildContext(SPEC, enc, progress=CLOCK))


def step(spec, batch: TokenBatch, token_loss: Tensor, latent: Tensor | None = None) -> Step:
    """A step as a model hands it to the masker: only the mask, the tokens, the latents and the per-token loss."""
    latent = torch.zeros(batch.batch_size, 1 + spec.num_visible, 16) if latent is None else latent
    empty = torch.zeros(batch.batch_size, spec.ids_decode.shape[1], 0)
    return Step({}, batch, spec, EncoderOutput(latent, spec.ids_keep, 1), empty, empty, token_loss)


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------------------------------- contracts (no model)
class TestAdaptiveMaskerContract(MaskerContract):
    component_class = AdaptiveMasker
    init_args = {"mask_ratio": 0.75}


class TestHardPatchesMaskerContract(MaskerContract):
    component_class = HardPatchesMasker
    init_args = {"mask_ratio": 0.75, "predictor_dim": 12, "predictor_heads": 2}


class TestAttentionMaskerContract(MaskerContract):
    component_class = AttentionMasker
    init_args = {"mask_ratio": 0.75, "mode": "hints"}


@pytest.mark.parametrize(
    ("cls", "args"),
    [
        (AdaptiveMasker, {"mask_ratio": 1.0}),
        (AdaptiveMasker, {"dim": 12, "num_heads": 8}),
        (HardPatchesMasker, {"predictor_dim": 12, "predictor_heads": 5}),
        (HardPatchesMasker, {"ema": 1.0}),
        (AttentionMasker, {"mode": "low"}),
    ],
)
def test_bad_arguments_are_refused(cls, args):
    with pytest.raises(ConfigError):
        cls(**args)


# ------------------------------------------------------------------------------------------------------- AdaMAE
def adamae(**kwargs) -> AdaptiveMasker:
    torch.manual_seed(0)
    masker = AdaptiveMasker(**{"mask_ratio": 0.75, **kwargs})
    build(masker, encoder())
    return masker


def test_adamae_builds_a_network_of_the_encoders_width():
    masker = adamae()
    assert masker.embed.out_features == 16 and masker.head.out_features == 1
    assert adamae(dim=24).embed.out_features == 24
    with pytest.raises(ConfigError, match="num_heads"):
        build(AdaptiveMasker(num_heads=5), encoder())


def test_adamae_a_token_with_a_huge_logit_is_always_visible():
    masker = adamae()
    with torch.no_grad():  # block = identity; logit = channel 0 of the token (+ its position's first sin-cos value)
        for layer in (masker.block.attn.proj, masker.block.mlp.fc2):
            layer.weight.zero_()
            layer.bias.zero_()
        masker.embed.weight.zero_()
        masker.embed.bias.zero_()
        masker.embed.weight[0, 0] = 1.0
        masker.head.weight.zero_()
        masker.head.bias.zero_()
        masker.head.weight[0, 0] = 1.0
    batch = tokens(64)
    x = torch.zeros_like(batch.tokens)
    j = 5
    x[:, j, 0] = 100.0
    batch = batch.with_tokens(x)
    for seed in range(3):
        spec = masker(batch, generator=seeded(seed))
        assert not spec.mask[:, j].any(), "the likeliest token must be visible in every sample"
        assert spec.mask[:, [i for i in range(N) if i != j]].any(dim=0).all()  # the others vary
        assert (spec.mask.sum(dim=1) == N - 4).all()


def test_adamae_is_reproducible_and_draws_differ():
    masker, batch = adamae(), tokens(8)
    first, again = masker(batch, generator=seeded(3)), masker(batch, generator=seeded(3))
    assert torch.equal(first.mask, again.mask) and torch.equal(first.ids_keep, again.ids_keep)
    generator = seeded(3)
    assert not torch.equal(masker(batch, generator=generator).mask, masker(batch, generator=generator).mask)


def test_adamae_padding_is_never_visible_and_counts_are_equal():
    masker = adamae()
    lengths = torch.tensor([16, 12, 9, 16])
    padding = torch.arange(N)[None] >= lengths[:, None]
    batch = tokens(4, padding=padding)
    assert masker.num_visible(batch) == int(9 * 0.25)
    for seed in range(5):
        spec = masker(batch, generator=seeded(seed))
        assert spec.ids_keep.shape == (4, 2) and (spec.mask.sum(dim=1) == N - 2).all()
        assert not torch.gather(padding, 1, spec.ids_keep).any()
        assert torch.equal(spec.decode_valid, ~torch.gather(padding, 1, spec.ids_decode))
    log_probs = masker.log_probs(batch)
    assert torch.isinf(log_probs[padding]).all() and torch.isfinite(log_probs[~padding]).all()


def test_adamae_noise_replaces_sampling():
    masker, batch = adamae(), tokens(4)
    noise = torch.rand(4, N, generator=seeded(1))
    spec = masker(batch, noise=noise)
    assert torch.equal(spec.mask, noise.argsort(dim=1).argsort(dim=1) >= 4)


def test_adamae_sampling_loss_raises_the_probability_of_hard_hidden_tokens():
    masker, batch = adamae(loss_weight=1.0), tokens(2)
    spec = masker(batch, generator=seeded(0))
    hard = spec.ids_decode[:, 0]  # one hidden token per sample with a high loss, the rest 0
    token_loss = torch.zeros(spec.ids_decode.shape)
    token_loss[:, 0] = 5.0
    feedback = step(spec, batch, token_loss)
    before = masker.log_probs(batch).detach().gather(1, hard[:, None]).sum()
    terms = masker.feedback(feedback)
    assert set(terms) == {"sampling"} and terms["sampling"].dim() == 0
    expected = -(masker.log_probs(batch).gather(1, hard[:, None]).sum() * 5.0) / spec.ids_decode.numel()
    assert torch.allclose(terms["sampling"], expected, atol=1e-5)
    optimizer = torch.optim.SGD(masker.parameters(), lr=0.05)
    terms["sampling"].backward()
    optimizer.step()
    after = masker.log_probs(batch).detach().gather(1, hard[:, None]).sum()
    assert after > before
    assert masker.feedback(feedback) == {}, "the step's log-probabilities are used once"


def test_adamae_loss_weight_scales_the_loss():
    batch = tokens(2)
    values = []
    for weight in (1.0, 1e-4):
        masker = adamae(loss_weight=weight)
        spec = masker(batch, generator=seeded(0))
        token_loss = torch.rand(spec.ids_decode.shape, generator=seeded(2))
        values.append(masker.feedback(step(spec, batch, token_loss)))
    assert torch.allclose(values[1]["sampling"], values[0]["sampling"] * 1e-4)


# ---------------------------------------------------------------------------------------------------------- HPM
class FixedLossPredictor(nn.Module):
    """A stand-in loss predictor: each token's predicted loss is a fixed value per position."""

    def __init__(self, values: Tensor) -> None:
        super().__init__()
        self.values = nn.Parameter(values)

    def forward(self, encoded, tokens, mask):
        return self.values[mask.ids_decode][..., None]


def hpm(**kwargs) -> tuple[HardPatchesMasker, ViTEncoder]:
    torch.manual_seed(0)
    enc = encoder()
    masker = HardPatchesMasker(**{"mask_ratio": 0.75, "predictor_dim": 12, "predictor_heads": 2, **kwargs})
    build(masker, enc)
    return masker, enc


def test_hpm_builds_a_loss_predictor_and_frozen_copies():
    masker, enc = hpm()
    assert masker.predictor.out_dim == 1 and masker.predictor.stem.embed.in_features == enc.embed_dim
    assert masker.ema_encoder is not None and masker.ema_encoder is not enc
    assert not any(p.requires_grad for p in [*masker.ema_encoder.parameters(), *masker.ema_predictor.parameters()])
    assert all(p.requires_grad for p in masker.predictor.parameters())
    masker.train()
    assert not masker.ema_encoder.training and not masker.ema_predictor.training
    bare, _ = hpm(ema=0.0)
    assert bare.ema_encoder is None and bare.ema_predictor is None


def test_hpm_hides_the_predicted_hardest_as_training_progresses():
    masker, _ = hpm(ema=0.0, hard_ratio=0.5)
    masker.predictor = FixedLossPredictor(torch.arange(N, dtype=torch.float))  # the last tokens are the hardest
    batch = tokens(64)
    hidden = N - 4
    for progress in (1.0, 0.5):
        CLOCK.value = progress
        spec = masker(batch, generator=seeded(0))
        hard = int(hidden * 0.5 * progress)
        assert spec.mask[:, N - hard :].all(), f"the {hard} predicted hardest must be hidden in every sample"
        assert not spec.mask[:, : N - hard].all(dim=0).all()
        assert (spec.mask.sum(dim=1) == hidden).all()


def test_hpm_a_forced_hardest_token_is_always_hidden_only_late():
    masker, _ = hpm(ema=0.0)
    t = 7
    values = torch.zeros(N)
    values[t] = 10.0
    masker.predictor = FixedLossPredictor(values)
    batch = tokens(512)
    late = masker(batch, generator=seeded(1))
    assert late.mask[:, t].all()
    CLOCK.value = 0.0
    early = masker(batch, generator=seeded(1))
    rate = early.mask[:, t].float().mean()
    assert abs(rate - 0.75) < 0.08, f"at progress 0 token {t} must be hidden at the random rate, got {rate:.3f}"


def test_hpm_padding_is_never_hard_nor_visible():
    masker, _ = hpm(ema=0.0, hard_ratio=1.0)
    masker.predictor = FixedLossPredictor(torch.arange(N, dtype=torch.float))  # padding (the end) "hardest"
    lengths = torch.tensor([16, 12, 10, 16])
    padding = torch.arange(N)[None] >= lengths[:, None]
    spec = masker(tokens(4, padding=padding), generator=seeded(0))
    keep = int(10 * 0.25)
    assert spec.ids_keep.shape == (4, keep) and not torch.gather(padding, 1, spec.ids_keep).any()
    # every hidden real token of the shortest sample is a hard one: the hardest real tokens of each sample are hidden
    hard = 10 - keep
    for row, length in enumerate(lengths.tolist()):
        assert spec.mask[row, length - hard : length].all()


def test_hpm_scoring_uses_the_running_copies():
    masker, _ = hpm(ema=0.9)
    masker.ema_predictor = FixedLossPredictor(torch.arange(N, dtype=torch.float)).requires_grad_(False)
    masker.predictor = FixedLossPredictor(-torch.arange(N, dtype=torch.float))  # the online one ranks the other way
    spec = masker(tokens(8), generator=seeded(0))
    assert spec.mask[:, N - 6 :].all()


def test_hpm_ema_copy_follows_the_online_weights_only_in_training():
    masker, enc = hpm(ema=0.5)
    online = enc.token_embed.weight
    with torch.no_grad():
        online.add_(1.0)
    copy = masker.ema_encoder.token_embed.weight
    start = copy.detach().clone()
    masker.eval()(tokens(2), generator=seeded(0))
    assert torch.equal(copy, start), "no update outside training"
    masker.train()(tokens(2), generator=seeded(0))
    assert torch.allclose(copy, 0.5 * start + 0.5 * online.detach())
    predictor_copy = next(masker.ema_predictor.parameters())
    assert torch.allclose(predictor_copy, next(masker.predictor.parameters()))  # equal online and copy stay equal


def test_hpm_the_same_seed_and_model_give_the_same_mask():
    masker, _ = hpm()
    batch = tokens(8)
    first = masker.eval()(batch, generator=seeded(4))
    again = masker(batch, generator=seeded(4))
    assert torch.equal(first.mask, again.mask)


def test_ranking_loss_prefers_the_true_order():
    target = torch.rand(3, 10, generator=seeded(0))
    counted = torch.ones(3, 10, dtype=torch.bool)
    right, wrong = ranking_loss(5 * target, target, counted), ranking_loss(-5 * target, target, counted)
    assert right < wrong
    assert torch.allclose(ranking_loss(torch.zeros(3, 10), target, counted), torch.tensor(math.log(2)), atol=1e-4)
    counted[:, -3:] = False  # tokens that do not count change nothing
    noisy = 5 * target
    noisy[:, -3:] = torch.randn(3, 3)
    assert torch.allclose(ranking_loss(noisy, target, counted), ranking_loss(5 * target, target, counted))


def test_standardised_loss_is_zero_for_the_standardised_target():
    target = torch.rand(2, 8, generator=seeded(0)) * 3 + 1
    counted = torch.ones(2, 8, dtype=torch.bool)
    standard = (target - target.mean(1, keepdim=True)) / (target.var(1, keepdim=True) + 1e-6).sqrt()
    assert standardised_loss(standard, target, counted) < 1e-8
    assert standardised_loss(torch.zeros(2, 8), target, counted) > 0.5


@pytest.mark.parametrize("relative", [True, False])
def test_hpm_auxiliary_loss_trains_the_predictor_and_the_encoder(relative):
    masker, enc = hpm(relative=relative)
    batch = tokens(4)
    spec = masker(batch, generator=seeded(0))
    latent = enc(batch, spec).latent
    token_loss = torch.rand(spec.ids_decode.shape, generator=seeded(1))
    terms = masker.feedback(step(spec, batch, token_loss, latent))
    assert set(terms) == {"predictor"} and torch.isfinite(terms["predictor"])
    terms["predictor"].backward()
    assert masker.predictor.stem.head.weight.grad is not None and enc.token_embed.weight.grad is not None
    assert all(p.grad is None for p in masker.ema_encoder.parameters())


# ------------------------------------------------------------------------------------------------------ AttMask
class RankEncoder(nn.Module):
    """A stand-in encoder whose class attention is a fixed, learnable ranking of the positions."""

    embed_dim = 8

    def __init__(self, values: Tensor, prefix: int = 1) -> None:
        super().__init__()
        self.num_prefix_tokens = prefix
        self.values = nn.Parameter(values.clone())

    def class_attention(self, tokens: TokenBatch) -> Tensor:
        return self.values.softmax(dim=0).expand(tokens.batch_size, -1)


RANKING = torch.randperm(N, generator=seeded(5)).float()  # token i is the RANKING[i]-th least attended


def attmask(values: Tensor = RANKING, **kwargs) -> tuple[AttentionMasker, RankEncoder]:
    enc = RankEncoder(values)
    masker = AttentionMasker(**{"mask_ratio": 0.75, "ema": 0.0, **kwargs})
    build(masker, enc)
    return masker, enc


def most_attended(values: Tensor, count: int) -> Tensor:
    hidden = torch.zeros(N, dtype=torch.bool)
    hidden[values.argsort(descending=True)[:count]] = True
    return hidden


def test_attmask_high_hides_exactly_the_most_attended():
    masker, _ = attmask()
    spec = masker(tokens(8), generator=seeded(0))
    assert torch.equal(spec.mask, most_attended(RANKING, N - 4).expand(8, -1))


def test_attmask_hints_reveal_some_of_the_most_attended_and_keep_the_count():
    masker, _ = attmask(mode="hints", show_max=0.5)
    masker.hint_range = (0.25, 0.25)  # int(16 * 0.5 * 0.25) = 2 hints of the 8 most attended
    spec = masker(tokens(32), generator=seeded(0))
    top = most_attended(RANKING, 8)
    visible = ~spec.mask
    assert (visible.sum(dim=1) == 4).all()
    assert (visible[:, top].sum(dim=1) == 2).all(), "two hints among the most attended"
    least = ~most_attended(RANKING, N - 2)  # the rest of the visible tokens: the two least attended
    assert visible[:, least].all()
    assert len({tuple(row.tolist()) for row in visible[:, top]}) > 1, "hints are drawn at random per sample"


def test_attmask_hints_share_is_drawn_in_range():
    """With show_max 0.5 the number of hints is int(8 * r), r drawn per batch in [0.1, 0.5): between 0 and 3."""
    masker, _ = attmask(mode="hints", show_max=0.5)
    order = RANKING.argsort(descending=True)
    seen = set()
    for seed in range(30):
        spec = masker(tokens(1), generator=seeded(seed))
        seen.add(int((~spec.mask[0, order[:8]]).sum()))
    assert seen <= {0, 1, 2, 3} and len(seen) > 1


def test_attmask_uses_the_running_copy_of_the_encoder():
    masker, enc = attmask(ema=0.9)
    assert masker.ema_encoder is not enc and not masker.ema_encoder.values.requires_grad
    with torch.no_grad():
        enc.values.copy_(-RANKING)  # the online encoder now attends the other way
    spec = masker.eval()(tokens(4), generator=seeded(0))
    assert torch.equal(spec.mask, most_attended(RANKING, N - 4).expand(4, -1)), "the copy's attention decides"
    assert torch.equal(masker.ema_encoder.values, RANKING)
    masker.train()(tokens(4), generator=seeded(0))
    assert torch.allclose(masker.ema_encoder.values, 0.9 * RANKING - 0.1 * RANKING)


def test_attmask_padding_is_never_visible():
    masker, _ = attmask(values=-torch.arange(N, dtype=torch.float))  # padding (the end) least attended
    lengths = torch.tensor([16, 12, 10, 16])
    padding = torch.arange(N)[None] >= lengths[:, None]
    spec = masker(tokens(4, padding=padding), generator=seeded(0))
    assert spec.ids_keep.shape == (4, 2) and not torch.gather(padding, 1, spec.ids_keep).any()


def test_attmask_needs_a_class_token():
    with pytest.raises(ConfigError, match="AttentionMasker"):
        build(AttentionMasker(), encoder(class_token=False))


def test_attmask_reads_a_vit_encoders_class_attention():
    enc = encoder()
    masker = AttentionMasker(mask_ratio=0.75, ema=0.0)
    build(masker, enc)
    batch = tokens(3)
    spec = masker(batch, generator=seeded(0))
    attention = enc.class_attention(batch)
    hidden_attention = (attention * spec.mask).sum(1) / spec.mask.sum(1)
    visible_attention = (attention * ~spec.mask).sum(1) / (~spec.mask).sum(1)
    assert (hidden_attention > visible_attention).all()
    assert (attention[spec.mask].view(3, -1).min(1).values >= attention[~spec.mask].view(3, -1).max(1).values).all()


# ---------------------------------------------------------------------------------------------------- end to end
@pytest.mark.parametrize(
    ("masker", "term"),
    [
        (AdaptiveMasker(mask_ratio=0.5, num_heads=2), "sampling"),
        (HardPatchesMasker(mask_ratio=0.5, predictor_depth=1, predictor_dim=12, predictor_heads=2), "predictor"),
        (AttentionMasker(mask_ratio=0.5, mode="hints", show_max=0.5), None),
    ],
    ids=["adamae", "hpm", "attmask"],
)
def test_a_tiny_model_trains_with_the_masker(masker, term):
    model = tiny_model(SeriesTokenizer(), masker=masker)
    batch = {"series": sinusoids(4)}
    trainer = fast_dev_run(model, [batch])
    if term is not None:
        logged = trainer.callback_metrics.get(f"train/loss_{term}")
        assert logged is not None and torch.isfinite(logged)
    model.train()
    out = model(batch, generator=seeded(0))
    assert torch.isfinite(out.loss)
    if term is not None:
        assert term in out.terms and torch.isfinite(out.terms[term])
        assert torch.allclose(out.loss, out.terms["target"] + out.terms[term])
    model.eval()
    with torch.no_grad():  # outside training: progress 1 (HPM's hard tokens), no running-copy update
        first = model(batch, generator=seeded(1))
        again = model(batch, generator=seeded(1))
    assert torch.equal(first.mask.mask, again.mask.mask) and torch.isfinite(first.loss)
