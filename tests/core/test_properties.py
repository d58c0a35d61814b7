"""Property-based tests (hypothesis): maskers, the patch target and the model on random grid shapes, batch sizes,
lengths, padding and dtypes keep their invariants: the same number of visible tokens per sample, padding never
visible nor in the loss, a permutation in ``ids_restore``, finite losses."""

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import anymae
from anymae import GridLayout, MaskSpec, PointLayout, TokenBatch
from anymae.testing import build_context

SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])

grids = st.lists(st.integers(2, 7), min_size=1, max_size=3).map(tuple)


@st.composite
def token_batches(draw, rank_max: int = 3, padded: bool = True) -> TokenBatch:
    shape = draw(grids.filter(lambda s: len(s) <= rank_max))
    n = int(torch.tensor(shape).prod())
    b = draw(st.integers(1, 5))
    tokens = torch.randn(
        b, n, draw(st.integers(1, 6)), generator=torch.Generator().manual_seed(draw(st.integers(0, 99)))
    )
    padding = None
    if padded and n > 4 and draw(st.booleans()):
        lengths = torch.tensor(draw(st.lists(st.integers(n // 2 + 1, n), min_size=b, max_size=b)))
        padding = torch.arange(n)[None, :] >= lengths[:, None]
        padding = padding if bool(padding.any()) else None
    return TokenBatch(tokens, GridLayout(shape), padding)


def check_spec(spec: MaskSpec, tokens: TokenBatch) -> None:
    b, n = tokens.tokens.shape[:2]
    k = spec.ids_keep.shape[1]
    assert 0 < k < n and spec.ids_masked.shape == (b, n - k)
    assert (spec.mask.sum(dim=1) == n - k).all()  # the same count in every sample
    order = torch.cat([spec.ids_keep, spec.ids_masked], dim=1)
    assert torch.equal(torch.gather(order, 1, spec.ids_restore), torch.arange(n).expand(b, -1))
    if tokens.padding_mask is not None:
        assert not torch.gather(tokens.padding_mask, 1, spec.ids_keep).any()  # padding never visible
        valid = spec.decode_valid if spec.decode_valid is not None else torch.ones_like(spec.ids_decode, dtype=bool)
        assert not (valid & torch.gather(tokens.padding_mask, 1, spec.ids_decode)).any()  # nor in the loss


@SETTINGS
@given(tokens=token_batches(), ratio=st.floats(0.05, 0.9), seed=st.integers(0, 1000))
def test_random_masker_invariants(tokens, ratio, seed):
    masker = anymae.RandomMasker(mask_ratio=ratio)
    n = tokens.num_tokens
    shortest = n if tokens.padding_mask is None else int((~tokens.padding_mask).sum(dim=1).min())
    keep = masker.num_visible(tokens)
    if not 0 < keep < n or keep > shortest:
        return  # a ratio this grid cannot serve: refused with a message (tested elsewhere)
    check_spec(masker(tokens, generator=torch.Generator().manual_seed(seed)), tokens)


@SETTINGS
@given(tokens=token_batches(padded=False), seed=st.integers(0, 1000))
def test_structured_maskers_keep_equal_counts_on_any_grid(tokens, seed):
    rank = len(tokens.layout.shape)
    maskers = [anymae.BlockMasker(mask_ratio=0.4, min_block=2), anymae.FilteredNoiseMasker(mask_ratio=0.5)]
    if rank >= 2:
        maskers.append(anymae.TubeMasker(mask_ratio=0.5))
    for masker in maskers:
        try:
            masker.check_layout(anymae.LayoutSpec("grid", rank, tokens.layout.shape))
            spec = masker(tokens, generator=torch.Generator().manual_seed(seed))
        except (anymae.ConfigError, ValueError):
            continue  # a grid too small for the masker's structure is refused, with a message
        check_spec(spec, tokens)


@SETTINGS
@given(
    b=st.integers(1, 4),
    n=st.integers(2, 40),
    seed=st.integers(0, 1000),
    ratio=st.floats(0.1, 0.9),
)
def test_point_maskers_keep_equal_counts(b, n, seed, ratio):
    g = torch.Generator().manual_seed(seed)
    tokens = TokenBatch(torch.zeros(b, n, 4), PointLayout(torch.rand(b, n, 3, generator=g)))
    for masker in (anymae.RandomMasker(mask_ratio=ratio), anymae.NearestBlockMasker(mask_ratio=ratio)):
        if 0 < masker.num_visible(tokens) < n:
            check_spec(masker(tokens, generator=torch.Generator().manual_seed(seed)), tokens)


@SETTINGS
@given(
    tokens=token_batches(),
    normalize=st.sampled_from(["none", "patch", "channel"]),
    dtype=st.sampled_from([torch.float32, torch.bfloat16, torch.float16]),
    constant=st.booleans(),
)
def test_patch_target_is_finite_and_ignores_padding(tokens, normalize, dtype, constant):
    d = tokens.tokens.shape[-1]
    channels = 1 if d == 1 else next(c for c in (2, 1) if d % c == 0)
    if normalize != "none" and (d // channels if normalize == "channel" else d) < 2:
        return
    target = anymae.PatchTarget(normalize=normalize)
    target.build(build_context(anymae.TokenizerSpec("Random", d, anymae.LayoutSpec("grid", 1, (1,)), channels)))
    values = torch.full_like(tokens.tokens, 0.5) if constant else tokens.tokens
    if tokens.padding_mask is not None:  # padding may hold anything, NaN included: it must not reach the loss
        values = values.masked_fill(tokens.padding_mask[..., None], float("nan"))
    tokens = tokens.with_tokens(values.to(dtype))
    n = tokens.num_tokens
    shortest = n if tokens.padding_mask is None else int((~tokens.padding_mask).sum(dim=1).min())
    spec = MaskSpec.from_noise(torch.rand(tokens.batch_size, n), max(1, shortest // 2), tokens.padding_mask)
    out = target({}, tokens, spec)
    # NaN where padding is decoded: not counted
    assert torch.isfinite(anymae.masked_mean(target.token_loss(torch.zeros_like(out), out, spec), spec.decode_valid))
    valid = spec.decode_valid if spec.decode_valid is not None else torch.ones_like(spec.ids_decode, dtype=bool)
    assert torch.isfinite(out[valid].float()).all()
