"""Property-based tests of the series tokenizer: any length, patch, stride, mode and padding: patches that start past
a sample's length are padding, the others are not, the inverse is exact on the valid steps, and values are finite."""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from anymae_timeseries import SeriesPatchTokenizer


@settings(max_examples=40, deadline=None)
@given(
    patch_len=st.integers(2, 8),
    stride_part=st.integers(1, 8),
    channels=st.integers(1, 3),
    lengths=st.lists(st.integers(1, 40), min_size=1, max_size=4),
    mode=st.sampled_from(["mixed", "independent"]),
    revin=st.booleans(),
)
def test_padding_and_inverse_on_any_length(patch_len, stride_part, channels, lengths, mode, revin):
    stride = min(stride_part, patch_len)
    tokenizer = SeriesPatchTokenizer(
        channels=channels, length=40, patch_len=patch_len, stride=stride, mode=mode, revin=revin
    )
    total = max(lengths)
    series = torch.randn(len(lengths), channels, total)
    valid = torch.arange(total)[None, :] < torch.tensor(lengths)[:, None]
    series = series * valid[:, None]  # zero past each length, as the collate pads
    tokens = tokenizer({"series": series, "length": torch.tensor(lengths)}, frozenset({"displacements"}))
    assert torch.isfinite(tokens.tokens).all() and torch.isfinite(tokens.provided["displacements"]).all()
    starts = torch.arange(tokens.num_tokens) * stride
    expected = (starts[None, :] >= torch.tensor(lengths)[:, None]).repeat_interleave(tokenizer.streams_per_sample, 0)
    padding = tokens.padding_mask if tokens.padding_mask is not None else torch.zeros_like(expected)
    assert torch.equal(padding, expected)
    if not revin:
        back = tokenizer.inverse(tokens)[..., :total]
        assert torch.allclose(back[valid[:, None].expand_as(back)], series[valid[:, None].expand_as(series)], atol=1e-6)
