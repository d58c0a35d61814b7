import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import anymae
from anymae import GridLayout, TokenBatch


def tokens(b, n, padding=None):
    return TokenBatch(torch.zeros(b, n, 4), GridLayout((n,)), padding)


@settings(max_examples=50, deadline=None)
@given(b=st.integers(1, 6), n=st.integers(2, 200), ratio=st.floats(0.05, 0.95))
def test_random_masker_exact_counts(b, n, ratio):
    keep = int(n * (1 - ratio))
    if keep < 1:
        return
    spec = anymae.RandomMasker(mask_ratio=ratio)(tokens(b, n))
    assert spec.ids_keep.shape == (b, keep)
    assert spec.ids_masked.shape == (b, n - keep)
    assert (spec.mask.sum(1) == n - keep).all()
    assert not torch.gather(spec.mask, 1, spec.ids_keep).any()


def test_random_masker_reproducible_from_generator_and_different_across_steps():
    masker = anymae.RandomMasker(mask_ratio=0.75)
    a = masker(tokens(2, 64), generator=torch.Generator().manual_seed(3))
    b = masker(tokens(2, 64), generator=torch.Generator().manual_seed(3))
    assert torch.equal(a.ids_keep, b.ids_keep)
    gen = torch.Generator().manual_seed(3)
    first, second = masker(tokens(2, 64), generator=gen), masker(tokens(2, 64), generator=gen)
    assert not torch.equal(first.ids_keep, second.ids_keep)


def test_random_masker_with_padding_counts_the_shortest_sample():
    padding = torch.zeros(3, 20, dtype=torch.bool)
    padding[0, 12:] = True  # 12 real tokens
    padding[1, 16:] = True
    spec = anymae.RandomMasker(mask_ratio=0.5)(tokens(3, 20, padding))
    assert spec.num_visible == 6
    assert not torch.gather(padding, 1, spec.ids_keep).any()


def test_mask_ratio_is_validated_in_python_too():
    with pytest.raises(anymae.ConfigError, match=r"RandomMasker\.mask_ratio"):
        anymae.RandomMasker(mask_ratio=1.5)
    with pytest.raises(ValueError, match="keeps 0 of 10 tokens visible"):
        anymae.RandomMasker(mask_ratio=0.99)(tokens(1, 10))
