import pytest
import torch

import anymae
from anymae import MaskSpec
from anymae.testing import build_context
from anymae_image import ImagePatchTokenizer


def mae_patchify(images: torch.Tensor, p: int) -> torch.Tensor:
    """MAE's patchify (models_mae.py), written with einsum as the reference does."""
    n, c, h, w = images.shape
    x = images.reshape(n, c, h // p, p, w // p, p)
    x = torch.einsum("nchpwq->nhwpqc", x)
    return x.reshape(n, (h // p) * (w // p), p * p * c)


def test_patchify_matches_mae_and_inverse_is_exact():
    tok = ImagePatchTokenizer(image_size=32, patch_size=8, in_chans=3)
    images = torch.randn(2, 3, 32, 32)
    tokens = tok({"image": images})
    assert torch.equal(tokens.tokens, mae_patchify(images, 8))
    assert tokens.layout.shape == (4, 4)
    assert torch.equal(tok.inverse(tokens), images)


@pytest.mark.parametrize(("size", "patch", "chans"), [((24, 40), 8, 1), ((16, 48), (4, 8), 5), ((32, 32), 16, 13)])
def test_non_square_and_multispectral(size, patch, chans):
    tok = ImagePatchTokenizer(image_size=size, patch_size=patch, in_chans=chans)
    ph, pw = (patch, patch) if isinstance(patch, int) else patch
    images = torch.randn(3, chans, *size)
    tokens = tok({"image": images})
    assert tokens.tokens.shape == (3, (size[0] // ph) * (size[1] // pw), ph * pw * chans)
    assert tok.token_dim == ph * pw * chans and tok.channels == chans
    assert torch.equal(tok.inverse(tokens), images)


def test_runtime_size_gives_its_own_grid():
    tok = ImagePatchTokenizer(image_size=32, patch_size=8, in_chans=1)
    assert tok({"image": torch.randn(1, 1, 16, 48)}).layout.shape == (2, 6)


def test_size_errors_name_the_fields():
    with pytest.raises(anymae.ConfigError, match=r"image_size 30x30 is not divisible by patch_size 4x4"):
        ImagePatchTokenizer(image_size=30, patch_size=4)
    with pytest.raises(anymae.ConfigError, match=r"ImagePatchTokenizer.patch_size"):
        ImagePatchTokenizer(image_size=32, patch_size=0)
    tok = ImagePatchTokenizer(image_size=32, patch_size=8, in_chans=3)
    with pytest.raises(ValueError, match=r"expected images \[B, 3, H, W\]"):
        tok({"image": torch.randn(1, 1, 32, 32)})


def _setup(normalize):
    tok = ImagePatchTokenizer(image_size=16, patch_size=4, in_chans=3)
    target = anymae.PatchTarget(normalize=normalize)
    target.build(build_context(tok.spec))
    images = torch.rand(2, 3, 16, 16) * 5
    tokens = tok({"image": images})
    spec = MaskSpec.from_noise(torch.rand(2, 16), num_keep=4)
    return tok, target, images, tokens, spec


def test_norm_pix_per_patch_is_maes():
    _, target, images, tokens, spec = _setup("patch")
    ref = mae_patchify(images, 4)
    mean, var = ref.mean(dim=-1, keepdim=True), ref.var(dim=-1, keepdim=True)
    ref = (ref - mean) / (var + 1.0e-6) ** 0.5
    expected = torch.gather(ref, 1, spec.ids_decode[..., None].expand(-1, -1, ref.shape[-1]))
    torch.testing.assert_close(target({"image": images}, tokens, spec), expected)


def test_norm_pix_per_channel_is_videomaes():
    _, target, images, tokens, spec = _setup("channel")
    # VideoMAE: rearrange to [B, N, p*p, C], normalise over the p*p pixels of each channel with (x - mean) / (std + eps)
    squeezed = mae_patchify(images, 4).reshape(2, 16, 16, 3)
    ref = (squeezed - squeezed.mean(dim=-2, keepdim=True)) / (squeezed.var(dim=-2, keepdim=True).sqrt() + 1e-6)
    ref = ref.reshape(2, 16, 48)
    expected = torch.gather(ref, 1, spec.ids_decode[..., None].expand(-1, -1, 48))
    torch.testing.assert_close(target({"image": images}, tokens, spec), expected)


@pytest.mark.parametrize("normalize", ["none", "patch", "channel"])
def test_to_tokens_undoes_the_normalisation(normalize):
    _, target, images, tokens, spec = _setup(normalize)
    values = target({"image": images}, tokens, spec)
    expected = anymae.gather_tokens(tokens.tokens, spec.ids_decode)
    torch.testing.assert_close(target.to_tokens(values, tokens, spec), expected, atol=1e-4, rtol=1e-4)


def test_loss_covers_only_decoded_tokens():
    _, target, images, tokens, spec = _setup("none")
    values = target({"image": images}, tokens, spec)
    pred = values.clone()
    pred[:, 0] += 1.0  # wrong by 1 everywhere in the first decoded token of each sample
    loss = anymae.masked_mean(target.token_loss(pred, values, spec), spec.decode_valid)
    assert loss.item() == pytest.approx(1.0 / spec.ids_decode.shape[1])
