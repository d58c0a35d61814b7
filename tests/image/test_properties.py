"""Property-based tests of the image tokenizer: any channel count, patch and (divisible) size, any float dtype: the
token count and width, and an exact inverse."""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from anymae_image import ImagePatchTokenizer


@settings(max_examples=30, deadline=None)
@given(
    patch=st.tuples(st.integers(1, 6), st.integers(1, 6)),
    cells=st.tuples(st.integers(1, 5), st.integers(1, 5)),
    channels=st.integers(1, 5),
    batch=st.integers(1, 3),
    dtype=st.sampled_from([torch.float32, torch.float16, torch.bfloat16, torch.float64]),
)
def test_patches_and_inverse_on_any_shape(patch, cells, channels, batch, dtype):
    size = (patch[0] * cells[0], patch[1] * cells[1])
    tokenizer = ImagePatchTokenizer(image_size=size, patch_size=patch, in_chans=channels)
    images = torch.randn(batch, channels, *size).to(dtype)
    tokens = tokenizer({"image": images})
    assert tokens.tokens.shape == (batch, cells[0] * cells[1], tokenizer.token_dim) and tokens.tokens.dtype == dtype
    assert torch.equal(tokenizer.inverse(tokens), images)
